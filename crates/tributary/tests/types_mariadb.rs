//! Every MySQL / MariaDB type of docs/types.md round-trips exactly: through the
//! snapshot and through the binlog, the Delta value (read by an independent
//! reader) equals what the server returns for the same row, and each column
//! has the documented Delta type.

mod common;

use common::alltypes::{assert_same, create_table, server_rows, ROW_MAX, ROW_MIN, TYPES};
use common::*;
use serde_json::Value as Json;

#[test]
fn every_mapped_type_round_trips_through_snapshot_and_binlog() {
    let Some(server) = mariadb() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    create_table(&db);
    db.exec(&format!("INSERT INTO alltypes VALUES {ROW_MIN}")).unwrap(); // via the snapshot
    let dir = test_dir();
    let config = write_config(dir.path(), &server, &format!("{}.alltypes", db.name()), "");
    let path = table_path(dir.path(), db.name(), "alltypes");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, master_version(&server));
    // via the binlog: an insert, a row of NULLs, and an update that rewrites every column.
    db.exec(&format!("INSERT INTO alltypes VALUES {ROW_MAX}")).unwrap();
    db.exec("INSERT INTO alltypes (id) VALUES (3)").unwrap();
    db.exec(&format!("INSERT INTO alltypes VALUES {}", ROW_MIN.replacen("(1,", "(4,", 1))).unwrap();
    db.exec(&format!(
        "DELETE FROM alltypes WHERE id = 4; INSERT INTO alltypes VALUES {}",
        ROW_MAX.replacen("(2,", "(4,", 1)
    ))
    .unwrap();
    wait_committed(&mut pipeline, &path, master_version(&server));
    assert!(pipeline.stop().success());

    let json = read(&python, &["rows", path.to_str().unwrap()]);
    let schema: Json = serde_json::from_str(json["schema"].as_str().unwrap()).unwrap();
    for case in TYPES {
        let field = schema["fields"].as_array().unwrap().iter().find(|f| f["name"] == case.name).unwrap();
        assert_eq!(field["type"], Json::String(case.delta_type.to_string()), "Delta type of {}", case.name);
    }
    let mut rows: Vec<&serde_json::Map<String, Json>> =
        json["rows"].as_array().unwrap().iter().map(|r| r.as_object().unwrap()).collect();
    rows.sort_by_key(|r| r["id"].as_i64().unwrap());
    let expected = server_rows(&server, db.name());
    assert_eq!(rows.len(), expected.len());
    for (delta_row, server_row) in rows.iter().zip(&expected) {
        for (case, want) in TYPES.iter().zip(server_row) {
            assert_same("Delta", case.name, &delta_row[case.name], want, &delta_row["id"]);
        }
    }
}
