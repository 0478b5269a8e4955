//! Continuing on a promoted MariaDB replica. Every table records the server
//! it was written from; when the pipeline starts against another server of
//! the same GTID domain (a failover: the address now points at the promoted
//! replica, or the config was changed to it), each table's position is
//! carried over by its GTID before the writers open: where the first
//! transaction after the table's GTID starts in the new server's binlog
//! becomes the table's position, and the new server its recorded source, in
//! one commit per table ([`tributary_delta::ownership::follow_failover`]).
//! A kill during the hand-over leaves each table either on the old server or
//! on the new one, never between; the next start finishes the rest.
//!
//! A server counts as a promoted replica only when its binlog holds
//! transactions of the table's GTID origin (`gtid::origin_sequence`: same
//! domain and server id); a shard of the same domain with another history is
//! refused by the ownership check as before, and so is a table whose copy
//! was not finished (no GTID to prove anything; `tributary adopt` hands it
//! over, copied again). MySQL (server UUIDs, GTID sets) is not followed: the tables
//! are refused with the ownership message, as for any other server.

use crate::config::PipelineConfig;
use anyhow::Context;
use std::collections::HashMap;
use tributary_core::{Gtid, MySqlPosition, SourcePosition, TableId};
use tributary_delta::Owner;
use tributary_mysql::gtid::same_domain;

/// Hands every table of `tables` written from another server of the same
/// MariaDB GTID domain over to the server `owner` names; returns how many.
pub async fn follow(config: &PipelineConfig, owner: &Owner, tables: &[TableId]) -> anyhow::Result<usize> {
    let source = config.mysql("run")?;
    let Some(now) = owner.source.as_deref() else { return Ok(0) };
    if tributary_mysql::gtid::identity_domain(now).is_none() {
        return Ok(0); // not MariaDB: nothing is followed (and no table is read twice at start)
    }
    let mut translated: HashMap<Gtid, MySqlPosition> = HashMap::new();
    let mut followed = 0;
    for id in tables {
        let Some(recorded) = tributary_delta::ownership::recorded(&config.sink.delta, id).await? else { continue };
        let was = match recorded.owner.source.as_deref() {
            Some(was) if recorded.owner.pipeline == owner.pipeline && same_domain(was, now) => was.to_string(),
            _ => continue,
        };
        let Some(position) = recorded.position else {
            // A half-copied table proves nothing about the new server: the ownership
            // check refuses it, and `tributary adopt` hands it over (copied again).
            continue;
        };
        let Some(gtid) = position.as_mysql().and_then(|p| p.gtid.clone()) else {
            anyhow::bail!(
                "table {id} was written from `{was}` and the server is now `{now}` (same GTID domain), but its position {position} carries no GTID (written by an older Tributary): run `tributary adopt {id}` to copy it again from the new server"
            );
        };
        if tributary_mysql::gtid::origin_sequence(source, &gtid).await?.is_none() {
            // Not a replica of the table's server (a shard with the same names, another history):
            // the writer refuses the table with the ownership message.
            tracing::debug!(table = %id, %gtid, "the server's binlog does not hold the table's GTID origin; not a failover");
            continue;
        }
        let at = match translated.get(&gtid) {
            Some(at) => at.clone(),
            None => {
                let at = tributary_mysql::gtid::position_after(source, &gtid)
                    .await
                    .with_context(|| format!("continue table {id} on the new server"))?;
                translated.insert(gtid.clone(), at.clone());
                at
            }
        };
        let at = SourcePosition::MySql(at);
        let version =
            tributary_delta::ownership::follow_failover(&config.sink.delta, id, &recorded.owner, owner, &at).await?;
        tracing::info!(table = %id, %gtid, from = %was, to = %now, old = %position, new = %at, delta_version = version,
            "failover: the table continues after its GTID on the new server");
        followed += 1;
        super::failpoint::after_followed(followed);
    }
    Ok(followed)
}
