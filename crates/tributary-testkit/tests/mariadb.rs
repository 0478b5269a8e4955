//! The MariaDB handle starts a real CDC-ready server on loopback and isolates tests.

use tributary_testkit::{require, MariaDb};

#[test]
fn mariadb_starts_on_loopback_with_a_row_binlog_and_isolated_databases() {
    let Some(server) = require("MariaDB", MariaDb::start()) else { return };
    let vars = server.exec("SELECT @@log_bin, @@binlog_format, @@binlog_row_image, @@bind_address").unwrap();
    assert_eq!(vars.trim(), "1\tROW\tFULL\t127.0.0.1");
    let name;
    {
        let db = server.create_database().unwrap();
        name = db.name().to_string();
        assert!(name.starts_with("test_") && name.len() == 13, "{name}");
        db.exec("CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1)").unwrap();
        assert_eq!(db.exec("SELECT COUNT(*) FROM t").unwrap().trim(), "1");
    }
    let left = server.exec(&format!("SHOW DATABASES LIKE '{name}'")).unwrap();
    assert!(left.trim().is_empty(), "database of a passing test is dropped");
}

#[test]
fn two_servers_get_different_ports() {
    let Some(a) = require("MariaDB", MariaDb::start()) else { return };
    let Some(b) = require("MariaDB", MariaDb::start()) else { return };
    assert_ne!(a.port(), b.port());
}
