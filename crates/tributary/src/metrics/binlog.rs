//! Samples the binary logs the source server still holds (`SHOW BINARY LOGS`)
//! once a minute, for the "binlog close to purge" alert.

use super::Metrics;
use mysql_async::prelude::Queryable;
use std::time::Duration;
use tributary_core::MySqlPosition;
use tributary_mysql::MySqlSourceConfig;

/// How often the source's binary logs are listed.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(60);

/// Starts the sampler; it ends with the process. A failed sample is logged
/// and leaves the previous values in place.
pub fn spawn_sampler(source: MySqlSourceConfig, metrics: Metrics) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        loop {
            tick.tick().await;
            match sample(&source).await {
                Ok((files, oldest)) => metrics.binlog_files(files, oldest),
                Err(e) => tracing::warn!(error = %e, "cannot list the source's binary logs (SHOW BINARY LOGS)"),
            }
        }
    })
}

/// The number of binary log files and the index of the oldest one.
async fn sample(source: &MySqlSourceConfig) -> anyhow::Result<(u64, u64)> {
    let mut conn = tributary_mysql::connect::connect(source).await?;
    let rows: Vec<mysql_async::Row> = conn.query("SHOW BINARY LOGS").await?;
    let _ = conn.disconnect().await;
    let oldest = rows
        .iter()
        .filter_map(|r| r.get::<String, _>(0))
        .map(|file| MySqlPosition::new(file, 0).file_index())
        .min()
        .unwrap_or(0);
    Ok((rows.len() as u64, oldest))
}
