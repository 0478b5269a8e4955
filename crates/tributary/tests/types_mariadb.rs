//! Every MySQL / MariaDB type of docs/types.md round-trips exactly: through the
//! snapshot and through the binlog, the Delta value (read by an independent
//! reader) equals what the server returns for the same row, and each column
//! has the documented Delta type. MariaDB's UUID, INET4 and INET6 are
//! mirrored as the text the server prints.

mod common;

use common::alltypes::{assert_same, create_table, server_rows, ROW_MAX, ROW_MIN, TYPES};
use common::*;
use serde_json::Value as Json;

/// MariaDB UUID, INET4 and INET6 values whose text forms have edges (rows 10 to 12).
const UUID_INET_A: &str = "(10, '123e4567-e89b-12d3-a456-426614174000', '10.0.0.1', '::1.2.3.4')";
const UUID_INET_B: &str = "(12, '01890a5d-ac96-774b-bcce-b302099a8000', '1.2.3.0', '1:0:1:1:1:1:1:1'), \
     (13, NULL, '0.0.0.1', '2001:db8::ff00:42:8329'), (14, 'a0000000-0000-0000-0000-000000000000', NULL, '::1')";

#[test]
fn every_mapped_type_round_trips_through_snapshot_and_binlog() {
    let Some(server) = mariadb() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    create_table(&db);
    db.exec(&format!("INSERT INTO alltypes VALUES {ROW_MIN}")).unwrap(); // via the snapshot
                                                                         // MariaDB's UUID / INET4 / INET6 edges, via the snapshot: a version 1 UUID
                                                                         // (whose byte order a time-ordered layout would swap), an IPv4-compatible
                                                                         // address printed dotted, a single zero group printed as `::`.
    db.exec(&format!("INSERT INTO alltypes (id, u, i4, i6) VALUES {UUID_INET_A}")).unwrap();
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
    // The same edges via the binlog, then rewritten by an update.
    db.exec(&format!("INSERT INTO alltypes (id, u, i4, i6) VALUES {}", UUID_INET_A.replace("(10,", "(11,"))).unwrap();
    db.exec(&format!("INSERT INTO alltypes (id, u, i4, i6) VALUES {UUID_INET_B}")).unwrap();
    db.exec(
        "UPDATE alltypes SET u = '01890a5d-ac96-774b-bcce-b302099a8057', i4 = '192.168.0.255', \
         i6 = '::0.1.0.0' WHERE id = 10",
    )
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
