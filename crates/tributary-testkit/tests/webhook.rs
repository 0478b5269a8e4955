//! The webhook receiver records every notification with the path it came in on.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;
use tributary_testkit::WebhookReceiver;

fn post(port: u16, path: &str, body: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut s, &mut answer).unwrap();
    answer
}

#[test]
fn notifications_are_recorded_with_their_path_and_payload() {
    let hook = WebhookReceiver::start().unwrap();
    let answer = post(
        hook.port(),
        "/critical",
        r#"{"receiver":"critical","status":"firing","groupLabels":{"alertname":"A"},"alerts":[{"labels":{"alertname":"A","table":"t"}}]}"#,
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    post(hook.port(), "/warning", r#"{"receiver":"warning","status":"resolved","alerts":[]}"#);

    let n = hook.wait_for("on /critical", Duration::from_secs(5), |n| n.path == "/critical").unwrap();
    assert_eq!((n.receiver(), n.status(), n.alert_names()), ("critical", "firing", vec!["A".to_string()]));
    assert!(n.has_alert_with("table", "t"));
    assert_eq!(n.group_labels()["alertname"], "A");
    hook.wait_for("on /warning", Duration::from_secs(5), |n| n.path == "/warning").unwrap();
    assert_eq!(hook.notifications().len(), 2);
    assert_eq!(hook.on_path("/warning")[0].status(), "resolved");
}

#[test]
fn waiting_for_a_notification_that_never_comes_times_out_with_what_arrived() {
    let hook = WebhookReceiver::start().unwrap();
    post(
        hook.port(),
        "/default",
        r#"{"receiver":"default","status":"firing","alerts":[{"labels":{"alertname":"B"}}]}"#,
    );
    let err = hook.wait_for("on /critical", Duration::from_millis(300), |n| n.path == "/critical").unwrap_err();
    assert!(err.contains("no notification on /critical") && err.contains("/default firing receiver=default"), "{err}");
}

#[test]
fn a_taken_preferred_port_falls_back_to_a_free_one() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let hook = WebhookReceiver::start_on(Some(port)).unwrap();
    assert_ne!(hook.port(), port);
    assert!(hook.url("/x").starts_with("http://127.0.0.1:"));
}
