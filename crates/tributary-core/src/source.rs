//! Settings every source shares: the snapshot mode and where the password
//! may come from.

use serde::Deserialize;

/// Environment variable that overrides the source password in the config file.
pub const PASSWORD_ENV: &str = "TRIBUTARY_SOURCE_PASSWORD";
/// Environment variable naming a file that holds the source password
/// (like `password_file`, which it overrides).
pub const PASSWORD_FILE_ENV: &str = "TRIBUTARY_SOURCE_PASSWORD_FILE";

/// Connections a chunked snapshot reads with, unless configured.
pub const DEFAULT_SNAPSHOT_PARALLELISM: usize = 2;

/// How the initial snapshot copies tables with a primary key
/// (docs/snapshots.md); tables without one are always read in one transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotMethod {
    /// Primary-key chunks in short reads of their own, several connections
    /// at once, no lock, resumable after a crash; exact through replaying the
    /// stream from a position read before the first chunk.
    #[default]
    Chunked,
    /// Every table in one consistent transaction (MySQL: under a global read
    /// lock for an instant, RELOAD needed); a crash copies again from zero.
    OneTransaction,
}

/// Whether new tables are copied before streaming starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotMode {
    /// Copy the current rows of every new table once, at one consistent
    /// source position (MySQL: a consistent read at a binlog position;
    /// PostgreSQL: the slot's exported snapshot), then stream from there.
    #[default]
    Initial,
    /// Only stream changes: new tables start empty at the current position.
    Never,
}
