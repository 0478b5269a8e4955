//! `/healthz` and `/readyz` of a running pipeline tell the truth: healthz
//! fails with the reason once due batches have not committed for longer than
//! `metrics.health_commit_stall_secs` (the sink stalled by the test failpoint
//! `TRIBUTARY_FAILPOINT_STALL_FILE`) and recovers after the commit; readyz
//! stays 200 while one table is stopped by a schema change and names it.

mod common;

use common::http::get;
use common::*;
use std::time::{Duration, Instant};

/// Polls `GET path` until `accept` holds (bounded by `within`); returns the last answer.
fn wait_for(address: &str, path: &str, within: Duration, accept: impl Fn(u16, &str) -> bool) -> (u16, String) {
    let deadline = Instant::now() + within;
    loop {
        let answer = get(address, path);
        if accept(answer.status, &answer.body) || Instant::now() > deadline {
            return (answer.status, answer.body);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn healthz_fails_while_commits_stall_and_readyz_names_a_stopped_table() {
    if !failpoints() {
        return;
    }
    let Some(server) = mariadb() else { return };
    let db = server.create_database().unwrap();
    db.exec(
        "CREATE TABLE good (id INT PRIMARY KEY, v INT); CREATE TABLE bad (id INT PRIMARY KEY, code INT); \
         INSERT INTO good VALUES (1, 1); INSERT INTO bad VALUES (1, 10)",
    )
    .unwrap();
    let dir = test_dir();
    let config = write_config(dir.path(), &server, &format!("{}.*", db.name()), "");
    let address = format!("127.0.0.1:{}", tributary_testkit::ports::free_loopback_port().unwrap());
    let text = std::fs::read_to_string(&config).unwrap();
    let metrics = format!("listen = \"{address}\"\nhealth_commit_stall_secs = 2");
    std::fs::write(&config, text.replace("listen = \"127.0.0.1:0\"", &metrics)).unwrap();
    let stall = dir.path().join("stall");
    let good = table_path(dir.path(), db.name(), "good");
    let mut pipeline = Pipeline::start_with_env(&config, &[("TRIBUTARY_FAILPOINT_STALL_FILE", &stall)]);
    wait_committed(&mut pipeline, &good, master_version(&server));
    assert_eq!(wait_for(&address, "/healthz", Duration::ZERO, |_, _| true), (200, "ok\n".to_string()));
    let ready = wait_for(&address, "/readyz", Duration::from_secs(10), |s, _| s == 200);
    assert_eq!(ready, (200, "ready: streaming\n".to_string()));

    // Stall the sink: a due batch waits longer than the bound.
    std::fs::write(&stall, b"").unwrap();
    db.exec("INSERT INTO good VALUES (2, 2)").unwrap();
    let (status, body) = wait_for(&address, "/healthz", Duration::from_secs(20), |s, _| s != 200);
    assert_eq!(status, 503, "healthz stayed {status} {body:?} while nothing committed");
    assert!(body.contains("no successful Delta commit") && body.contains("health_commit_stall_secs"), "{body}");
    pipeline.assert_running();

    // The stall ends: the batch commits and health comes back.
    std::fs::remove_file(&stall).unwrap();
    wait_committed(&mut pipeline, &good, master_version(&server));
    let (status, body) = wait_for(&address, "/healthz", Duration::from_secs(10), |s, _| s == 200);
    assert_eq!((status, body.as_str()), (200, "ok\n"));

    // A change the Delta table cannot follow stops one table; the pipeline stays ready and says which.
    db.exec("ALTER TABLE bad MODIFY code VARCHAR(20)").unwrap();
    db.exec("INSERT INTO bad VALUES (2, 'twenty')").unwrap();
    let table = format!("{}.bad", db.name());
    let (status, body) =
        wait_for(&address, "/readyz", Duration::from_secs(20), |_, b| b.contains(&format!("stopped: {table}")));
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("ready: streaming; 1 table(s) stopped\n"), "{body}");
    assert!(body.contains("code"), "the reason names the column: {body}");
    assert_eq!(get(&address, "/healthz").status, 200, "a stopped table is not a stuck pipeline");
    db.exec("INSERT INTO good VALUES (3, 3)").unwrap();
    wait_committed(&mut pipeline, &good, master_version(&server));
    assert!(pipeline.stop().success());
}
