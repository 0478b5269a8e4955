//! Decodes every real binlog file in tests/data (written by
//! MySQL 5.0 - 9.6 and MariaDB 10.5, see its README.md) and checks the typed
//! change events each one yields; the bad files must give an error naming the
//! file and the byte offset, never a panic or a hang.

use std::path::PathBuf;
use std::sync::Arc;

use mysql_common::binlog::events::Event;
use tributary_core::{ChangeEvent, ColumnType, Gtid, MySqlPosition, TableSchema, Value};
use tributary_mysql::binlog_file::{decode_binlog_file, read_binlog_file, BinlogFileReader};
use tributary_mysql::decoder::{BinlogDecoder, DecodeError, TableMapResolver};
use tributary_testkit::{require, MariaDb};

/// Every file of the test-data directory; a file added there without a test here fails
/// `every_test_file_is_covered`.
const FILES: [&str; 18] = [
    "binlog-invisible-columns.000001",
    "binlog_transaction_previous_GTID_no_tag.000001",
    "binlog_transaction_with_GTID_TAG.000001",
    "binlog_transaction_with_anonymous_GTID.000001",
    "binlog_truncated_event.000001",
    "binlog_truncated_prev_gtid_event.000001",
    "bug27213339-bin.000001",
    "corrupt-relay-bin.000624",
    "json-opaque.binlog",
    "json.binlog.000001",
    "mariadb-bin.000001",
    "minimal_row_metadata.000001",
    "mysql-enum-string-set.000001",
    "mysql_type_bit.000001",
    "rpl_unfiltered_hidden_gcol.000001",
    "time_issue.000001",
    "transaction_compression.000001",
    "vector.binlog",
];

fn testdata_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data"))
}

fn path(name: &str) -> PathBuf {
    let p = testdata_dir().join(name);
    assert!(p.is_file(), "test binlog {} is missing: tests/data is part of the repository", p.display());
    p
}

/// The change events of a file that must decode cleanly, and the decoder's final position.
fn decode_ok(name: &str) -> (Vec<ChangeEvent>, MySqlPosition) {
    let mut events = Vec::new();
    match decode_binlog_file(&path(name), TableMapResolver::new(), |e| events.push(e)) {
        Ok(decoder) => (events, decoder.position()),
        Err(e) => panic!("{name} must decode without error, got: {e}"),
    }
}

/// The change events delivered before the error a file must give, and that error.
fn decode_err(name: &str) -> (Vec<ChangeEvent>, DecodeError) {
    let mut events = Vec::new();
    match decode_binlog_file(&path(name), TableMapResolver::new(), |e| events.push(e)) {
        Ok(_) => panic!("{name} must fail to decode"),
        Err(e) => (events, e),
    }
}

/// The message names the file and the byte offset, on one line.
fn assert_names_file_and_offset(err: &DecodeError, name: &str, offset: u64) {
    let msg = err.to_string();
    assert!(msg.contains(name), "error does not name the file {name}: {msg}");
    assert!(msg.contains(&format!("byte offset {offset}")), "error does not name byte offset {offset}: {msg}");
    assert!(!msg.contains('\n'), "error is not one line: {msg}");
}

fn offset(e: &ChangeEvent) -> u64 {
    e.position().as_mysql().expect("MySQL position").offset
}

fn gtid(e: &ChangeEvent) -> Option<Gtid> {
    e.position().as_mysql().expect("MySQL position").gtid.clone()
}

fn commit_ts(e: &ChangeEvent) -> i64 {
    match e {
        ChangeEvent::Begin { commit_ts, .. }
        | ChangeEvent::Insert { commit_ts, .. }
        | ChangeEvent::Update { commit_ts, .. }
        | ChangeEvent::Delete { commit_ts, .. }
        | ChangeEvent::Truncate { commit_ts, .. }
        | ChangeEvent::SchemaChange { commit_ts, .. }
        | ChangeEvent::Commit { commit_ts, .. }
        | ChangeEvent::Heartbeat { commit_ts, .. } => *commit_ts,
    }
}

/// `B`, `I`, `U`, `D`, `C` per event: the shape of the stream.
fn shape(events: &[ChangeEvent]) -> String {
    events
        .iter()
        .map(|e| match e {
            ChangeEvent::Begin { .. } => 'B',
            ChangeEvent::Insert { .. } => 'I',
            ChangeEvent::Update { .. } => 'U',
            ChangeEvent::Delete { .. } => 'D',
            ChangeEvent::Truncate { .. } => 'T',
            ChangeEvent::SchemaChange { .. } => 'S',
            ChangeEvent::Commit { .. } => 'C',
            ChangeEvent::Heartbeat { .. } => 'H',
        })
        .collect()
}

fn table(e: &ChangeEvent) -> &Arc<TableSchema> {
    match e {
        ChangeEvent::Insert { table, .. } | ChangeEvent::Update { table, .. } | ChangeEvent::Delete { table, .. } => {
            table
        }
        other => panic!("not a row event: {other:?}"),
    }
}

fn after(e: &ChangeEvent) -> &[Value] {
    match e {
        ChangeEvent::Insert { after, .. } | ChangeEvent::Update { after, .. } => after,
        other => panic!("no after image: {other:?}"),
    }
}

fn before(e: &ChangeEvent) -> &[Value] {
    match e {
        ChangeEvent::Delete { before, .. } | ChangeEvent::Update { before, .. } => before,
        other => panic!("no before image: {other:?}"),
    }
}

fn types(schema: &TableSchema) -> Vec<ColumnType> {
    schema.columns.iter().map(|c| c.data_type.clone()).collect()
}

fn names(schema: &TableSchema) -> Vec<&str> {
    schema.columns.iter().map(|c| c.name.as_str()).collect()
}

fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

fn json(s: &str) -> Value {
    Value::Json(s.to_string())
}

fn mysql_gtid(uuid: &str, tag: Option<&str>, transaction_id: u64) -> Option<Gtid> {
    Some(Gtid::MySql { uuid: uuid.to_string(), tag: tag.map(str::to_string), transaction_id })
}

fn floats(xs: &[f32]) -> Value {
    Value::Array(xs.iter().map(|x| Value::Float(*x)).collect())
}

#[test]
fn every_test_file_is_covered() {
    let mut found: Vec<String> = std::fs::read_dir(testdata_dir())
        .expect("tests/data holds the test binlogs")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "README.md")
        .collect();
    found.sort();
    assert_eq!(found, FILES, "a test binlog was added or removed: cover it in this file");
}

#[test]
fn invisible_columns_decode_with_unsigned_widening_and_gtids() {
    let (events, end) = decode_ok("binlog-invisible-columns.000001");
    assert_eq!(shape(&events), "BICBICBUC");
    let t1 = table(&events[1]);
    assert_eq!(t1.id.to_string(), "mysql.t1");
    assert_eq!(names(t1), ["f1", "f2", "f3", "f4", "f5", "f6"]);
    assert_eq!(
        types(t1),
        [
            ColumnType::Int64,
            ColumnType::Int64,
            ColumnType::Int32,
            ColumnType::Text,
            ColumnType::Bytes,
            ColumnType::UInt64
        ]
    );
    assert_eq!(
        after(&events[1]),
        [Value::Int(1), Value::Int(2), Value::Int(-3), text("4"), Value::Bytes(vec![5]), Value::UInt(6_000_000_000)]
    );
    let second = [Value::Null, Value::Null, Value::Int(-33), text("44"), Value::Bytes(b"U".to_vec()), Value::Null];
    assert_eq!(after(&events[4]), second);
    assert_eq!(before(&events[7]), second);
    assert_eq!(
        after(&events[7]),
        [Value::Int(111), Value::Int(222), Value::Int(-333), text("444"), Value::Bytes(b"U".to_vec()), Value::Null]
    );
    let uuid = "97c7af02-4c50-11ec-acd8-681842034964";
    for (i, tx) in [(0, 3), (3, 4), (6, 5)] {
        for e in &events[i..i + 3] {
            assert_eq!(gtid(e), mysql_gtid(uuid, None, tx));
        }
    }
    // Commit carries the end of its XID event; rows the end of their rows event.
    assert_eq!(
        [offset(&events[1]), offset(&events[2]), offset(&events[5]), offset(&events[8])],
        [1089, 1120, 1438, 1787]
    );
    // MySQL 8 GTID events carry the commit timestamp in microseconds.
    assert_eq!(commit_ts(&events[0]), 1_637_667_166_684_912);
    assert!(events[..3].iter().all(|e| commit_ts(e) == 1_637_667_166_684_912));
    assert_eq!(
        end,
        MySqlPosition { file: "binlog-invisible-columns.000001".into(), offset: 1810, gtid: mysql_gtid(uuid, None, 5) }
    );
}

#[test]
fn previous_gtids_event_alone_yields_nothing_and_ends_at_the_next_file() {
    let (events, end) = decode_ok("binlog_transaction_previous_GTID_no_tag.000001");
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(end, MySqlPosition::new("binlog.000008", 4));
}

#[test]
fn tagged_gtid_is_parsed_with_uuid_tag_and_number() {
    let (events, end) = decode_ok("binlog_transaction_with_GTID_TAG.000001");
    assert_eq!(shape(&events), "BIC");
    let expected = mysql_gtid("55778904-0299-11f1-b1b8-4ef0c4956feb", Some("mytag"), 3);
    assert!(events.iter().all(|e| gtid(e) == expected));
    assert_eq!(expected.as_ref().unwrap().to_string(), "55778904-0299-11f1-b1b8-4ef0c4956feb:mytag:3");
    let orders = table(&events[1]);
    assert_eq!(orders.id.to_string(), "test.orders");
    assert_eq!(names(orders), ["col_0", "col_1", "col_2"], "no column names in the metadata");
    assert_eq!(types(orders), [ColumnType::Int32, ColumnType::Int32, ColumnType::Decimal { precision: 10, scale: 2 }]);
    assert_eq!(after(&events[1]), [Value::Int(3), Value::Int(100), Value::Decimal { unscaled: 25_000, scale: 2 }]);
    assert_eq!(offset(&events[2]), 541);
    assert_eq!(commit_ts(&events[2]), 1_770_368_687_207_196);
    assert_eq!(end.file, "binlog.000005");
}

#[test]
fn anonymous_gtid_transaction_has_no_gtid_and_its_statement_based_insert_is_refused() {
    let (events, err) = decode_err("binlog_transaction_with_anonymous_GTID.000001");
    // The Begin of the transaction is out; the INSERT logged as a statement is not silently dropped.
    assert_eq!(shape(&events), "B");
    assert_eq!(gtid(&events[0]), None);
    assert_eq!(offset(&events[0]), 460);
    // MySQL 5.7 anonymous GTID events carry no commit timestamp: the header's seconds are used.
    assert_eq!(commit_ts(&events[0]), 1_423_200_137_000_000);
    assert!(matches!(err, DecodeError::StatementBased { offset: 460, .. }), "{err:?}");
    assert_names_file_and_offset(&err, "binlog_transaction_with_anonymous_GTID.000001", 460);
    let msg = err.to_string();
    assert!(msg.contains("INSERT INTO t2 VALUES (1)") && msg.contains("binlog_format='ROW'"), "{msg}");
}

#[test]
fn file_cut_after_the_magic_bytes_is_truncated_at_offset_4() {
    let err = read_binlog_file(&path("binlog_truncated_event.000001")).unwrap_err();
    assert!(matches!(err, DecodeError::Truncated { offset: 4, .. }), "{err:?}");
    assert_names_file_and_offset(&err, "binlog_truncated_event.000001", 4);
}

#[test]
fn file_cut_inside_an_event_header_is_truncated_at_that_event() {
    let err = read_binlog_file(&path("binlog_truncated_prev_gtid_event.000001")).unwrap_err();
    assert!(matches!(err, DecodeError::Truncated { offset: 120, .. }), "{err:?}");
    assert_names_file_and_offset(&err, "binlog_truncated_prev_gtid_event.000001", 120);
}

#[test]
fn ddl_only_file_yields_no_change_events() {
    let (events, end) = decode_ok("bug27213339-bin.000001");
    assert!(events.is_empty(), "DDL must not open transactions: {events:?}");
    assert_eq!(end, MySqlPosition::new("bug27213339-bin.000001", 11125));
}

#[test]
fn corrupt_relay_log_is_refused_with_file_and_offset() {
    let name = "corrupt-relay-bin.000624";
    // MySQL 5.0 logged statements: the first one stops decoding, naming where it is.
    let (events, err) = decode_err(name);
    assert_eq!(shape(&events), "B");
    assert!(matches!(err, DecodeError::StatementBased { offset: 322, .. }), "{err:?}");
    assert_names_file_and_offset(&err, name, 322);

    // Decoded event by event, the damaged QUERY event is found and named by its real
    // file offset (its header's log_pos is the source server's, not the relay log's).
    let mut reader = BinlogFileReader::open(&path(name)).unwrap();
    let mut corrupt = Vec::new();
    let mut count = 0;
    while let Some((start, event)) = reader.next_event().unwrap() {
        count += 1;
        let mut decoder = BinlogDecoder::new(TableMapResolver::new(), name.to_string());
        match decoder.decode(&event) {
            Ok(_) | Err(DecodeError::StatementBased { .. }) => {}
            Err(e) => corrupt.push((start, e)),
        }
    }
    assert_eq!(count, 874);
    assert_eq!(corrupt.len(), 1, "{corrupt:?}");
    let (start, err) = &corrupt[0];
    assert_eq!(*start, 91_204);
    assert!(matches!(err, DecodeError::Corrupt { event, .. } if event == "QUERY_EVENT"), "{err:?}");
    assert!(err.to_string().contains(name), "{err}");
}

#[test]
fn json_with_opaque_values_prints_as_mysql_does() {
    let (events, _) = decode_ok("json-opaque.binlog");
    assert_eq!(shape(&events), "BIIIIIIIIC");
    let foo = table(&events[1]);
    assert_eq!((names(foo), types(foo)), (vec!["a"], vec![ColumnType::Json]));
    let docs: Vec<&Value> = events[1..9].iter().map(|e| &after(e)[0]).collect();
    assert_eq!(
        docs,
        [
            &json(r#"{"a": "base64:type15:VQ=="}"#),
            &json(r#"{"b": "2012-03-18"}"#),
            &json(r#"{"c": "2012-03-18 11:30:45.000000"}"#),
            &json(r#"{"c": "87:31:46.654321"}"#),
            &json(r#"{"d": 123.456}"#),
            &json(r#"{"e": 9.00}"#),
            &json(r#"{"e": [0, 1, true, false]}"#),
            &json(r#"{"e": null}"#),
        ]
    );
}

#[test]
fn json_documents_decode_and_the_partial_update_without_before_image_is_refused() {
    let name = "json.binlog.000001";
    let (events, err) = decode_err(name);
    assert_eq!(shape(&events), "BICBICBICBIIICBUUUUUUCB");
    let t = table(&events[1]);
    assert_eq!(types(t), [ColumnType::Int32, ColumnType::Json, ColumnType::Text, ColumnType::Int32]);
    assert_eq!(
        after(&events[1]),
        [Value::Int(1), json(r#"{"age": 24, "data": "xxxxxxxxxx", "name": "Joe"}"#), text("Joe"), Value::Int(24)]
    );
    let update = &events[15];
    assert_eq!(before(update)[1], json(r#"{"age": 24, "data": "xxxxxxxxxx", "name": "Joe"}"#));
    assert_eq!(after(update)[1], json(r#"{"age": 25, "data": "xxxxxxxxxx", "name": "Joe"}"#));
    assert_eq!(after(update)[3], Value::Int(25));
    // Event 39 (PARTIAL_UPDATE_ROWS) was written with binlog_row_image=MINIMAL: the before
    // image holds only the key, so the JSON diff has no document to apply to.
    match &err {
        DecodeError::PartialJson { table, column, offset, .. } => {
            assert_eq!((table.as_str(), column.as_str(), *offset), ("mysql.t", "col_1", 3750));
        }
        other => panic!("expected PartialJson, got {other:?}"),
    }
    assert_names_file_and_offset(&err, name, 3750);
    assert!(err.to_string().contains("SET GLOBAL binlog_row_value_options=''"), "{err}");
}

/// A PARTIAL_UPDATE_ROWS event for `mysql.t` of json.binlog.000001 (id INT, json_col JSON,
/// name VARCHAR(100), age INT) with a full before image, as MySQL writes it with
/// binlog_row_image=FULL and binlog_row_value_options=PARTIAL_JSON.
fn partial_json_update_event(tme: &Event) -> Event {
    // {"age": 24, "name": "Joe"} in MySQL's binary JSON.
    let doc: &[u8] = &[
        0x00, 2, 0, 29, 0, 18, 0, 3, 0, 21, 0, 4, 0, 0x05, 24, 0, 0x0c, 25, 0, b'a', b'g', b'e', b'n', b'a', b'm',
        b'e', 3, b'J', b'o', b'e',
    ];
    // REPLACE $.age 26, INSERT $.city "Oslo".
    let mut diffs = vec![0u8, 5];
    diffs.extend_from_slice(b"$.age");
    diffs.extend_from_slice(&[3, 0x05, 26, 0]);
    diffs.extend_from_slice(&[1, 6]);
    diffs.extend_from_slice(b"$.city");
    diffs.extend_from_slice(&[6, 0x0c, 4, b'O', b's', b'l', b'o']);
    let int = |x: i32| x.to_le_bytes().to_vec();
    let mut body = vec![119, 0, 0, 0, 0, 0, 1, 0, 2, 0]; // table id 119, STMT_END_F, no extra data
    body.extend_from_slice(&[4, 0x0f, 0x0f]); // 4 columns, all in both images
    body.push(0); // before image: no NULLs
    body.extend(int(1));
    body.extend((doc.len() as u32).to_le_bytes());
    body.extend_from_slice(doc);
    body.extend_from_slice(&[3, 0, b'J', b'o', b'e']);
    body.extend(int(24));
    body.extend_from_slice(&[1, 0x01, 0]); // PARTIAL_JSON_UPDATES, json_col is partial, no NULLs
    body.extend(int(1));
    body.extend((diffs.len() as u32).to_le_bytes());
    body.extend_from_slice(&diffs);
    body.extend_from_slice(&[3, 0, b'J', b'o', b'e']);
    body.extend(int(26));
    let size = (19 + body.len() + 4) as u32;
    let mut bytes = 1_615_797_869u32.to_le_bytes().to_vec();
    bytes.push(39); // PARTIAL_UPDATE_ROWS_EVENT
    bytes.extend(1u32.to_le_bytes());
    bytes.extend(size.to_le_bytes());
    bytes.extend((3750 + size).to_le_bytes());
    bytes.extend(0u16.to_le_bytes());
    bytes.extend_from_slice(&body);
    bytes.extend_from_slice(&[0, 0, 0, 0]); // checksum (the decoder leaves verification to readers)
    Event::read(tme.fde(), &bytes[..]).unwrap()
}

#[test]
fn partial_json_update_with_a_full_before_image_applies_the_diff() {
    let mut reader = BinlogFileReader::open(&path("json.binlog.000001")).unwrap();
    let mut decoder = BinlogDecoder::new(TableMapResolver::new(), "json.binlog.000001".to_string());
    let mut events = Vec::new();
    let mut tme = None;
    while let Some((start, event)) = reader.next_event().unwrap() {
        if start < 3606 {
            continue; // feed the FDE-described BEGIN and TABLE_MAP of the last transaction only
        }
        if start == 3750 {
            break; // the original partial update (MINIMAL before image)
        }
        events.extend(decoder.decode(&event).unwrap());
        if start == 3691 {
            tme = Some(event);
        }
    }
    let update = partial_json_update_event(tme.as_ref().expect("TABLE_MAP at 3691"));
    events.extend(decoder.decode(&update).unwrap());
    assert_eq!(shape(&events), "BU");
    assert_eq!(before(&events[1]), [Value::Int(1), json(r#"{"age": 24, "name": "Joe"}"#), text("Joe"), Value::Int(24)]);
    assert_eq!(
        after(&events[1]),
        [Value::Int(1), json(r#"{"age": 26, "city": "Oslo", "name": "Joe"}"#), text("Joe"), Value::Int(26)]
    );
}

#[test]
fn mariadb_gtids_annotate_rows_and_checkpoints_decode() {
    let (events, end) = decode_ok("mariadb-bin.000001");
    assert_eq!(shape(&events), "BICBIC");
    let mariadb = |sequence| Some(Gtid::MariaDb { domain: 0, server_id: 1, sequence });
    assert!(events[..3].iter().all(|e| gtid(e) == mariadb(1)));
    assert!(events[3..].iter().all(|e| gtid(e) == mariadb(2)));
    assert_eq!(gtid(&events[0]).unwrap().to_string(), "0-1-1");
    // No BEGIN query in MariaDB: the GTID event (ending at 372) opens the transaction.
    assert_eq!([offset(&events[0]), offset(&events[2]), offset(&events[5])], [372, 702, 1074]);
    let outbox = table(&events[1]);
    assert_eq!(outbox.id.to_string(), "toddy_test.outbox");
    assert_eq!(names(outbox), ["id", "topic", "event_type", "event", "created"]);
    assert_eq!(outbox.primary_key, [0]);
    assert_eq!(
        types(outbox),
        [ColumnType::Int32, ColumnType::Text, ColumnType::Text, ColumnType::Bytes, ColumnType::Timestamp]
    );
    assert_eq!(outbox.columns[2].source_type, "enum('BLOB','JSON','PROTOBUF')");
    let [id, topic, event_type, event, created] = after(&events[1]) else { panic!() };
    assert_eq!((id, topic, event_type), (&Value::Int(62), &text("foo"), &text("JSON")));
    assert_eq!(event, &Value::Bytes(br#"{"foo":1}"#.to_vec()));
    assert_eq!(created, &Value::Timestamp(1_650_493_084_000_000));
    assert_eq!(after(&events[4])[0], Value::Int(63));
    assert_eq!(commit_ts(&events[3]), 1_650_493_195_000_000);
    assert_eq!(end.offset, 1074);
}

#[test]
fn minimal_row_metadata_names_columns_by_position_and_keeps_signedness() {
    let (events, _) = decode_ok("minimal_row_metadata.000001");
    assert_eq!(shape(&events), "BIC");
    let t1 = table(&events[1]);
    assert_eq!(names(t1), ["col_0", "col_1", "col_2", "col_3", "col_4"]);
    assert_eq!(
        types(t1),
        [ColumnType::Int32, ColumnType::Bytes, ColumnType::Text, ColumnType::Int32, ColumnType::Int64]
    );
    assert_eq!(t1.columns[4].source_type, "int unsigned");
    // binlog_row_image=MINIMAL left col_1 and col_3 out of the insert: they are Unchanged, not NULL.
    assert_eq!(
        after(&events[1]),
        [Value::Int(1), Value::Unchanged, text("a"), Value::Unchanged, Value::Int(3_230_202_323)]
    );
}

#[test]
fn enum_and_set_give_their_labels() {
    let (events, _) = decode_ok("mysql-enum-string-set.000001");
    assert_eq!(shape(&events), "BICBUCBDC");
    let t = table(&events[1]);
    assert_eq!(names(t), ["f1", "f2", "f3", "f4", "f5"]);
    assert!(types(t).iter().all(|ty| *ty == ColumnType::Text));
    assert_eq!(t.columns[2].source_type, "enum('var1','variant2','foo')");
    assert_eq!(t.columns[3].source_type, "set('one','two','three','four')");
    let inserted = after(&events[1]);
    assert_eq!((&inserted[2], &inserted[3]), (&text("var1"), &text("one,three")));
    let Value::Text(f1) = &inserted[0] else { panic!("{inserted:?}") };
    assert!(f1.starts_with("0123456789") && f1.len() == 100, "{f1}");
    let updated = after(&events[4]);
    assert_eq!(&updated[..4], [text("field1"), text("field_2"), text("variant2"), text("two,four")]);
    assert_eq!(before(&events[4]), inserted);
    assert_eq!(before(&events[7]), updated);
}

#[test]
fn bit_columns_are_big_endian_bytes() {
    let (events, _) = decode_ok("mysql_type_bit.000001");
    assert_eq!(shape(&events), "BIC");
    let foo = table(&events[1]);
    assert_eq!(types(foo), [ColumnType::Bytes, ColumnType::Text, ColumnType::Bytes]);
    assert_eq!(foo.columns[0].source_type, "bit(3)");
    assert_eq!(foo.columns[2].source_type, "bit(8)");
    assert_eq!(after(&events[1]), [Value::Bytes(vec![0b100]), text("foo"), Value::Bytes(vec![0b10_0000])]);
}

#[test]
fn hidden_generated_column_of_a_functional_index_is_absent_from_rows() {
    let (events, end) = decode_ok("rpl_unfiltered_hidden_gcol.000001");
    assert_eq!(shape(&events), "BIC");
    let t = table(&events[1]);
    assert_eq!(types(t), [ColumnType::Int32, ColumnType::Int64, ColumnType::Text]);
    // The server never logs the hidden (a+1) column: its cell is Unchanged.
    assert_eq!(after(&events[1]), [Value::Int(1), Value::Unchanged, text("1")]);
    // A relay log: positions follow the source's file named by its Rotate events.
    assert_eq!(events[2].position().as_mysql().unwrap().file, "master-bin.000001");
    assert_eq!(offset(&events[2]), 837);
    assert_eq!(end.file, "master-bin.000001");
}

#[test]
fn negative_time_prints_like_the_server() {
    let (events, _) = decode_ok("time_issue.000001");
    assert_eq!(shape(&events), "BIC");
    assert_eq!(types(table(&events[1])), [ColumnType::Time { fsp: 0 }]);
    assert_eq!(after(&events[1]), [text("-507:48:27")]);
}

#[test]
fn compressed_transaction_payload_is_decoded_into_row_events() {
    let (events, end) = decode_ok("transaction_compression.000001");
    assert_eq!(shape(&events), "BIC");
    assert_eq!(table(&events[1]).id.to_string(), "test.tb1");
    assert_eq!(after(&events[1]), [Value::Int(1)]);
    // Every event of the payload sits at the payload's end: resuming there starts after it.
    assert!(events.iter().all(|e| offset(e) == 431), "{events:?}");
    assert!(events.iter().all(|e| commit_ts(e) == 1_695_159_109_445_737));
    assert_eq!(end, MySqlPosition::new("binlog.000043", 4));
}

#[test]
fn vector_columns_are_float32_arrays() {
    let (events, _) = decode_ok("vector.binlog");
    assert_eq!(shape(&events), "BIIIICBIIIICBDIC");
    let foo = table(&events[1]);
    assert_eq!(names(foo), ["id", "vector_column"]);
    assert_eq!(types(foo), [ColumnType::UInt64, ColumnType::Array { element: Box::new(ColumnType::Float32) }]);
    assert_eq!(foo.columns[1].source_type, "vector(3)");
    assert_eq!(after(&events[1]), [Value::UInt(1), floats(&[1.1, 2.2, 3.3])]);
    assert_eq!(after(&events[2]), [Value::UInt(2), floats(&[1.0, -1.0, 0.0])]);
    let bar = table(&events[3]);
    assert_eq!(types(bar)[2], ColumnType::Text, "the TEXT column after a VECTOR keeps its charset");
    assert_eq!(after(&events[3])[..3], [Value::UInt(1), floats(&[1.1, 2.2]), Value::Null]);
    assert_eq!(after(&events[4])[2], text("bar"));
    assert_eq!(before(&events[13])[0], Value::UInt(2));
    assert_eq!(after(&events[14])[0], Value::UInt(3));
}

/// A scratch copy of a test binlog, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str, edit: impl FnOnce(&mut Vec<u8>)) -> Self {
        let mut bytes = std::fs::read(path(name)).unwrap();
        edit(&mut bytes);
        // One directory per copy: tests run in parallel and several edit the same file.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("tributary-binlog-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(name);
        std::fs::write(&file, bytes).unwrap();
        Scratch(file)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[test]
fn a_flipped_byte_fails_the_crc32_checksum_naming_file_and_offset() {
    // Byte 950 lies in the WRITE_ROWS event at 927..970.
    let copy = Scratch::new("mysql_type_bit.000001", |b| b[950] ^= 0x40);
    let err = read_binlog_file(&copy.0).unwrap_err();
    assert!(matches!(err, DecodeError::Corrupt { offset: 927, .. }), "{err:?}");
    assert_names_file_and_offset(&err, "mysql_type_bit.000001", 927);
    assert!(err.to_string().contains("CRC32"), "{err}");
}

#[test]
fn a_file_cut_inside_a_rows_event_is_truncated_at_that_event() {
    // The WRITE_ROWS event spans 927..970; the copy ends at 950.
    let copy = Scratch::new("mysql_type_bit.000001", |b| b.truncate(950));
    let err = read_binlog_file(&copy.0).unwrap_err();
    assert!(matches!(err, DecodeError::Truncated { offset: 927, .. }), "{err:?}");
    assert_names_file_and_offset(&err, "mysql_type_bit.000001", 927);
}

#[test]
fn a_file_without_the_magic_bytes_is_refused() {
    let copy = Scratch::new("mysql_type_bit.000001", |b| b[0] = 0);
    let err = read_binlog_file(&copy.0).unwrap_err();
    assert!(matches!(err, DecodeError::NotABinlog { .. }), "{err:?}");
    let missing = read_binlog_file(&testdata_dir().join("no-such-file.000001")).unwrap_err();
    assert!(matches!(missing, DecodeError::Io { .. }) && missing.to_string().contains("no-such-file"), "{missing}");
}

/// The same values the snapshot reader is checked against (tests/live_mariadb.rs),
/// written by a real MariaDB to a binlog file and decoded offline.
#[test]
fn a_mariadb_binlog_of_every_type_decodes_to_typed_values() {
    let Some(server) = require("MariaDB", MariaDb::start()) else { return };
    let db = server.create_database().unwrap();
    db.exec(
        "CREATE TABLE t (id INT PRIMARY KEY, ti TINYINT, tiu TINYINT UNSIGNED, mu MEDIUMINT UNSIGNED, \
         iu INT UNSIGNED, biu BIGINT UNSIGNED, dec1 DECIMAL(10,2), dec3 DECIMAL(65,30), fl FLOAT, db DOUBLE, \
         d DATE, dz DATE, dt6 DATETIME(6), ts3 TIMESTAMP(3) NULL, tm TIME, tm2 TIME(2), tmn TIME(2), y YEAR, \
         vc VARCHAR(20), l1 VARCHAR(10) CHARACTER SET latin1, bn BINARY(4), e ENUM('s','l'), st SET('a','b','c'), \
         j JSON, b1 BIT(1), b10 BIT(10), g GEOMETRY, n INT NULL)",
    )
    .unwrap();
    db.exec(
        "SET NAMES utf8mb4; SET time_zone = '+02:00'; SET sql_mode = ''; INSERT INTO t VALUES (1, -128, 255, \
         16777215, 4294967295, 18446744073709551615, -12345678.91, 0.000000000000000000000000000001, 1.5, \
         -2.5e-300, '2024-02-29', '0000-00-00', '2024-02-29 13:14:15.000001', '2024-02-29 15:14:15.123', \
         '-838:59:59', '12:34:56.78', '-00:00:01.50', 2155, 'héllo 🦀', 'é€', 0x0102, 'l', 'a,c', \
         '{\"k\": [1, 2]}', b'1', b'1010100101', ST_GeomFromText('POINT(1 2)'), NULL); \
         UPDATE t SET vc = 'x', n = 5 WHERE id = 1; DELETE FROM t WHERE id = 1; FLUSH BINARY LOGS",
    )
    .unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(server.data_dir().join("data"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("mariadb-bin.")))
        .filter(|p| p.extension().is_some_and(|x| x.to_string_lossy().chars().all(|c| c.is_ascii_digit())))
        .collect();
    files.sort();
    files.pop(); // the file FLUSH BINARY LOGS opened, still being written
    let mut events = Vec::new();
    for file in &files {
        let decoded = read_binlog_file(file).unwrap_or_else(|e| panic!("{e}"));
        events.extend(decoded.into_iter().filter(|e| e.table_id().is_none_or(|id| id.schema == db.name())));
    }
    let rows: Vec<&ChangeEvent> = events.iter().filter(|e| e.table_id().is_some()).collect();
    assert_eq!(shape(&rows.iter().map(|e| (*e).clone()).collect::<Vec<_>>()), "IUD");

    let t = table(rows[0]);
    assert_eq!(t.primary_key, [0]);
    assert_eq!(names(t)[..4], ["id", "ti", "tiu", "mu"]);
    let feb29 = 19_782i64;
    let micros = |h: i64, m: i64, s: i64, us: i64| ((feb29 * 86_400 + h * 3600 + m * 60 + s) * 1_000_000) + us;
    let mut wkb = vec![1u8, 1, 0, 0, 0];
    wkb.extend(1f64.to_le_bytes());
    wkb.extend(2f64.to_le_bytes());
    let inserted = vec![
        Value::Int(1),
        Value::Int(-128),
        Value::Int(255),
        Value::Int(16_777_215),
        Value::Int(4_294_967_295),
        Value::UInt(u64::MAX),
        Value::Decimal { unscaled: -1_234_567_891, scale: 2 },
        text("0.000000000000000000000000000001"),
        Value::Float(1.5),
        Value::Double(-2.5e-300),
        Value::Date(feb29 as i32),
        Value::Null, // zero date
        Value::TimestampNtz(micros(13, 14, 15, 1)),
        Value::Timestamp(micros(13, 14, 15, 123_000)), // 15:14:15.123 at +02:00
        text("-838:59:59"),
        text("12:34:56.78"),
        text("-00:00:01.50"),
        Value::Int(2155),
        text("héllo 🦀"),
        text("é€"),
        Value::Bytes(vec![1, 2, 0, 0]), // BINARY(4) padded as the server returns it
        text("l"),
        text("a,c"),
        text("{\"k\": [1, 2]}"), // MariaDB's JSON is LONGTEXT
        Value::Bool(true),
        Value::Bytes(vec![0b10, 0b1010_0101]),
        Value::Bytes(wkb),
        Value::Null,
    ];
    assert_eq!(after(rows[0]), inserted);
    let mut updated = inserted.clone();
    updated[18] = text("x");
    updated[27] = Value::Int(5);
    assert_eq!(before(rows[1]), inserted);
    assert_eq!(after(rows[1]), updated);
    assert_eq!(before(rows[2]), updated);
    // Three transactions, each with its own MariaDB GTID.
    let begins: Vec<Option<Gtid>> =
        events.iter().filter(|e| matches!(e, ChangeEvent::Begin { .. })).map(gtid).collect();
    assert_eq!(begins.len(), 3);
    assert!(begins.iter().all(|g| matches!(g, Some(Gtid::MariaDb { domain: 0, server_id: 1, .. }))), "{begins:?}");
}
