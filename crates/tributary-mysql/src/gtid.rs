//! MariaDB GTIDs as resume points on another server: after a failover the
//! promoted replica has other binlog file names and offsets, but the same
//! GTIDs (`log_slave_updates=ON`), so a table's position is carried over by
//! its GTID: [`position_after`] finds where, in this server's binlog, the
//! first transaction after that GTID starts.
//!
//! Why translate once instead of streaming by GTID all the time: a Delta
//! `txn` version is one `i64` that must grow within one server's binlog
//! (`file_index << 32 | offset`), while a GTID state is a set (one sequence
//! per replication domain). Translating at the moment the server changes
//! keeps every other rule (skip what a table holds, resume from the lowest
//! table) exactly as it is on one server. One replication domain only: a
//! position in a multi-domain binlog has no single "after".
//!
//! Exactly once holds because, with `gtid_strict_mode`, the sequence numbers
//! of one domain grow along each server's binlog: everything before the
//! found position is at or below the table's GTID (already in the table),
//! everything from it on is above (not yet in it).

use std::time::Duration;

use futures_util::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::BinlogStreamRequest;
use mysql_common::binlog::events::EventData;
use tributary_core::{Gtid, MySqlPosition};

use crate::config::MySqlSourceConfig;
use crate::connect::{binlog_status, connect, server_info, Flavor};
use crate::decoder::mariadb::{MariaDbGtid, GTID_EVENT};
use crate::error::MySqlError;

/// How long the server may take to send the first transaction after a GTID it has.
const FIND_TIMEOUT: Duration = Duration::from_secs(60);

/// Parses a MariaDB GTID position (`@@gtid_binlog_pos`, `BINLOG_GTID_POS()`):
/// comma-separated `domain-server-sequence`, one per domain; empty → none.
pub fn parse_state(text: &str) -> Result<Vec<Gtid>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut fields = part.split('-');
            let mut next = |name: &str| {
                fields
                    .next()
                    .ok_or_else(|| format!("GTID {part:?} has no {name}"))
                    .and_then(|f| f.parse::<u64>().map_err(|_| format!("GTID {part:?}: {name} {f:?} is not a number")))
            };
            let (domain, server_id, sequence) = (next("domain")?, next("server id")?, next("sequence")?);
            let narrow = |v: u64, name: &str| u32::try_from(v).map_err(|_| format!("GTID {part:?}: {name} too large"));
            Ok(Gtid::MariaDb {
                domain: narrow(domain, "domain")?,
                server_id: narrow(server_id, "server id")?,
                sequence,
            })
        })
        .collect()
}

/// The one GTID of a single-domain state; `None` for an empty or multi-domain state.
pub fn single_domain(state: &[Gtid]) -> Option<Gtid> {
    match state {
        [only] => Some(only.clone()),
        _ => None,
    }
}

/// The MariaDB identity text (`mariadb:server_id=1,gtid_domain_id=0`) → its domain.
pub fn identity_domain(identity: &str) -> Option<u32> {
    let rest = identity.strip_prefix("mariadb:")?;
    rest.split(',').find_map(|kv| kv.strip_prefix("gtid_domain_id=")).and_then(|d| d.parse().ok())
}

/// True when `from` and `to` are two MariaDB servers of one replication
/// domain: a table written from `from` can continue on `to` by its GTID.
pub fn same_domain(from: &str, to: &str) -> bool {
    from != to && identity_domain(from).is_some() && identity_domain(from) == identity_domain(to)
}

/// The highest sequence the server `cfg` points at has in its binlog for
/// `gtid`'s origin (its domain and server id; `@@gtid_binlog_state` keeps the
/// last GTID per domain and server id), `None` when it has none: then it never
/// wrote nor replicated a transaction of that server (a shard of the same
/// domain, another history), and is not taken for a promoted replica.
pub async fn origin_sequence(cfg: &MySqlSourceConfig, gtid: &Gtid) -> Result<Option<u64>, MySqlError> {
    let Gtid::MariaDb { domain, server_id, .. } = gtid else { return Ok(None) };
    let mut conn = connect(cfg).await?;
    let state: Option<String> = conn
        .query_first("SELECT @@gtid_binlog_state")
        .await
        .map_err(|e| MySqlError::query("reading the server's GTID state", e))?;
    let _ = conn.disconnect().await;
    let state = parse_state(state.as_deref().unwrap_or(""))
        .map_err(|detail| MySqlError::Protocol { context: "reading the server's GTID state".into(), detail })?;
    Ok(state.iter().find_map(|g| match g {
        Gtid::MariaDb { domain: d, server_id: s, sequence } if d == domain && s == server_id => Some(*sequence),
        _ => None,
    }))
}

/// Why a GTID cannot be continued on this server.
fn not_here(gtid: &Gtid, reason: impl Into<String>) -> MySqlError {
    MySqlError::GtidNotOnServer { gtid: gtid.to_string(), reason: reason.into() }
}

/// Where, in the binlog of the server `cfg` points at, the first transaction
/// after `after` (a MariaDB GTID the lake holds) starts; the end of the
/// binlog when there is none yet. The result carries `after` as its GTID
/// (the last transaction before it). Refused (one line, needs an operator)
/// when the server's binlog does not reach `after` (a replica promoted before
/// it caught up), lacks it (purged, diverged), or holds several domains.
pub async fn position_after(cfg: &MySqlSourceConfig, after: &Gtid) -> Result<MySqlPosition, MySqlError> {
    let Gtid::MariaDb { domain, sequence, .. } = after else {
        return Err(not_here(after, "continuing by a MySQL GTID on another server is not supported"));
    };
    let mut conn = connect(cfg).await?;
    let info = server_info(&mut conn).await?;
    if info.flavor != Flavor::MariaDb {
        return Err(not_here(after, "the server is not MariaDB"));
    }
    let end = binlog_status(&mut conn, &info, &cfg.user).await?;
    let state_text: Option<Option<String>> = conn
        .exec_first("SELECT BINLOG_GTID_POS(?, ?)", (end.file.as_str(), end.offset))
        .await
        .map_err(|e| MySqlError::query("reading the server's GTID position", e))?;
    let state = parse_state(state_text.flatten().as_deref().unwrap_or(""))
        .map_err(|detail| MySqlError::Protocol { context: "reading the server's GTID position".into(), detail })?;
    if state.len() > 1 {
        return Err(not_here(
            after,
            format!(
                "the server's binlog holds several GTID domains ({}); only one domain can be followed",
                join(&state)
            ),
        ));
    }
    let (server_sequence, server_origin) = match state.first() {
        Some(Gtid::MariaDb { domain: d, sequence: s, server_id }) if d == domain => (*s, *server_id),
        _ => {
            return Err(not_here(
                after,
                format!(
                    "the server's binlog has no transaction of domain {domain} (its GTID position is {:?})",
                    join(&state)
                ),
            ))
        }
    };
    if server_sequence < *sequence {
        return Err(not_here(
            after,
            format!(
                "the server's binlog ends at {} before it: it lacks transactions the lake holds (a replica promoted before it caught up?)",
                join(&state)
            ),
        ));
    }
    let Gtid::MariaDb { server_id: origin, .. } = after else { unreachable!("matched above") };
    if server_sequence == *sequence && server_origin != *origin {
        return Err(not_here(
            after,
            format!(
                "the server's binlog ends at {}, another transaction with the same sequence: the histories diverged",
                join(&state)
            ),
        ));
    }
    if server_sequence == *sequence {
        let _ = conn.disconnect().await;
        return Ok(MySqlPosition { gtid: Some(after.clone()), ..end });
    }
    let start =
        tokio::time::timeout(FIND_TIMEOUT, first_group_after(conn, cfg, after, *domain)).await.map_err(|_| {
            not_here(after, format!("the server sent no transaction after it within {} s", FIND_TIMEOUT.as_secs()))
        })??;
    Ok(MySqlPosition { gtid: Some(after.clone()), ..start })
}

/// Asks for the binlog from `after` (`@slave_connect_state`, strict mode) and
/// returns where the first GTID event of `domain` it sends starts.
async fn first_group_after(
    mut conn: mysql_async::Conn,
    cfg: &MySqlSourceConfig,
    after: &Gtid,
    domain: u32,
) -> Result<MySqlPosition, MySqlError> {
    let logs: Vec<mysql_async::Row> =
        conn.query("SHOW BINARY LOGS").await.map_err(|e| MySqlError::query("listing the binary logs", e))?;
    let files: Vec<String> = logs.iter().filter_map(|row| row.get_opt::<String, _>(0).and_then(Result::ok)).collect();
    for sql in [
        format!("SET @slave_connect_state = '{after}'"),
        "SET @slave_gtid_strict_mode = 1".to_string(),
        "SET @slave_gtid_ignore_duplicates = 0".to_string(),
        "SET @mariadb_slave_capability = 4".to_string(),
    ] {
        conn.query_drop(&sql).await.map_err(|e| MySqlError::query(format!("preparing the GTID request ({sql})"), e))?;
    }
    let request = BinlogStreamRequest::new(cfg.server_id);
    let mut stream = conn.get_binlog_stream(request).await.map_err(|e| gtid_stream_error(after, e))?;
    let mut file = String::new();
    let found = loop {
        let Some(event) = stream.next().await else {
            break Err(not_here(after, "the server ended the binlog stream before the next transaction"));
        };
        let event = event.map_err(|e| gtid_stream_error(after, e))?;
        let header = event.header();
        if let Ok(Some(EventData::RotateEvent(rotate))) = event.read_data() {
            file = rotated_file(rotate.name_raw(), &files);
            continue;
        }
        if header.event_type_raw() != GTID_EVENT || header.log_pos() == 0 {
            continue;
        }
        let gtid = MariaDbGtid::parse(event.data(), header.server_id())
            .map_err(|detail| MySqlError::Protocol { context: "reading a GTID event".into(), detail })?;
        if gtid.domain != domain {
            continue;
        }
        let offset = u64::from(header.log_pos()).saturating_sub(u64::from(header.event_size()));
        break Ok(MySqlPosition::new(file.clone(), offset));
    };
    let _ = stream.close().await;
    found
}

/// The file a ROTATE event names. The server's first (artificial) ROTATE
/// comes before the format description, so its checksum is still attached to
/// the name: the longest listed binary log the raw name starts with wins;
/// a file newer than the list loses the 4 checksum bytes when it has them.
fn rotated_file(raw: &[u8], files: &[String]) -> String {
    if let Some(known) = files.iter().filter(|f| raw.starts_with(f.as_bytes())).max_by_key(|f| f.len()) {
        return known.clone();
    }
    let text = String::from_utf8_lossy(raw).trim_end_matches('\0').to_string();
    let is_name =
        |t: &str| t.rsplit('.').next().is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
    if is_name(&text) || raw.len() <= 4 {
        return text;
    }
    String::from_utf8_lossy(&raw[..raw.len() - 4]).to_string()
}

/// The server refusing the GTID (error 1236: not in its binlog, diverged) is one line.
fn gtid_stream_error(after: &Gtid, e: mysql_async::Error) -> MySqlError {
    match e {
        mysql_async::Error::Server(s) if s.code == 1236 => not_here(after, s.message),
        other => MySqlError::query(format!("reading the binlog after GTID {after}"), other),
    }
}

fn join(state: &[Gtid]) -> String {
    state.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_parse_per_domain_and_empty_is_none() {
        let state = parse_state("0-1-100,2-7-5").unwrap();
        assert_eq!(state.len(), 2);
        assert_eq!(state[0], Gtid::MariaDb { domain: 0, server_id: 1, sequence: 100 });
        assert_eq!(single_domain(&state), None, "two domains have no single GTID");
        assert_eq!(single_domain(&parse_state(" 0-2-9 ").unwrap()).unwrap().to_string(), "0-2-9");
        assert!(parse_state("").unwrap().is_empty());
        assert!(parse_state("0-1").is_err() && parse_state("a-1-2").is_err());
    }

    #[test]
    fn the_artificial_rotate_loses_its_checksum_bytes() {
        let files = vec!["mariadb-bin.000001".to_string(), "mariadb-bin.000010".to_string()];
        assert_eq!(rotated_file(b"mariadb-bin.000010\x01\x02\x03\x04", &files), "mariadb-bin.000010");
        assert_eq!(rotated_file(b"mariadb-bin.000001", &files), "mariadb-bin.000001");
        assert_eq!(rotated_file(b"mariadb-bin.000011", &files), "mariadb-bin.000011", "newer than the list");
        assert_eq!(rotated_file(b"mariadb-bin.000011\x01.x\x04", &files), "mariadb-bin.000011");
    }

    #[test]
    fn servers_of_one_domain_continue_each_other_and_others_do_not() {
        let a = "mariadb:server_id=1,gtid_domain_id=0";
        assert!(same_domain(a, "mariadb:server_id=2,gtid_domain_id=0"));
        assert!(!same_domain(a, a), "the same server is no failover");
        assert!(!same_domain(a, "mariadb:server_id=2,gtid_domain_id=1"), "another domain: a shard, not a replica");
        assert!(!same_domain("mysql:server_uuid=x", "mysql:server_uuid=y"));
        assert_eq!(identity_domain("mariadb:server_id=3,gtid_domain_id=12"), Some(12));
    }
}
