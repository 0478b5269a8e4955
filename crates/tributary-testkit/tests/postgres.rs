//! The PostgreSQL handle starts a real logical-decoding-ready server on
//! loopback, with a replication role, and isolates tests.

use tributary_testkit::postgres::REPLICATION_USER;
use tributary_testkit::{require, Postgres};

#[test]
fn postgres_starts_on_loopback_with_logical_wal_and_a_replication_role() {
    let Some(pg) = require("PostgreSQL", Postgres::start()) else { return };
    let settings = pg
        .exec("SELECT current_setting('wal_level'), current_setting('listen_addresses'), current_setting('server_version_num')::int / 10000")
        .unwrap();
    // Debian's 15 unless TRIBUTARY_PG_VERSION asks for another major.
    let want = std::env::var(tributary_testkit::postgres::PG_VERSION_ENV).unwrap_or_else(|_| "15".into());
    assert_eq!(settings.trim(), format!("logical\t127.0.0.1\t{}", want.trim()));
    assert_eq!(pg.major().to_string(), want.trim());
    let role = pg
        .exec(&format!(
            "SELECT rolreplication, rolcanlogin, rolsuper FROM pg_roles WHERE rolname = '{REPLICATION_USER}'"
        ))
        .unwrap();
    assert_eq!(role.trim(), "t\tt\tf");
    let slots: u32 = pg.exec("SHOW max_replication_slots").unwrap().trim().parse().unwrap();
    assert!(slots >= 10, "{slots}");
}

#[test]
fn the_replication_role_creates_logical_slots_that_decode_changes() {
    let Some(pg) = require("PostgreSQL", Postgres::start()) else { return };
    let db_name;
    {
        let db = pg.create_database().unwrap();
        db_name = db.name().to_string();
        assert!(db_name.starts_with("test_") && db_name.len() == 13, "{db_name}");
        db.exec("CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric(10,2))").unwrap();
        let publication = db.unique_name();
        db.exec(&format!("CREATE PUBLICATION {publication} FOR TABLE orders")).unwrap();

        // SQL interface, as the replication role over TCP with its password.
        let slot = db.unique_name();
        db.exec_as_replicator(&format!("SELECT pg_create_logical_replication_slot('{slot}', 'test_decoding')"))
            .unwrap();
        db.exec("INSERT INTO orders VALUES (1, 9.99)").unwrap();
        let changes = db
            .exec_as_replicator(&format!("SELECT data FROM pg_logical_slot_get_changes('{slot}', NULL, NULL)"))
            .unwrap();
        assert!(changes.contains("table public.orders: INSERT: id[bigint]:1 amount[numeric]:9.99"), "{changes}");

        // Replication protocol, as a CDC source connects.
        let pgoutput = db.unique_name();
        let created = pg
            .exec_as(
                REPLICATION_USER,
                tributary_testkit::postgres::REPLICATION_PASSWORD,
                &format!("dbname={db_name} replication=database"),
                &format!("CREATE_REPLICATION_SLOT {pgoutput} LOGICAL pgoutput"),
            )
            .unwrap();
        assert!(created.starts_with(&pgoutput), "{created}");
        let listed = pg
            .exec(&format!(
                "SELECT slot_name, plugin FROM pg_replication_slots WHERE database = '{db_name}' ORDER BY plugin"
            ))
            .unwrap();
        assert_eq!(listed.trim(), format!("{pgoutput}\tpgoutput\n{slot}\ttest_decoding"));
    }
    // A passing test's database and slots are gone.
    assert_eq!(pg.exec(&format!("SELECT count(*) FROM pg_database WHERE datname = '{db_name}'")).unwrap().trim(), "0");
    assert_eq!(pg.exec("SELECT count(*) FROM pg_replication_slots").unwrap().trim(), "0");
}

#[test]
fn a_wrong_password_is_refused_over_tcp() {
    let Some(pg) = require("PostgreSQL", Postgres::start()) else { return };
    let err = pg.exec_as(REPLICATION_USER, "wrong", "postgres", "SELECT 1").unwrap_err().to_string();
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(pg.url("u", "p", "d").starts_with("postgresql://u:p@127.0.0.1:"));
}

#[test]
fn two_servers_get_different_ports_and_stop_on_drop() {
    let Some(a) = require("PostgreSQL", Postgres::start()) else { return };
    let Some(b) = require("PostgreSQL", Postgres::start()) else { return };
    assert_ne!(a.port(), b.port());
    let (port, dir) = (a.port(), a.dir().to_path_buf());
    drop(a);
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "stopped on Drop");
    assert!(!dir.exists(), "temp dir removed");
}
