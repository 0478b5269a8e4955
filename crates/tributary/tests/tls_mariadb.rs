//! TLS to MariaDB: against a server that refuses unencrypted connections
//! (`require_secure_transport=ON`, test CA and a certificate for `localhost`
//! made by the test kit), snapshot and binlog streaming work with
//! `verify-full`; a wrong CA, a host name the certificate does not carry and
//! `disable` each stop `tributary run` and `tributary check` with one line
//! naming the cause and the fix; `prefer` against a server without TLS works
//! unencrypted.

mod common;

use common::*;
use std::path::Path;
use tributary_testkit::{require, MariaDb, MariaDbOptions, ServerTls, TestCa};

/// A MariaDB that accepts TCP only with TLS, its certificate naming `localhost`
/// only, with the CDC user; `None` when it cannot start (skipped loudly; fails under CI).
fn tls_mariadb() -> Option<MariaDb> {
    let options = MariaDbOptions { tls: Some(ServerTls::required_for_localhost()), ..Default::default() };
    let server = require("MariaDB with TLS", MariaDb::start_with(options))?;
    server
        .create_user(CDC_USER, CDC_PASSWORD, &["REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.*"])
        .expect("create the CDC user");
    Some(server)
}

fn ca_of(server: &MariaDb) -> &Path {
    &server.certs().expect("started with TLS").ca.cert
}

fn tls_lines(mode: &str, ca: Option<&Path>) -> Vec<String> {
    let mut lines = vec![format!("ssl_mode = \"{mode}\"")];
    lines.extend(ca.map(|ca| format!("ssl_ca = \"{}\"", ca.display())));
    lines
}

fn source_checksums(server: &MariaDb, db: &str) -> Vec<String> {
    source_lines(server, &format!("SELECT id, MD5(CONCAT_WS('|', id, v, w)) FROM `{db}`.t ORDER BY id"))
}

#[test]
fn snapshot_and_binlog_stream_through_a_tls_only_server_with_verify_full() {
    let Some(server) = tls_mariadb() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20), w INT)").unwrap();
    let values: Vec<String> = (1..=200).map(|i| format!("({i},'s{i}',{i})")).collect();
    db.exec(&format!("INSERT INTO t VALUES {}", values.join(","))).unwrap();
    let dir = test_dir();
    let config = write_config(dir.path(), &server, &format!("{}.t", db.name()), "");
    set_source(&config, "localhost", &tls_lines("verify-full", Some(ca_of(&server))));

    let check = check_passes(&config);
    assert!(check.contains("source connection: TLS 1.") && check.contains("ssl_mode = verify-full"), "{check}");

    let path = table_path(dir.path(), db.name(), "t");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, master_version(&server));
    db.exec("INSERT INTO t VALUES (201,'new',201),(202,'new',202)").unwrap();
    db.exec("UPDATE t SET v = 'changed', w = w * 10 WHERE id % 7 = 0").unwrap();
    db.exec("DELETE FROM t WHERE id % 11 = 0").unwrap();
    db.exec("BEGIN; UPDATE t SET w = NULL WHERE id = 1; INSERT INTO t VALUES (203,'tx',NULL); COMMIT;").unwrap();
    wait_committed(&mut pipeline, &path, master_version(&server));
    let log = pipeline.log_text();
    assert!(pipeline.stop().success());
    assert!(log.contains("TLS 1."), "the preflight logs the negotiated TLS version:\n{log}");

    let source = source_checksums(&server, db.name());
    assert_eq!(source.len(), 200 + 3 - 18, "{source:?}");
    assert_eq!(mirror_checksums(&python, &path), source, "mirror = source");
}

#[test]
fn a_wrong_ca_a_wrong_host_name_and_disable_each_fail_with_one_line() {
    let Some(server) = tls_mariadb() else { return };
    let db = server.create_database().unwrap();
    db.exec("CREATE TABLE t (id INT PRIMARY KEY)").unwrap();
    let dir = test_dir();
    let other_ca = TestCa::generate(dir.path(), "other").expect("make a second CA");
    let include = format!("{}.t", db.name());
    let config = dir.path().join("pipeline.toml");
    let both_fail = |expect: &dyn Fn(&str) -> bool| {
        run_and_check_fail(&config, expect);
        let lake: Vec<_> =
            std::fs::read_dir(dir.path().join("lake")).map(|d| d.flatten().collect()).unwrap_or_default();
        assert!(lake.is_empty(), "nothing may be written: {lake:?}");
    };

    // A CA that did not sign the server certificate.
    write_config(dir.path(), &server, &include, "");
    set_source(&config, "localhost", &tls_lines("verify-full", Some(&other_ca.cert)));
    both_fail(&|e: &str| {
        e.contains("TLS to MySQL at localhost:")
            && e.contains("not signed by the CA in source.ssl_ca")
            && e.contains("other-ca.pem")
    });

    // The certificate names localhost only; 127.0.0.1 is not it.
    write_config(dir.path(), &server, &include, "");
    set_source(&config, "127.0.0.1", &tls_lines("verify-full", Some(ca_of(&server))));
    both_fail(&|e: &str| {
        e.contains("not valid for host '127.0.0.1' (it names localhost)")
            && e.contains("source.host")
            && e.contains("verify-ca")
    });

    // An unencrypted connection is refused by the server.
    write_config(dir.path(), &server, &include, "");
    set_source(&config, "127.0.0.1", &tls_lines("disable", None));
    both_fail(&|e: &str| e.contains("accepts only encrypted connections") && e.contains("ssl_mode = \"disable\""));

    // verify-ca checks the chain only, so 127.0.0.1 is fine; require does not check at all.
    for mode in ["verify-ca", "require"] {
        write_config(dir.path(), &server, &include, "");
        set_source(&config, "127.0.0.1", &tls_lines(mode, Some(ca_of(&server)).filter(|_| mode == "verify-ca")));
        let check = check_passes(&config);
        assert!(check.contains("source connection: TLS 1."), "{mode}: {check}");
    }
    // verify-ca with the wrong CA still fails.
    write_config(dir.path(), &server, &include, "");
    set_source(&config, "127.0.0.1", &tls_lines("verify-ca", Some(&other_ca.cert)));
    let error = fails_with_one_line("check", &config);
    assert!(error.contains("not signed by the CA in source.ssl_ca"), "{error}");
}

#[test]
fn require_against_a_server_without_tls_fails_and_prefer_connects_unencrypted() {
    let Some(server) = mariadb() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20), w INT); INSERT INTO t VALUES (1,'a',1),(2,'b',2)")
        .unwrap();
    let dir = test_dir();
    let config = write_config(dir.path(), &server, &format!("{}.t", db.name()), "");
    set_source(&config, "127.0.0.1", &tls_lines("require", None));
    let error = fails_with_one_line("check", &config);
    assert!(error.contains("does not offer TLS") && error.contains("ssl_mode = \"require\""), "{error}");

    // The default (prefer) works against the same server.
    let config = write_config(dir.path(), &server, &format!("{}.t", db.name()), "");
    let check = check_passes(&config);
    assert!(check.contains("source connection: not encrypted (ssl_mode = prefer)"), "{check}");
    let path = table_path(dir.path(), db.name(), "t");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, master_version(&server));
    db.exec("INSERT INTO t VALUES (3,'c',3); UPDATE t SET w = 20 WHERE id = 2").unwrap();
    wait_committed(&mut pipeline, &path, master_version(&server));
    assert!(pipeline.stop().success());
    assert_eq!(mirror_checksums(&python, &path), source_checksums(&server, db.name()));
}
