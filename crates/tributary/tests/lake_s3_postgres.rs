//! The lake on object storage, fed from PostgreSQL: snapshot, stream, updates
//! and deletes, a schema change and 5 × kill -9 mid-stream into an `s3://` root on
//! the local S3 server (moto); read back by delta-rs and by Spark through `s3a://`.

mod common;

use common::pg::*;
use common::s3::{put_lake_on_s3, s3};
use common::*;
use std::path::{Path, PathBuf};

#[test]
fn a_postgres_pipeline_streams_into_s3_exactly_once_through_kill_9_and_spark_reads_it() {
    if !failpoints() {
        return;
    }
    let Some(python) = python() else { return };
    let Some(s3) = s3() else { return };
    let Some(server) = postgres() else { return };
    let db = server.create_database().unwrap();
    sql(&db, "CREATE TABLE big (id BIGINT PRIMARY KEY, v BIGINT, w VARCHAR(40))");
    sql(&db, "INSERT INTO big SELECT i, i, 'snap' FROM generate_series(100001, 100100) AS i");
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.big", "");
    let root = s3.url("lake/pg");
    put_lake_on_s3(&config, dir.path(), s3, &root);
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("batch_max_wait_ms = 200", "batch_max_wait_ms = 200\nbatch_max_rows = 50");
    std::fs::write(&config, text).unwrap();
    let table = PathBuf::from(format!("{root}/public/big"));

    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &table, 1);
    let mut next_id = 1u64;
    for round in 0..5 {
        for _ in 0..40 {
            sql(
                &db,
                &format!(
                    "INSERT INTO big (id, v, w) VALUES ({a},{a},'x'),({b},{b},'y'); UPDATE big SET v = v * 2 WHERE id = {c}",
                    a = next_id,
                    b = next_id + 1,
                    c = next_id / 2 + 1
                ),
            );
            next_id += 2;
        }
        if round == 1 {
            sql(&db, "ALTER TABLE big ADD COLUMN note TEXT DEFAULT 'n'");
        }
        pipeline.assert_running();
        pipeline.kill9();
        pipeline = Pipeline::start(&config);
    }
    let lsn = change(&db, "DELETE FROM big WHERE id % 5 = 0");
    wait_past(&mut pipeline, &table, lsn);
    assert!(pipeline.stop().success());

    let source = pg_lines(&db, "SELECT id, md5(concat_ws('|', id, v, w)) FROM big ORDER BY id");
    let mirror = mirror_checksums(&python, &table);
    assert_eq!(source.len(), 400);
    assert!(source == mirror, "mirror = source on S3 after 5 kill -9 and a schema change");
    let feed = change_feed(&python, &table, 0);
    let count = |t: &str| feed.iter().filter(|r| r["_change_type"] == t).count();
    assert_eq!(count("insert"), 500, "100 snapshot rows + 400 streamed, each once");
    assert_eq!(count("update_postimage"), 200);
    assert_eq!(count("update_preimage"), 200);
    assert_eq!(count("delete"), 100);
    assert_eq!(slot_count(&db), 1, "one slot across the restarts");

    let Some(spark) = spark("a Spark read of the S3 lake") else { return };
    spark.register_s3(s3).unwrap();
    let s3a = s3.s3a_url("lake/pg/public/big");
    let rows = spark.rows(Path::new(&s3a), &["id"]).unwrap();
    let spark_lines: Vec<String> =
        rows.iter().map(|r| format!("{}\t{}", r["id"].as_i64().unwrap(), r["v"].as_i64().unwrap())).collect();
    assert_eq!(spark_lines, pg_lines(&db, "SELECT id, v FROM big ORDER BY id"), "Spark over s3a");
    assert_eq!(spark.cdf_count(Path::new(&s3a), 0, None).unwrap(), feed.len() as u64, "the same change feed");
}
