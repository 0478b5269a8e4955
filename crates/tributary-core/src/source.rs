//! Settings every source shares: the snapshot mode and where the password
//! may come from.

use serde::Deserialize;

/// Environment variable that overrides the source password in the config file.
pub const PASSWORD_ENV: &str = "TRIBUTARY_SOURCE_PASSWORD";
/// Environment variable naming a file that holds the source password
/// (like `password_file`, which it overrides).
pub const PASSWORD_FILE_ENV: &str = "TRIBUTARY_SOURCE_PASSWORD_FILE";

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
