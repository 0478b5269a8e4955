//! A minimal HTTP/1.1 client for loopback services (AlertManager, Prometheus):
//! one request per connection, every step bounded by a deadline, so an
//! unreachable or stuck service gives a clear error instead of a hang.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// A response: status code and body.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub body: String,
}

/// Why a request failed.
#[derive(Debug)]
pub enum HttpError {
    /// Connecting, sending or reading failed or ran out of time.
    Io(std::io::Error),
    /// The answer is not HTTP.
    Malformed(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Io(e)
                if e.kind() == std::io::ErrorKind::TimedOut || e.kind() == std::io::ErrorKind::WouldBlock =>
            {
                write!(f, "timed out ({e})")
            }
            HttpError::Io(e) => write!(f, "{e}"),
            HttpError::Malformed(m) => write!(f, "malformed HTTP response: {m}"),
        }
    }
}

/// Sends `method path` with an optional JSON body to `host:port` and reads
/// the whole response; the whole exchange takes at most `timeout`.
pub fn request(
    authority: &str,
    method: &str,
    path: &str,
    json_body: Option<&str>,
    timeout: Duration,
) -> Result<HttpResponse, HttpError> {
    let deadline = Instant::now() + timeout;
    let addr: SocketAddr = authority
        .to_socket_addrs()
        .map_err(HttpError::Io)?
        .next()
        .ok_or_else(|| HttpError::Malformed(format!("no address for {authority}")))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(HttpError::Io)?;
    let body = json_body.unwrap_or("");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nAccept: application/json\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if json_body.is_some() {
        head.push_str("Content-Type: application/json\r\n");
    }
    head.push_str("\r\n");
    set_timeouts(&stream, deadline)?;
    stream.write_all(head.as_bytes()).map_err(HttpError::Io)?;
    stream.write_all(body.as_bytes()).map_err(HttpError::Io)?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        set_timeouts(&stream, deadline)?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(HttpError::Io(e)),
        }
    }
    parse_response(&raw)
}

fn set_timeouts(stream: &TcpStream, deadline: Instant) -> Result<(), HttpError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(HttpError::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, "deadline passed")));
    }
    stream.set_read_timeout(Some(left)).map_err(HttpError::Io)?;
    stream.set_write_timeout(Some(left)).map_err(HttpError::Io)
}

fn parse_response(raw: &[u8]) -> Result<HttpResponse, HttpError> {
    let (head, body) = split_head(raw).ok_or_else(|| HttpError::Malformed("no end of headers".into()))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| HttpError::Malformed(format!("status line `{status_line}`")))?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked { decode_chunked(body)? } else { body.to_vec() };
    Ok(HttpResponse { status, body: String::from_utf8_lossy(&body).into_owned() })
}

/// Splits at the blank line ending the headers.
pub(crate) fn split_head(raw: &[u8]) -> Option<(String, &[u8])> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    Some((String::from_utf8_lossy(&raw[..end]).into_owned(), &raw[end + 4..]))
}

/// Decodes a `Transfer-Encoding: chunked` body.
pub(crate) fn decode_chunked(mut body: &[u8]) -> Result<Vec<u8>, HttpError> {
    let mut out = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| HttpError::Malformed("truncated chunk size".into()))?;
        let size_text = String::from_utf8_lossy(&body[..line_end]);
        let size_hex = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| HttpError::Malformed(format!("chunk size `{size_hex}`")))?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if body.len() < size {
            return Err(HttpError::Malformed("truncated chunk".into()));
        }
        out.extend_from_slice(&body[..size]);
        body = body.get(size + 2..).unwrap_or(&[]);
    }
}

/// Percent-encodes a query parameter value.
pub fn encode_query(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_decoded() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\n\r\n";
        let r = parse_response(raw).unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "Wikipedia"));
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode_query(r#"up{job="x"}"#), "up%7Bjob%3D%22x%22%7D");
    }

    #[test]
    fn a_closed_port_is_a_quick_error() {
        let port = crate::ports::free_loopback_port().unwrap();
        let start = Instant::now();
        let err = request(&format!("127.0.0.1:{port}"), "GET", "/", None, Duration::from_secs(2)).unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(3), "{err}");
    }
}
