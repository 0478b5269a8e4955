//! TLS to PostgreSQL: against a server with `ssl=on` and a pg_hba.conf of
//! `hostssl` lines only (replication included; test CA and a certificate for
//! `localhost` made by the test kit), the snapshot, the SQL sessions and the
//! replication stream work with `verify-full`; a wrong CA, a host name the
//! certificate does not carry and `disable` each stop `tributary run` and
//! `tributary check` with one line naming the cause and the fix; `prefer`
//! against a server without TLS works unencrypted.

mod common;

use common::pg::*;
use common::*;
use std::path::Path;
use tributary_testkit::postgres::{PgDatabase, PostgresOptions};
use tributary_testkit::{require, Postgres, ServerTls, TestCa};

/// A PostgreSQL that accepts TCP only with TLS, its certificate naming
/// `localhost` only; `None` when it cannot start (skipped loudly; fails under CI).
fn tls_postgres() -> Option<Postgres> {
    let options = PostgresOptions { tls: Some(ServerTls::required_for_localhost()), ..Default::default() };
    require("PostgreSQL with TLS", Postgres::start_with(options))
}

fn ca_of(server: &Postgres) -> &Path {
    &server.certs().expect("started with TLS").ca.cert
}

fn tls_lines(mode: &str, ca: Option<&Path>) -> Vec<String> {
    let mut lines = vec![format!("ssl_mode = \"{mode}\"")];
    lines.extend(ca.map(|ca| format!("ssl_ca = \"{}\"", ca.display())));
    lines
}

fn source_checksums(db: &PgDatabase<'_>) -> Vec<String> {
    pg_lines(db, "SELECT id, md5(concat_ws('|', id, v, w)) FROM t ORDER BY id")
}

#[test]
fn snapshot_and_logical_replication_through_a_hostssl_only_server_with_verify_full() {
    let Some(server) = tls_postgres() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    sql(&db, "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20), w INT)");
    sql(&db, "INSERT INTO t SELECT i, 's' || i, i FROM generate_series(1, 200) AS i");
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.t", "");
    set_source(&config, "localhost", &tls_lines("verify-full", Some(ca_of(&server))));

    let check = check_passes(&config);
    assert!(check.contains("source connection: TLS 1.") && check.contains("ssl_mode = verify-full"), "{check}");

    let path = table_path(dir.path(), "public", "t");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, 1);
    change(&db, "INSERT INTO t VALUES (201,'new',201),(202,'new',202)");
    change(&db, "UPDATE t SET v = 'changed', w = w * 10 WHERE id % 7 = 0");
    change(&db, "DELETE FROM t WHERE id % 11 = 0");
    let lsn = change(&db, "BEGIN; UPDATE t SET w = NULL WHERE id = 1; INSERT INTO t VALUES (203,'tx',NULL); COMMIT;");
    wait_past(&mut pipeline, &path, lsn);
    // The replication session is encrypted too (pg_hba.conf would refuse it otherwise).
    let walsender =
        db.exec("SELECT s.ssl, s.version FROM pg_stat_ssl s JOIN pg_stat_replication r USING (pid)").unwrap();
    assert!(walsender.trim().starts_with("t\tTLSv1."), "walsender: {walsender:?}");
    let log = pipeline.log_text();
    assert!(pipeline.stop().success());
    assert!(log.contains("TLS 1."), "the preflight logs the negotiated TLS version:\n{log}");

    let source = source_checksums(&db);
    assert_eq!(source.len(), 200 + 3 - 18, "{source:?}");
    assert_eq!(mirror_checksums(&python, &path), source, "mirror = source");
}

#[test]
fn a_wrong_ca_a_wrong_host_name_and_disable_each_fail_with_one_line() {
    let Some(server) = tls_postgres() else { return };
    let db = server.create_database().unwrap();
    sql(&db, "CREATE TABLE t (id INT PRIMARY KEY)");
    let dir = test_dir();
    let other_ca = TestCa::generate(dir.path(), "other").expect("make a second CA");
    let config = dir.path().join("pipeline.toml");
    let both_fail = |expect: &dyn Fn(&str) -> bool| {
        run_and_check_fail(&config, expect);
        let lake: Vec<_> =
            std::fs::read_dir(dir.path().join("lake")).map(|d| d.flatten().collect()).unwrap_or_default();
        assert!(lake.is_empty(), "nothing may be written: {lake:?}");
        assert_eq!(slot_count(&db), 0, "no replication slot may be left behind");
    };

    write_pg_config(dir.path(), &server, &db, "public.t", "");
    set_source(&config, "localhost", &tls_lines("verify-full", Some(&other_ca.cert)));
    both_fail(&|e: &str| {
        e.contains("TLS to PostgreSQL at localhost:")
            && e.contains("not signed by the CA in source.ssl_ca")
            && e.contains("other-ca.pem")
    });

    write_pg_config(dir.path(), &server, &db, "public.t", "");
    set_source(&config, "127.0.0.1", &tls_lines("verify-full", Some(ca_of(&server))));
    both_fail(&|e: &str| {
        e.contains("not valid for host '127.0.0.1' (it names localhost)")
            && e.contains("source.host")
            && e.contains("verify-ca")
    });

    write_pg_config(dir.path(), &server, &db, "public.t", "");
    set_source(&config, "127.0.0.1", &tls_lines("disable", None));
    both_fail(&|e: &str| e.contains("accepts only encrypted connections") && e.contains("ssl_mode = \"disable\""));

    // verify-ca checks the chain only, so 127.0.0.1 is fine; require does not check at all.
    for mode in ["verify-ca", "require"] {
        write_pg_config(dir.path(), &server, &db, "public.t", "");
        set_source(&config, "127.0.0.1", &tls_lines(mode, Some(ca_of(&server)).filter(|_| mode == "verify-ca")));
        let check = check_passes(&config);
        assert!(check.contains("source connection: TLS 1."), "{mode}: {check}");
    }
}

#[test]
fn require_against_a_server_without_tls_fails_and_prefer_connects_unencrypted() {
    let Some(server) = postgres() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    sql(&db, "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20), w INT); INSERT INTO t VALUES (1,'a',1),(2,'b',2)");
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.t", "");
    set_source(&config, "127.0.0.1", &tls_lines("require", None));
    let error = fails_with_one_line("check", &config);
    assert!(error.contains("does not offer TLS") && error.contains("ssl_mode = \"require\""), "{error}");

    let config = write_pg_config(dir.path(), &server, &db, "public.t", "");
    let check = check_passes(&config);
    assert!(check.contains("source connection: not encrypted (ssl_mode = prefer)"), "{check}");
    let path = table_path(dir.path(), "public", "t");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, 1);
    let lsn = change(&db, "INSERT INTO t VALUES (3,'c',3); UPDATE t SET w = 20 WHERE id = 2");
    wait_past(&mut pipeline, &path, lsn);
    assert!(pipeline.stop().success());
    assert_eq!(mirror_checksums(&python, &path), source_checksums(&db));
}
