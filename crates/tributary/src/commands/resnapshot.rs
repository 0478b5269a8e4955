//! `tributary resnapshot <table>`: asks the running pipeline (over its HTTP
//! port, `metrics.listen`) to copy one table again while the other tables
//! keep streaming (docs/snapshots.md, "Re-copying a table"). The copy runs
//! inside `tributary run`; this command only starts it and prints the
//! pipeline's one-line answer. One plain HTTP/1.1 request to our own
//! loopback endpoint: not worth an HTTP client crate.

use crate::config::PipelineConfig;
use anyhow::{bail, Context};
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long the pipeline may take to start the copy (it plans the chunks first).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(300);

pub async fn resnapshot(config_path: &Path, table: &str, address: Option<&str>) -> anyhow::Result<ExitCode> {
    let config = PipelineConfig::load(config_path)?;
    let address = match address {
        Some(given) => given.parse::<SocketAddr>().with_context(|| format!("--address {given:?}: expected IP:port"))?,
        None => pipeline_address(&config.metrics.listen)?,
    };
    let (status, body) = post(address, "/resnapshot", table).await?;
    let line = body.trim();
    if status == 202 {
        println!("{line}");
        Ok(ExitCode::SUCCESS)
    } else {
        bail!("{line} (HTTP {status} from the pipeline at {address})")
    }
}

/// Where the running pipeline of `listen` answers: an unspecified address
/// (0.0.0.0, ::) is reached on loopback; port 0 cannot be guessed.
fn pipeline_address(listen: &str) -> anyhow::Result<SocketAddr> {
    let mut address: SocketAddr = listen.parse().with_context(|| format!("metrics.listen {listen:?}"))?;
    if address.port() == 0 {
        bail!(
            "metrics.listen is {listen}: the running pipeline chose its port at start; give it with --address \
             (its log says `serving /metrics ... address=`)"
        );
    }
    if address.ip().is_unspecified() {
        let loopback: std::net::IpAddr =
            if address.is_ipv4() { std::net::Ipv4Addr::LOCALHOST.into() } else { std::net::Ipv6Addr::LOCALHOST.into() };
        address.set_ip(loopback);
    }
    Ok(address)
}

/// `POST path` with `body` as text; the status and the answer's body.
async fn post(address: SocketAddr, path: &str, body: &str) -> anyhow::Result<(u16, String)> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(address).await.map_err(|e| {
            anyhow::anyhow!(
                "no pipeline answers on {address} ({e}): start `tributary run` with this config (metrics.listen); \
                 the re-copy runs inside it"
            )
        })?;
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        let raw = String::from_utf8_lossy(&raw).into_owned();
        let (head, answer) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).context("not an HTTP answer")?;
        Ok::<_, anyhow::Error>((status, answer.to_string()))
    };
    tokio::time::timeout(ANSWER_TIMEOUT, exchange)
        .await
        .map_err(|_| anyhow::anyhow!("the pipeline at {address} did not answer within {ANSWER_TIMEOUT:?}"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pipeline_is_reached_on_loopback_and_port_zero_is_refused() {
        assert_eq!(pipeline_address("0.0.0.0:9187").unwrap().to_string(), "127.0.0.1:9187");
        assert_eq!(pipeline_address("[::]:9187").unwrap().to_string(), "[::1]:9187");
        assert_eq!(pipeline_address("127.0.0.1:9200").unwrap().to_string(), "127.0.0.1:9200");
        let err = pipeline_address("127.0.0.1:0").unwrap_err().to_string();
        assert!(err.contains("--address"), "{err}");
    }
}
