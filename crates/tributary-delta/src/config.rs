//! Settings of the Delta Lake sink: where the tables live, how often to
//! checkpoint, how many rows go into one data file, and what a column type
//! change Delta cannot follow does.

use crate::error::DeltaError;
use serde::Deserialize;
use std::path::PathBuf;

/// Settings of the Delta sink (`[sink.delta]` in the config file).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeltaSinkConfig {
    /// Where the Delta tables live, one per source table at `<root>/<schema>/<table>`:
    /// a local directory, or an object-store URL (`s3://bucket/prefix`; see [`crate::storage`]).
    #[serde(default = "default_root")]
    pub root: PathBuf,
    /// `[sink.delta.storage]`: endpoint, region, credentials, ... of an object-store root.
    #[serde(default)]
    pub storage: crate::storage::StorageOptions,
    /// A checkpoint is written every this many Delta commits of a table.
    #[serde(default = "default_checkpoint_interval")]
    pub checkpoint_interval: u64,
    /// Rows per data file written by the snapshot (the upper bound; the last file is smaller).
    #[serde(default = "default_target_file_rows")]
    pub target_file_rows: usize,
    /// What a source column type change that Delta cannot follow (VARCHAR →
    /// INT, INT → DATE, …) does to its table (docs/schema-evolution.md).
    #[serde(default)]
    pub incompatible_type_changes: TypeChangePolicy,
    /// A directory level between the root and the tables
    /// (`<root>/<table_prefix>/<schema>/<table>`), so pipelines of shards whose
    /// databases have the same names write different tables under one root.
    #[serde(default)]
    pub table_prefix: Option<String>,
    /// How updates and deletes of tables with a primary key change data files
    /// (docs/deletion-vectors.md); `None` (not set) is [`UpdateMode::default`]
    /// and differs only in that an existing table without deletion vectors is
    /// rewritten quietly instead of with a warning.
    #[serde(default)]
    pub update_mode: Option<UpdateMode>,
}

/// `sink.delta.update_mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateMode {
    /// Copy-on-write: every data file holding an updated or deleted row is
    /// rewritten without it. Tables that already have deletion vectors are
    /// written with them all the same.
    Rewrite,
    /// The default: the superseded rows are marked in their file's deletion
    /// vector and the new row versions appended. New tables with a primary
    /// key get the `deletionVectors` feature when created; an existing table
    /// without it keeps being rewritten (the protocol upgrade is one-way and
    /// never made silently).
    #[default]
    DeletionVectors,
}

/// `sink.delta.incompatible_type_changes`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TypeChangePolicy {
    /// The table stops with an error naming the column, both types and the
    /// options; the other tables keep flowing.
    #[default]
    Stop,
    /// The column is stored as text from then on: its Delta type becomes (or
    /// stays) `string` and every value is written as its text form. Not for
    /// primary-key columns.
    String,
}

impl DeltaSinkConfig {
    /// Default for [`DeltaSinkConfig::root`].
    pub const DEFAULT_ROOT: &'static str = "./delta-tables";
    /// Default for [`DeltaSinkConfig::checkpoint_interval`].
    pub const DEFAULT_CHECKPOINT_INTERVAL: u64 = 10;
    /// Default for [`DeltaSinkConfig::target_file_rows`].
    pub const DEFAULT_TARGET_FILE_ROWS: usize = 1_000_000;

    /// A config with every default and the given root.
    pub fn with_root(root: impl Into<PathBuf>) -> Self {
        DeltaSinkConfig { root: root.into(), ..DeltaSinkConfig::default() }
    }

    /// How updates and deletes change data files: the configured mode, or
    /// the default one.
    pub fn update_mode(&self) -> UpdateMode {
        self.update_mode.unwrap_or_default()
    }

    /// The directory of the Delta table mirroring `id`:
    /// `<root>[/<table_prefix>]/<schema>/<table>`.
    pub fn table_path(&self, id: &tributary_core::TableId) -> PathBuf {
        self.tables_root().join(&id.schema).join(&id.name)
    }

    /// The directory holding this pipeline's `<schema>/<table>` directories:
    /// `<root>[/<table_prefix>]`.
    pub fn tables_root(&self) -> PathBuf {
        match &self.table_prefix {
            Some(prefix) => self.root.join(prefix),
            None => self.root.clone(),
        }
    }

    /// Checks every field; the error names the field and the rule it breaks.
    pub fn validate(&self) -> Result<(), DeltaError> {
        if let Some(prefix) = &self.table_prefix {
            let bad_part = |p: &str| p.is_empty() || p == "." || p == ".." || p.starts_with('_') || p.contains('\\');
            if prefix.starts_with('/') || prefix.split('/').any(bad_part) {
                return Err(DeltaError::Config {
                    field: "sink.delta.table_prefix",
                    problem: format!(
                        "{prefix:?} must be a relative path of plain names (e.g. \"shard1\"), without \"..\" or a leading \"_\""
                    ),
                });
            }
        }
        if self.root.as_os_str().is_empty() {
            return Err(DeltaError::Config { field: "sink.delta.root", problem: "must not be empty".into() });
        }
        match crate::storage::remote_url(&self.root) {
            Some(url) => self.storage.validate(url.scheme())?,
            None if self.root.to_str().is_some_and(|r| r.contains("://") && !r.starts_with("file://")) => {
                return Err(DeltaError::Config {
                    field: "sink.delta.root",
                    problem: format!(
                        "{} is neither a local directory nor an object store URL Tributary knows \
                         (s3://bucket/prefix, gs://bucket/prefix, abfss://container@account.dfs.core.windows.net/prefix)",
                        self.root.display()
                    ),
                })
            }
            None if !self.storage.0.is_empty() => {
                return Err(DeltaError::Config {
                    field: "sink.delta.storage",
                    problem: "is only for an object-store root (sink.delta.root = \"s3://bucket/prefix\")".into(),
                })
            }
            None => {}
        }
        if self.checkpoint_interval == 0 {
            return Err(DeltaError::Config {
                field: "sink.delta.checkpoint_interval",
                problem: "must be at least 1".into(),
            });
        }
        if self.target_file_rows == 0 {
            return Err(DeltaError::Config {
                field: "sink.delta.target_file_rows",
                problem: "must be at least 1".into(),
            });
        }
        Ok(())
    }
}

impl Default for DeltaSinkConfig {
    fn default() -> Self {
        DeltaSinkConfig {
            root: default_root(),
            storage: Default::default(),
            table_prefix: None,
            checkpoint_interval: DeltaSinkConfig::DEFAULT_CHECKPOINT_INTERVAL,
            target_file_rows: DeltaSinkConfig::DEFAULT_TARGET_FILE_ROWS,
            incompatible_type_changes: TypeChangePolicy::Stop,
            update_mode: None,
        }
    }
}

fn default_root() -> PathBuf {
    PathBuf::from(DeltaSinkConfig::DEFAULT_ROOT)
}

fn default_checkpoint_interval() -> u64 {
    DeltaSinkConfig::DEFAULT_CHECKPOINT_INTERVAL
}

fn default_target_file_rows() -> usize {
    DeltaSinkConfig::DEFAULT_TARGET_FILE_ROWS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_takes_every_default() {
        let cfg: DeltaSinkConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(cfg, DeltaSinkConfig::default());
        assert_eq!(cfg.root, PathBuf::from("./delta-tables"));
        cfg.validate().unwrap();
    }

    #[test]
    fn incompatible_type_changes_is_stop_or_string() {
        let cfg: DeltaSinkConfig = serde_json::from_str(r#"{"incompatible_type_changes": "string"}"#).unwrap();
        assert_eq!(cfg.incompatible_type_changes, TypeChangePolicy::String);
        let err = serde_json::from_str::<DeltaSinkConfig>(r#"{"incompatible_type_changes": "text"}"#).unwrap_err();
        assert!(err.to_string().contains("stop") && err.to_string().contains("string"), "{err}");
    }

    #[test]
    fn update_mode_is_rewrite_or_deletion_vectors() {
        assert_eq!(DeltaSinkConfig::default().update_mode(), UpdateMode::DeletionVectors);
        let cfg: DeltaSinkConfig = serde_json::from_str(r#"{"update_mode": "rewrite"}"#).unwrap();
        assert_eq!(cfg.update_mode, Some(UpdateMode::Rewrite));
        let cfg: DeltaSinkConfig = serde_json::from_str(r#"{"update_mode": "deletion_vectors"}"#).unwrap();
        assert_eq!(cfg.update_mode, Some(UpdateMode::DeletionVectors));
        let err = serde_json::from_str::<DeltaSinkConfig>(r#"{"update_mode": "dv"}"#).unwrap_err();
        assert!(err.to_string().contains("deletion_vectors") && err.to_string().contains("rewrite"), "{err}");
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = serde_json::from_str::<DeltaSinkConfig>(r#"{"root": "/x", "rooot": "/y"}"#).unwrap_err();
        assert!(err.to_string().contains("rooot"), "{err}");
    }

    #[test]
    fn validate_names_the_failing_field() {
        let cfg = DeltaSinkConfig { checkpoint_interval: 0, ..DeltaSinkConfig::default() };
        assert!(cfg.validate().unwrap_err().to_string().contains("sink.delta.checkpoint_interval"));
        let cfg = DeltaSinkConfig { target_file_rows: 0, ..DeltaSinkConfig::default() };
        assert!(cfg.validate().unwrap_err().to_string().contains("sink.delta.target_file_rows"));
        let cfg = DeltaSinkConfig { root: PathBuf::new(), ..DeltaSinkConfig::default() };
        assert!(cfg.validate().unwrap_err().to_string().contains("sink.delta.root"));
    }
}
