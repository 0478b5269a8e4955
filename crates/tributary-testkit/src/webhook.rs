//! A webhook receiver on a free loopback port that records every notification
//! (AlertManager's JSON payload) with the path it came in on, so a test can
//! assert which receiver got which alert. Waiting is on a condition variable,
//! never a fixed sleep; the server stops on Drop.

use crate::http::{decode_chunked, split_head};
use crate::TestKitError;
use serde_json::Value as Json;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One POST the receiver got.
#[derive(Debug, Clone)]
pub struct Notification {
    /// The request path, e.g. `/critical`.
    pub path: String,
    /// The parsed JSON body (`Json::Null` if it was not JSON).
    pub body: Json,
    /// When it arrived.
    pub received_at: Instant,
}

impl Notification {
    /// AlertManager's `receiver` field.
    pub fn receiver(&self) -> &str {
        self.body["receiver"].as_str().unwrap_or("")
    }

    /// `firing` or `resolved`.
    pub fn status(&self) -> &str {
        self.body["status"].as_str().unwrap_or("")
    }

    /// The alerts of this notification.
    pub fn alerts(&self) -> Vec<&Json> {
        self.body["alerts"].as_array().map(|a| a.iter().collect()).unwrap_or_default()
    }

    /// The `alertname` label of every alert.
    pub fn alert_names(&self) -> Vec<String> {
        self.alerts().iter().filter_map(|a| a["labels"]["alertname"].as_str().map(String::from)).collect()
    }

    /// True when an alert of this notification has label `name` = `value`.
    pub fn has_alert_with(&self, name: &str, value: &str) -> bool {
        self.alerts().iter().any(|a| a["labels"][name].as_str() == Some(value))
    }

    /// The group labels (what AlertManager grouped by).
    pub fn group_labels(&self) -> &Json {
        &self.body["groupLabels"]
    }
}

#[derive(Default)]
struct Inbox {
    notifications: Vec<Notification>,
}

/// A running webhook receiver on 127.0.0.1.
pub struct WebhookReceiver {
    port: u16,
    inbox: Arc<(Mutex<Inbox>, Condvar)>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl WebhookReceiver {
    /// Starts a receiver on a port the kernel picks.
    pub fn start() -> Result<Self, TestKitError> {
        Self::start_on(None)
    }

    /// Starts on `preferred` when it is free, else on a port the kernel picks.
    pub fn start_on(preferred: Option<u16>) -> Result<Self, TestKitError> {
        let listener = preferred
            .and_then(|p| TcpListener::bind(("127.0.0.1", p)).ok())
            .map(Ok)
            .unwrap_or_else(|| TcpListener::bind(("127.0.0.1", 0)))
            .map_err(|source| TestKitError::Io { context: "bind the webhook receiver on 127.0.0.1".into(), source })?;
        let port = listener
            .local_addr()
            .map_err(|source| TestKitError::Io { context: "webhook receiver address".into(), source })?
            .port();
        let inbox: Arc<(Mutex<Inbox>, Condvar)> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (inbox, stop) = (inbox.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("webhook-{port}"))
                .spawn(move || accept_loop(listener, inbox, stop))
                .map_err(|source| TestKitError::Io { context: "spawn the webhook thread".into(), source })?
        };
        Ok(WebhookReceiver { port, inbox, stop, thread: Some(thread) })
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of `path` on this receiver, e.g. `url("/critical")`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Every notification received so far, in arrival order.
    pub fn notifications(&self) -> Vec<Notification> {
        self.inbox.0.lock().unwrap().notifications.clone()
    }

    /// The notifications that came in on `path`.
    pub fn on_path(&self, path: &str) -> Vec<Notification> {
        self.notifications().into_iter().filter(|n| n.path == path).collect()
    }

    /// Waits until a notification matches `pred` and returns it; on timeout
    /// the error lists everything received.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Notification) -> bool,
    ) -> Result<Notification, String> {
        let deadline = Instant::now() + timeout;
        let (lock, cvar) = &*self.inbox;
        let mut inbox = lock.lock().unwrap();
        loop {
            if let Some(found) = inbox.notifications.iter().find(|n| pred(n)) {
                return Ok(found.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "no notification {what} within {timeout:?}; received {}:\n{}",
                    inbox.notifications.len(),
                    describe(&inbox.notifications)
                ));
            }
            inbox = cvar.wait_timeout(inbox, left).unwrap().0;
        }
    }
}

/// One line per notification: path, status, alert names.
pub fn describe(notifications: &[Notification]) -> String {
    notifications
        .iter()
        .map(|n| format!("  {} {} receiver={} alerts={:?}", n.path, n.status(), n.receiver(), n.alert_names()))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&([127, 0, 0, 1], self.port).into(), Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: TcpListener, inbox: Arc<(Mutex<Inbox>, Condvar)>, stop: Arc<AtomicBool>) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let inbox = inbox.clone();
        std::thread::spawn(move || {
            if let Some(n) = handle(stream) {
                let (lock, cvar) = &*inbox;
                lock.lock().unwrap().notifications.push(n);
                cvar.notify_all();
            }
        });
    }
}

/// Reads one request, answers 200 and returns it as a notification.
fn handle(mut stream: TcpStream) -> Option<Notification> {
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let (head, body) = loop {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        raw.extend_from_slice(&buf[..n]);
        if let Some((head, rest)) = split_head(&raw) {
            let rest = rest.to_vec();
            break (head, rest);
        }
    };
    let header = |name: &str| {
        head.split("\r\n").skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    let mut body = body;
    if header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        while !body.ends_with(b"0\r\n\r\n") {
            let n = stream.read(&mut buf).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&buf[..n]);
        }
        body = decode_chunked(&body).ok()?;
    } else {
        let len: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        while body.len() < len {
            let n = stream.read(&mut buf).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&buf[..n]);
        }
    }
    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    let body = serde_json::from_slice(&body).unwrap_or(Json::Null);
    Some(Notification { path, body, received_at: Instant::now() })
}
