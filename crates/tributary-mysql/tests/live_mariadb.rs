//! The live-server side of the MySQL source against a real MariaDB (test kit):
//! preflight verdicts, schema loading, snapshot values and paging, the
//! snapshot → stream handover, heartbeats and stream errors.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tributary_core::{ChangeEvent, ColumnType, MySqlPosition, Row, TableId, TableSchema, Value};
use tributary_mysql::connect::Flavor;
use tributary_mysql::preflight::preflight;
use tributary_mysql::schema_loader::{load_schema_map, LiveSchemaResolver};
use tributary_mysql::snapshot::SnapshotReader;
use tributary_mysql::stream::{current_server_position, BinlogSource};
use tributary_mysql::{MySqlError, MySqlSourceConfig};
use tributary_testkit::{require, unique_name, MariaDb, TestDatabase};

const PASSWORD: &str = "live-test-pw";
const CDC_GRANTS: &str = "REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.*";

/// One server for the whole file (the test kit's watchdog stops it when the run ends).
/// Tests end every snapshot with `finish()`: a dropped reader's transaction would
/// hold its table locks until the runtime closes the connection, and the
/// database drop at the end of the test would wait for them.
fn server() -> Option<&'static MariaDb> {
    static SERVER: OnceLock<Option<MariaDb>> = OnceLock::new();
    SERVER.get_or_init(|| require("MariaDB", MariaDb::start())).as_ref()
}

/// A fresh user with `grants` and a config selecting `include` with it.
fn config(server: &MariaDb, grants: &[&str], include: &str) -> MySqlSourceConfig {
    let user = unique_name();
    server.create_user(&user, PASSWORD, grants).expect("create user");
    let mut cfg = MySqlSourceConfig::new(user, vec![include.to_string()]);
    cfg.port = server.port();
    cfg.password = tributary_core::Secret::new(PASSWORD);
    cfg.server_id = 7000 + std::process::id() % 1000;
    cfg
}

fn cdc_config(server: &MariaDb, db: &TestDatabase<'_>) -> MySqlSourceConfig {
    config(server, &[CDC_GRANTS], &format!("{}.*", db.name()))
}

async fn schema(cfg: &MySqlSourceConfig, db: &TestDatabase<'_>, table: &str) -> Arc<TableSchema> {
    let map = load_schema_map(cfg).await.expect("load schemas");
    map.get(&TableId::new(db.name(), table)).cloned().expect("table schema")
}

/// Every chunk of `table`, with the sizes of the chunks.
async fn read_all(reader: &mut SnapshotReader, table: &TableSchema) -> (Vec<Row>, Vec<usize>) {
    let (mut rows, mut sizes) = (Vec::new(), Vec::new());
    while let Some(chunk) = reader.next_chunk(table).await.expect("chunk") {
        sizes.push(chunk.len());
        rows.extend(chunk);
    }
    (rows, sizes)
}

#[tokio::test]
async fn preflight_reports_flavor_position_and_the_matched_tables() {
    let Some(server) = server() else { return };
    let db = server.create_database().unwrap();
    db.exec("CREATE TABLE a (id INT PRIMARY KEY); CREATE TABLE b (x INT); CREATE VIEW v AS SELECT * FROM a").unwrap();
    let report = preflight(&cdc_config(server, &db)).await.expect("preflight passes");
    assert_eq!(report.flavor, Flavor::MariaDb);
    assert!(report.version.contains("MariaDB"), "{}", report.version);
    assert_eq!(report.server_id, 1);
    assert!(report.binlog.file.starts_with("mariadb-bin.") && report.binlog.offset > 4, "{:?}", report.binlog);
    assert_eq!(report.tables, vec![TableId::new(db.name(), "a"), TableId::new(db.name(), "b")]);
    assert!(report.warnings.iter().any(|w| w.contains(".b has no primary key")), "{:?}", report.warnings);
}

#[tokio::test]
async fn preflight_maps_a_wrong_password_to_access_denied() {
    let Some(server) = server() else { return };
    let db = server.create_database().unwrap();
    let mut cfg = cdc_config(server, &db);
    cfg.password = tributary_core::Secret::new("not-the-password");
    let err = preflight(&cfg).await.unwrap_err();
    assert!(matches!(err, MySqlError::AccessDenied { .. }), "{err}");
    assert!(!err.to_string().contains("not-the-password"));
}

#[tokio::test]
async fn preflight_maps_a_closed_port_to_connect() {
    let Some(server) = server() else { return };
    let db = server.create_database().unwrap();
    let mut cfg = cdc_config(server, &db);
    cfg.port = 1;
    let err = preflight(&cfg).await.unwrap_err();
    assert!(matches!(err, MySqlError::Connect { .. }), "{err}");
}

#[tokio::test]
async fn preflight_names_the_missing_replication_grant() {
    let Some(server) = server() else { return };
    let db = server.create_database().unwrap();
    db.exec("CREATE TABLE a (id INT PRIMARY KEY)").unwrap();
    let cfg = config(server, &["REPLICATION CLIENT, SELECT ON *.*"], &format!("{}.*", db.name()));
    let err = preflight(&cfg).await.unwrap_err().to_string();
    assert!(err.contains(&format!("GRANT REPLICATION SLAVE ON *.* TO '{}'@'%'", cfg.user)), "{err}");
}

#[tokio::test]
async fn preflight_names_the_table_lacking_select() {
    let Some(server) = server() else { return };
    let db = server.create_database().unwrap();
    db.exec("CREATE TABLE a (id INT PRIMARY KEY)").unwrap();
    let insert_only = format!("INSERT ON `{}`.`a`", db.name());
    let cfg =
        config(server, &["REPLICATION SLAVE, REPLICATION CLIENT ON *.*", &insert_only], &format!("{}.*", db.name()));
    let err = preflight(&cfg).await.unwrap_err().to_string();
    assert!(err.contains(&format!("GRANT SELECT ON `{}`.`a`", db.name())), "{err}");
}

#[tokio::test]
async fn preflight_refuses_a_filter_that_matches_nothing() {
    let Some(server) = server() else { return };
    let db = server.create_database().unwrap();
    let cfg = config(server, &[CDC_GRANTS], &format!("{}.nothing_*", db.name()));
    let err = preflight(&cfg).await.unwrap_err();
    assert!(matches!(err, MySqlError::NoTables { .. }), "{err}");
}

#[tokio::test]
async fn schemas_keep_column_order_and_primary_key_order() {
    let Some(server) = server() else { return };
    let db = server.create_database().unwrap();
    db.exec("CREATE TABLE t (z INT NOT NULL, a VARCHAR(5), m BIGINT UNSIGNED NOT NULL, PRIMARY KEY (m, z))").unwrap();
    let cfg = cdc_config(server, &db);
    let t = schema(&cfg, &db, "t").await;
    let names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["z", "a", "m"]);
    assert_eq!(t.primary_key, vec![2, 0]);
    assert_eq!(t.columns[2].data_type, ColumnType::UInt64);
    assert_eq!(t.columns[2].source_type, "bigint(20) unsigned");
    assert!(t.columns[1].nullable && !t.columns[0].nullable);
}

#[tokio::test]
async fn snapshot_converts_every_type_like_the_binlog_decoder() {
    let Some(server) = server() else { return };
    let db = server.create_database().unwrap();
    db.exec(
        "CREATE TABLE t (id INT PRIMARY KEY, ti TINYINT, tiu TINYINT UNSIGNED, biu BIGINT UNSIGNED, \
         dec1 DECIMAL(10,2), dec3 DECIMAL(65,30), fl FLOAT, db DOUBLE, d DATE, dt6 DATETIME(6), \
         ts3 TIMESTAMP(3) NULL, tm TIME, tm2 TIME(2), y YEAR, vc VARCHAR(20), bn BINARY(2), e ENUM('s','l'), \
         st SET('a','b','c'), j JSON, b1 BIT(1), b10 BIT(10), g GEOMETRY, n INT NULL)",
    )
    .unwrap();
    db.exec(
        "SET NAMES utf8mb4; SET time_zone = '+02:00'; INSERT INTO t VALUES (1, -128, 255, 18446744073709551615, -12345678.91, \
         0.000000000000000000000000000001, 1.5, -2.5e-300, '2024-02-29', '2024-02-29 13:14:15.000001', \
         '2024-02-29 15:14:15.123', '-838:59:59', '12:34:56.78', 2155, 'héllo 🦀', 0x00ff, 'l', 'a,c', \
         '{\"k\": [1, 2]}', b'1', b'1010100101', ST_GeomFromText('POINT(1 2)'), NULL)",
    )
    .unwrap();
    let cfg = cdc_config(server, &db);
    let t = schema(&cfg, &db, "t").await;
    let mut reader = SnapshotReader::open(&cfg, vec![t.clone()]).await.expect("open snapshot");
    let (rows, _) = read_all(&mut reader, &t).await;
    reader.finish().await.unwrap();
    let feb29 = 19_782i64;
    let micros = |h: i64, m: i64, s: i64, us: i64| ((feb29 * 86_400 + h * 3600 + m * 60 + s) * 1_000_000) + us;
    let mut wkb = vec![1u8, 1, 0, 0, 0];
    wkb.extend(1f64.to_le_bytes());
    wkb.extend(2f64.to_le_bytes());
    let expected: Row = vec![
        Value::Int(1),
        Value::Int(-128),
        Value::Int(255),
        Value::UInt(u64::MAX),
        Value::Decimal { unscaled: -1_234_567_891, scale: 2 },
        Value::Text("0.000000000000000000000000000001".into()),
        Value::Float(1.5),
        Value::Double(-2.5e-300),
        Value::Date(feb29 as i32),
        Value::TimestampNtz(micros(13, 14, 15, 1)),
        // Written as 15:14:15.123 at +02:00: 13:14:15.123 UTC.
        Value::Timestamp(micros(13, 14, 15, 123_000)),
        Value::Text("-838:59:59".into()),
        Value::Text("12:34:56.78".into()),
        Value::Int(2155),
        Value::Text("héllo 🦀".into()),
        Value::Bytes(vec![0x00, 0xff]),
        Value::Text("l".into()),
        Value::Text("a,c".into()),
        // MariaDB's JSON is LONGTEXT: the text exactly as written.
        Value::Text("{\"k\": [1, 2]}".into()),
        Value::Bool(true),
        Value::Bytes(vec![0b10, 0b1010_0101]),
        Value::Bytes(wkb),
        Value::Null,
    ];
    assert_eq!(rows, vec![expected]);
}

#[tokio::test]
async fn snapshot_zero_dates_are_null() {
    let Some(server) = server() else { return };
    let db = server.create_database().unwrap();
    db.exec(
        "SET SESSION sql_mode = ''; CREATE TABLE t (id INT PRIMARY KEY, d DATE, dt DATETIME, ts TIMESTAMP NULL); \
         INSERT INTO t VALUES (1, '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00')",
    )
    .unwrap();
    let cfg = cdc_config(server, &db);
    let t = schema(&cfg, &db, "t").await;
    let mut reader = SnapshotReader::open(&cfg, vec![t.clone()]).await.unwrap();
    let (rows, _) = read_all(&mut reader, &t).await;
    reader.finish().await.unwrap();
    assert_eq!(rows, vec![vec![Value::Int(1), Value::Null, Value::Null, Value::Null]]);
}

#[tokio::test]
async fn snapshot_pages_composite_keys_without_gaps_or_duplicates() {
    let Some(server) = server() else { return };
    let db = server.create_database().unwrap();
    // ENUM sorts by its index ('z' < 'a' here) and DECIMAL keys need exact comparison.
    db.exec(
        "CREATE TABLE t (kind ENUM('z','a') NOT NULL, amount DECIMAL(30,10) NOT NULL, n INT NOT NULL, \
         PRIMARY KEY (kind, amount, n)); \
         INSERT INTO t SELECT IF(seq % 2 = 0, 'z', 'a'), 12345678901234567890.0000000001 + (seq % 3) / 1e10, seq \
         FROM seq_1_to_100",
    )
    .unwrap();
    let mut cfg = cdc_config(server, &db);
    cfg.snapshot_chunk_rows = 7;
    let t = schema(&cfg, &db, "t").await;
    let mut reader = SnapshotReader::open(&cfg, vec![t.clone()]).await.unwrap();
    assert_eq!(reader.estimate_rows(&t).await.unwrap(), 100);
    let (rows, sizes) = read_all(&mut reader, &t).await;
    reader.finish().await.unwrap();
    assert_eq!(sizes.len(), 15, "{sizes:?}");
    assert!(sizes.iter().all(|&s| s <= 7));
    let mut ns: Vec<i64> = rows.iter().map(|r| if let Value::Int(n) = r[2] { n } else { panic!("{r:?}") }).collect();
    ns.sort_unstable();
    assert_eq!(ns, (1..=100).collect::<Vec<_>>());
    assert_eq!(rows[0][0], Value::Text("z".into()), "enum order is index order");
}

#[tokio::test]
async fn snapshot_streams_a_table_without_primary_key_in_chunks() {
    let Some(server) = server() else { return };
    let db = server.create_database().unwrap();
    db.exec("CREATE TABLE log (msg VARCHAR(10)); INSERT INTO log SELECT CONCAT('m', seq) FROM seq_1_to_25").unwrap();
    db.exec("CREATE TABLE k (id INT PRIMARY KEY); INSERT INTO k VALUES (1), (2)").unwrap();
    let mut cfg = cdc_config(server, &db);
    cfg.snapshot_chunk_rows = 10;
    let log = schema(&cfg, &db, "log").await;
    let k = schema(&cfg, &db, "k").await;
    let mut reader = SnapshotReader::open(&cfg, vec![log.clone(), k.clone()]).await.unwrap();
    let first = reader.next_chunk(&log).await.unwrap().unwrap();
    assert_eq!(first.len(), 10);
    let busy = reader.next_chunk(&k).await.unwrap_err().to_string();
    assert!(busy.contains("read it to the end first"), "{busy}");
    let (rest, sizes) = read_all(&mut reader, &log).await;
    assert_eq!(sizes, vec![10, 5]);
    assert_eq!(first.len() + rest.len(), 25);
    // The connection is back: another table reads fine.
    assert_eq!(read_all(&mut reader, &k).await.0.len(), 2);
    reader.finish().await.unwrap();
}

#[tokio::test]
async fn snapshot_is_consistent_with_its_binlog_position() {
    let Some(server) = server() else { return };
    let db = server.create_database().unwrap();
    db.exec("CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1), (2)").unwrap();
    let cfg = cdc_config(server, &db);
    let t = schema(&cfg, &db, "t").await;
    let before = current_server_position(&cfg).await.unwrap();
    let mut reader = SnapshotReader::open(&cfg, vec![t.clone()]).await.unwrap();
    db.exec("INSERT INTO t VALUES (3); DELETE FROM t WHERE id = 1").unwrap();
    assert_eq!(reader.position(), Some(before), "nothing was written between the two reads");
    let (rows, _) = read_all(&mut reader, &t).await;
    let position = reader.position().unwrap();
    reader.finish().await.unwrap();
    assert_eq!(rows, vec![vec![Value::Int(1)], vec![Value::Int(2)]], "writes after the snapshot are not in it");
    assert!(current_server_position(&cfg).await.unwrap() > position);
}

#[tokio::test]
async fn a_fresh_read_is_one_snapshot_needs_only_select_and_knows_no_binlog_position() {
    let Some(server) = server() else { return };
    let db = server.create_database().unwrap();
    db.exec("CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1), (2)").unwrap();
    let cfg = config(server, &[&format!("SELECT ON `{}`.*", db.name())], &format!("{}.*", db.name()));
    let t = schema(&cfg, &db, "t").await;
    let mut reader = SnapshotReader::open_fresh(&cfg, vec![t.clone()]).await.expect("SELECT is enough");
    assert_eq!(reader.position(), None, "a fresh read does not know its binlog position");
    db.exec("INSERT INTO t VALUES (3); DELETE FROM t WHERE id = 1").unwrap();
    let (rows, _) = read_all(&mut reader, &t).await;
    reader.finish().await.unwrap();
    assert_eq!(rows, vec![vec![Value::Int(1)], vec![Value::Int(2)]], "writes after the read began are not in it");
}

/// Row events of `table` read from the stream until `deadline`, or until the
/// server position `until` is reached.
async fn stream_rows(source: &mut BinlogSource, until: &MySqlPosition) -> Vec<ChangeEvent> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut events = Vec::new();
    while source.position() < *until && Instant::now() < deadline {
        let batch = source.next().await.expect("stream").expect("stream open");
        events.extend(batch.into_iter().filter(|e| e.table_id().is_some()));
    }
    events
}

#[tokio::test]
async fn snapshot_hands_over_to_the_stream_without_gap_or_duplicate() {
    let Some(server) = server() else { return };
    let db = server.create_database().unwrap();
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t VALUES (1, 1), (2, 2)").unwrap();
    let cfg = cdc_config(server, &db);
    let t = schema(&cfg, &db, "t").await;
    let mut reader = SnapshotReader::open(&cfg, vec![t.clone()]).await.unwrap();
    db.exec("INSERT INTO t VALUES (3, 3); UPDATE t SET v = 20 WHERE id = 2").unwrap();
    let (rows, _) = read_all(&mut reader, &t).await;
    let from = reader.position().unwrap();
    reader.finish().await.unwrap();
    assert_eq!(rows.len(), 2);

    let resolver = LiveSchemaResolver::load(&cfg).await.unwrap();
    let mut source = BinlogSource::start(&cfg, resolver, from).await.unwrap();
    let until = current_server_position(&cfg).await.unwrap();
    let events = stream_rows(&mut source, &until).await;
    source.close().await.unwrap();
    let ops: Vec<String> = events
        .iter()
        .map(|e| match e {
            ChangeEvent::Insert { after, .. } => format!("insert {:?}", after),
            ChangeEvent::Update { before, after, .. } => format!("update {:?} -> {:?}", before, after),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        ops,
        vec!["insert [Int(3), Int(3)]".to_string(), "update [Int(2), Int(2)] -> [Int(2), Int(20)]".to_string(),]
    );
}

#[tokio::test]
async fn an_idle_stream_stays_alive_on_heartbeats() {
    let Some(server) = server() else { return };
    let db = server.create_database().unwrap();
    db.exec("CREATE TABLE t (id INT PRIMARY KEY)").unwrap();
    let mut cfg = cdc_config(server, &db);
    cfg.heartbeat_secs = 1;
    cfg.server_id += 500;
    let resolver = LiveSchemaResolver::load(&cfg).await.unwrap();
    let from = current_server_position(&cfg).await.unwrap();
    let mut source = BinlogSource::start(&cfg, resolver, from).await.unwrap();
    // Six seconds without a write: longer than the 4 s silence limit, so only heartbeats keep it alive.
    let start = Instant::now();
    let mut reads = 0;
    while start.elapsed() < Duration::from_secs(6) {
        assert!(source.next().await.expect("alive").is_some());
        reads += 1;
    }
    assert!(reads >= 4, "heartbeats every second: {reads}");
    source.close().await.unwrap();
}

#[tokio::test]
async fn a_stream_from_a_missing_binlog_file_says_the_binlog_is_unavailable() {
    let Some(server) = server() else { return };
    let db = server.create_database().unwrap();
    db.exec("CREATE TABLE t (id INT PRIMARY KEY)").unwrap();
    let mut cfg = cdc_config(server, &db);
    cfg.server_id += 600;
    let resolver = LiveSchemaResolver::load(&cfg).await.unwrap();
    let from = MySqlPosition::new("mariadb-bin.999999", 4);
    let mut source = BinlogSource::start(&cfg, resolver, from).await.unwrap();
    let mut result = source.next().await;
    // The server may first send a fake rotate event before its error.
    for _ in 0..3 {
        if result.is_err() {
            break;
        }
        result = source.next().await;
    }
    let err = result.unwrap_err();
    assert!(matches!(err, MySqlError::BinlogUnavailable { .. }), "{err}");
}

#[tokio::test]
async fn a_table_altered_after_start_emits_a_schema_change_then_rows_with_the_new_columns() {
    let Some(server) = server() else { return };
    let db = server.create_database().unwrap();
    db.exec("CREATE TABLE t (id INT PRIMARY KEY)").unwrap();
    let mut cfg = cdc_config(server, &db);
    cfg.server_id += 700;
    let resolver = LiveSchemaResolver::load(&cfg).await.unwrap();
    let from = current_server_position(&cfg).await.unwrap();
    db.exec("ALTER TABLE t ADD COLUMN v INT; INSERT INTO t VALUES (1, 1)").unwrap();
    let mut source = BinlogSource::start(&cfg, resolver, from).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut schema_change = None;
    let inserted = loop {
        assert!(Instant::now() < deadline, "no insert after the ALTER");
        let batch = source.next().await.unwrap().expect("stream open");
        let mut found = None;
        for event in batch {
            match event {
                ChangeEvent::SchemaChange { table, .. } => schema_change = Some(table),
                ChangeEvent::Insert { after, .. } => found = Some(after),
                _ => {}
            }
        }
        if let Some(after) = found {
            break after;
        }
    };
    let table = schema_change.expect("a schema change before the insert");
    let names: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["id", "v"]);
    assert_eq!(inserted, vec![Value::Int(1), Value::Int(1)]);
}
