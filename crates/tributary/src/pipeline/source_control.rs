//! What the source-neutral runner needs from a source besides its events:
//! telling the source what is durable in Delta, stopping its reader, and the
//! source's identity that every table the pipeline writes records. Each
//! source implements [`SourceControl`] in its own start module
//! (`mysql_source`, `postgres_source`); the runner names no source's types,
//! so a new source adds one implementation and one arm here and where
//! sources start.

use crate::config::{PipelineConfig, SourceConfig};
use tokio::task::JoinHandle;
use tributary_core::SourcePosition;
use tributary_delta::Owner;

/// This pipeline and its source's identity: the owner of every table it
/// writes (`crate::commands::adopt` hands a table to it).
pub async fn owner(config: &PipelineConfig) -> anyhow::Result<Owner> {
    let identity = match &config.source {
        SourceConfig::Mysql(source) => tributary_mysql::identity::source_identity(source).await?,
        SourceConfig::Postgres(source) => tributary_postgres::identity::source_identity(source).await?,
    };
    Ok(Owner::new(config.pipeline.name.clone(), identity))
}

/// The control side of a started source.
pub trait SourceControl: Send {
    /// Everything up to `position` is durable in Delta. PostgreSQL confirms
    /// it as the slot's flush position; a MySQL binlog keeps no state for us.
    fn confirm(&self, position: &SourcePosition);

    /// Asks the reader to stop (after telling the source what was confirmed
    /// last) and returns its task to await; `None` when the reader cannot
    /// stop on its own and is simply aborted with the other tasks.
    fn stop(self: Box<Self>) -> Option<JoinHandle<()>>;
}

/// A source that keeps no state for us and whose reader is aborted at the end (MySQL binlog).
pub struct Stateless;

impl SourceControl for Stateless {
    fn confirm(&self, _position: &SourcePosition) {}

    fn stop(self: Box<Self>) -> Option<JoinHandle<()>> {
        None
    }
}
