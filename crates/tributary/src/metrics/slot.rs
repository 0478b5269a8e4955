//! Samples how much WAL the PostgreSQL server keeps for the pipeline's
//! replication slot, for the "slot WAL retention high" alert.

use super::Metrics;
use std::time::Duration;
use tributary_postgres::PostgresSourceConfig;

/// How often the slot is sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(15);

/// Starts the sampler; a failed sample is logged and keeps the previous value.
pub fn spawn_sampler(source: PostgresSourceConfig, metrics: Metrics) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut client = None;
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        loop {
            tick.tick().await;
            if client.is_none() {
                client = tributary_postgres::connect::connect(&source).await.ok();
            }
            let Some(session) = &client else { continue };
            match tributary_postgres::stream::slot_retained_wal(session, &source.slot).await {
                Ok(Some(bytes)) => metrics.slot_retained_wal(bytes),
                Ok(None) => tracing::warn!(slot = %source.slot, "the replication slot is gone"),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the slot's retained WAL");
                    client = None;
                }
            }
        }
    })
}
