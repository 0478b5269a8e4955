//! Reading a running pipeline's HTTP endpoints: a bounded GET and the value
//! of one series of a Prometheus scrape.

use std::time::Duration;

pub struct HttpResponse {
    pub status: u16,
    pub body: String,
}

/// `GET path` over HTTP/1.1 on `address`, bounded by 10 s.
pub fn get(address: &str, path: &str) -> HttpResponse {
    use std::io::{Read, Write};
    let timeout = Some(Duration::from_secs(10));
    let mut stream = std::net::TcpStream::connect(address).unwrap_or_else(|e| panic!("connect {address}: {e}"));
    stream.set_read_timeout(timeout).unwrap();
    stream.set_write_timeout(timeout).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("bad answer: {raw}"));
    HttpResponse { status, body: body.to_string() }
}

/// The value of the series `name` whose labels include `labels`.
pub fn value(scrape: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, number) = line.rsplit_once(' ')?;
        let (series_name, series_labels) = series.split_once('{').unwrap_or((series, ""));
        let matches =
            series_name == name && labels.iter().all(|(k, v)| series_labels.contains(&format!("{k}=\"{v}\"")));
        matches.then(|| number.parse().ok()).flatten()
    })
}

/// `GET /metrics` on `address`: the body (the answer must be 200).
pub fn scrape(address: &str) -> String {
    let answer = get(address, "/metrics");
    assert_eq!(answer.status, 200, "GET /metrics: {}", answer.body);
    answer.body
}
