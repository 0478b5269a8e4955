//! The pipeline config file (`pipeline.toml`): TOML, unknown keys rejected by
//! name, secrets from the environment, validated once at load.

use anyhow::{bail, Context};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use tributary_core::{read_secret_file, Secret, PASSWORD_ENV, PASSWORD_FILE_ENV};
use tributary_delta::DeltaSinkConfig;
use tributary_mysql::MySqlSourceConfig;
use tributary_postgres::PostgresSourceConfig;

/// Default rows per micro-batch.
pub const DEFAULT_BATCH_MAX_ROWS: usize = 100_000;
/// Default for [`PipelineSection::transaction_part_rows`]: parts of 100,000
/// random-key changes into a 5M-row table peaked at 277 MB RSS, parts of
/// 50,000 at 176 MB (deletion vectors, release build).
pub const DEFAULT_TRANSACTION_PART_ROWS: usize = 50_000;
/// Default longest wait before a micro-batch is committed.
pub const DEFAULT_BATCH_MAX_WAIT_MS: u64 = 1_000;
/// Default interval after which idle tables get a position-only commit.
pub const DEFAULT_IDLE_COMMIT_SECS: u64 = 300;

/// The whole `pipeline.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    pub pipeline: PipelineSection,
    pub source: SourceConfig,
    #[serde(default)]
    pub sink: SinkConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub maintenance: MaintenanceConfig,
}

/// `[maintenance]`: what `tributary run` does to keep its tables healthy
/// (docs/operations.md "Table maintenance"), and the defaults of `tributary
/// optimize` / `tributary vacuum`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceConfig {
    /// Compact small data files automatically while streaming.
    #[serde(default = "default_true")]
    pub compaction: bool,
    /// Size compaction aims for; files below half of it count as small.
    #[serde(default = "default_target_file_mb")]
    pub target_file_mb: u64,
    /// A table is compacted once it has this many small data files.
    #[serde(default = "default_min_small_files")]
    pub min_small_files: usize,
    /// At most this much Parquet is rewritten in one compaction run: it holds
    /// streaming up meanwhile and is decoded in memory (about 4x its size).
    #[serde(default = "default_max_compaction_mb")]
    pub max_compaction_mb: u64,
    /// How often `run` looks for tables to compact.
    #[serde(default = "default_maintenance_interval_secs")]
    pub check_interval_secs: u64,
    /// Vacuum automatically while streaming.
    #[serde(default = "default_true")]
    pub vacuum: bool,
    /// Files no longer referenced are kept this long (time travel, readers
    /// of older versions); also recorded as the tables'
    /// `delta.deletedFileRetentionDuration`, which Spark's VACUUM honours too.
    #[serde(default = "default_vacuum_retention_hours")]
    pub vacuum_retention_hours: f64,
    /// How often `run` vacuums each table.
    #[serde(default = "default_vacuum_interval_secs")]
    pub vacuum_interval_secs: u64,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        MaintenanceConfig {
            compaction: true,
            target_file_mb: default_target_file_mb(),
            min_small_files: default_min_small_files(),
            max_compaction_mb: default_max_compaction_mb(),
            check_interval_secs: default_maintenance_interval_secs(),
            vacuum: true,
            vacuum_retention_hours: default_vacuum_retention_hours(),
            vacuum_interval_secs: default_vacuum_interval_secs(),
        }
    }
}

impl MaintenanceConfig {
    /// The compaction settings for the Delta writers.
    pub fn compaction_options(&self) -> tributary_delta::CompactionOptions {
        tributary_delta::CompactionOptions {
            target_file_bytes: self.target_file_mb.max(1) * 1024 * 1024,
            min_small_files: self.min_small_files,
            max_bytes_per_run: self.max_compaction_mb.max(1) * 1024 * 1024,
        }
    }

    /// How long unreferenced files are kept.
    pub fn vacuum_retention(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.vacuum_retention_hours * 3600.0)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if !(self.vacuum_retention_hours.is_finite() && self.vacuum_retention_hours >= 0.0) {
            bail!("maintenance.vacuum_retention_hours: must be a number of hours >= 0 (default 168, 7 days)");
        }
        if self.min_small_files < 2 {
            bail!("maintenance.min_small_files: must be at least 2 (compaction combines files)");
        }
        if self.check_interval_secs == 0 || self.vacuum_interval_secs == 0 {
            bail!("maintenance.check_interval_secs / vacuum_interval_secs: must be at least 1 second");
        }
        Ok(())
    }
}

fn default_true() -> bool {
    true
}
fn default_target_file_mb() -> u64 {
    64
}
fn default_min_small_files() -> usize {
    16
}
fn default_max_compaction_mb() -> u64 {
    48
}
fn default_maintenance_interval_secs() -> u64 {
    60
}
fn default_vacuum_retention_hours() -> f64 {
    168.0
}
fn default_vacuum_interval_secs() -> u64 {
    3600
}

/// `[pipeline]`: name and batching.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSection {
    /// Names the pipeline; it is the app id of the Delta `txn` actions.
    pub name: String,
    #[serde(default = "default_batch_max_rows")]
    pub batch_max_rows: usize,
    #[serde(default = "default_batch_max_wait_ms")]
    pub batch_max_wait_ms: u64,
    /// A source transaction with more changes than this is applied in parts
    /// of this many changes that stay invisible until its last part commits
    /// (bounded memory); 0: never split (the transaction is held whole).
    #[serde(default = "default_transaction_part_rows")]
    pub transaction_part_rows: usize,
    #[serde(default = "default_idle_commit_secs")]
    pub idle_commit_secs: u64,
    /// Longest wait between two attempts to reconnect to the source.
    #[serde(default = "default_reconnect_max_secs")]
    pub reconnect_max_secs: u64,
    /// Failed reconnect attempts in a row before the pipeline stops; 0: never stops trying.
    #[serde(default)]
    pub reconnect_max_attempts: u32,
}

/// `[source.<kind>]`: exactly one source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub enum SourceConfig {
    Mysql(MySqlSourceConfig),
    Postgres(PostgresSourceConfig),
}

/// `[sink.delta]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    #[serde(default)]
    pub delta: DeltaSinkConfig,
}

/// Default address of `/metrics`, `/healthz` and `/readyz`: loopback only.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9187";

/// `[metrics]`: where `tributary run` serves its endpoints.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// `host:port`; loopback by default, port 0 picks a free one.
    #[serde(default = "default_metrics_listen")]
    pub listen: String,
    /// `/healthz` fails once a due batch has waited this long for a successful commit.
    #[serde(default = "default_health_commit_stall_secs")]
    pub health_commit_stall_secs: u64,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { listen: default_metrics_listen(), health_commit_stall_secs: default_health_commit_stall_secs() }
    }
}

fn default_health_commit_stall_secs() -> u64 {
    crate::metrics::health::DEFAULT_COMMIT_STALL.as_secs()
}

impl MetricsConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            bail!(
                "metrics.listen: expected an IP address and port such as \"{DEFAULT_METRICS_LISTEN}\" (got {:?})",
                self.listen
            );
        }
        if self.health_commit_stall_secs == 0 {
            bail!("metrics.health_commit_stall_secs: must be at least 1 (seconds a due batch may wait for its commit before /healthz fails)");
        }
        Ok(())
    }
}

fn default_metrics_listen() -> String {
    DEFAULT_METRICS_LISTEN.to_string()
}

fn default_batch_max_rows() -> usize {
    DEFAULT_BATCH_MAX_ROWS
}
fn default_transaction_part_rows() -> usize {
    DEFAULT_TRANSACTION_PART_ROWS
}
fn default_batch_max_wait_ms() -> u64 {
    DEFAULT_BATCH_MAX_WAIT_MS
}
fn default_idle_commit_secs() -> u64 {
    DEFAULT_IDLE_COMMIT_SECS
}
fn default_reconnect_max_secs() -> u64 {
    crate::pipeline::reconnect::DEFAULT_MAX_DELAY_SECS
}

impl PipelineConfig {
    /// Reads, parses (rejecting unknown keys), applies env overrides and validates.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("config {}", path.display()))
    }

    /// Parses TOML text, applies env overrides and validates.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut config: PipelineConfig =
            toml::from_str(text).map_err(|e| anyhow::anyhow!(crate::one_line(&anyhow::Error::new(e))))?;
        match &mut config.source {
            SourceConfig::Mysql(m) => resolve_password(&mut m.password, &mut m.password_file)?,
            SourceConfig::Postgres(p) => resolve_password(&mut p.password, &mut p.password_file)?,
        }
        config.validate()?;
        // The storage options of an object-store root apply to every table below it.
        tributary_delta::register_root(&config.sink.delta.root, &config.sink.delta.storage)?;
        Ok(config)
    }

    /// Checks every field; the error names the failing one.
    pub fn validate(&self) -> anyhow::Result<()> {
        let name = &self.pipeline.name;
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            bail!("pipeline.name: must be non-empty and use only letters, digits, '-' and '_' (got {name:?})");
        }
        if self.pipeline.batch_max_rows == 0 {
            bail!("pipeline.batch_max_rows: must be at least 1");
        }
        if self.pipeline.batch_max_wait_ms == 0 {
            bail!("pipeline.batch_max_wait_ms: must be at least 1");
        }
        if self.pipeline.reconnect_max_secs == 0 {
            bail!("pipeline.reconnect_max_secs: must be at least 1 (the longest wait between two reconnect attempts)");
        }
        match &self.source {
            SourceConfig::Mysql(m) => m.validate()?,
            SourceConfig::Postgres(p) => p.validate()?,
        }
        self.sink.delta.validate()?;
        self.metrics.validate()?;
        self.maintenance.validate()?;
        Ok(())
    }

    /// The MySQL source config; `command` names what needs it, for the error
    /// given for another source.
    pub fn mysql(&self, command: &str) -> anyhow::Result<&MySqlSourceConfig> {
        match &self.source {
            SourceConfig::Mysql(m) => Ok(m),
            SourceConfig::Postgres(_) => {
                bail!("`tributary {command}` supports MySQL / MariaDB sources only; this config has [source.postgres]")
            }
        }
    }
}

/// Sets the source password from, in this order: [`PASSWORD_ENV`],
/// [`PASSWORD_FILE_ENV`], `source.password_file`, `source.password`; the file
/// is read here (then `password_file` is `None`). Two settings of one place
/// (both keys, or both variables) are refused; a file every user may read is
/// warned about. Nothing here prints the password.
fn resolve_password(password: &mut Secret, password_file: &mut Option<PathBuf>) -> anyhow::Result<()> {
    if !password.is_empty() && password_file.is_some() {
        bail!("source.password and source.password_file are both set; keep one (password_file keeps the password out of the config)");
    }
    let env_password = std::env::var(PASSWORD_ENV).ok();
    let env_file = std::env::var_os(PASSWORD_FILE_ENV).filter(|f| !f.is_empty()).map(PathBuf::from);
    if env_password.is_some() && env_file.is_some() {
        bail!("{PASSWORD_ENV} and {PASSWORD_FILE_ENV} are both set; unset one");
    }
    let config_file = password_file.take();
    if let Some(p) = env_password {
        *password = Secret::new(p);
        return Ok(());
    }
    let (path, field) = match (env_file, config_file) {
        (Some(path), _) => (path, PASSWORD_FILE_ENV),
        (None, Some(path)) => (path, "source.password_file"),
        (None, None) => return Ok(()),
    };
    let read = read_secret_file(&path, field).map_err(anyhow::Error::msg)?;
    if let Some(mode) = read.world_readable_mode {
        tracing::warn!(
            "{field}: {} is readable by every user (mode {mode:o}); run chmod 600 (or 640 for a group) on it",
            path.display()
        );
    }
    *password = read.secret;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
        [pipeline]
        name = "shop"
        [source.mysql]
        user = "cdc"
        password = "from-file"
        include = ["shop.*"]
        [sink.delta]
        root = "/tmp/lake"
    "#;

    #[test]
    fn the_example_config_parses_with_defaults() {
        let c = PipelineConfig::parse(EXAMPLE).unwrap();
        assert_eq!(c.pipeline.name, "shop");
        assert_eq!(c.pipeline.batch_max_rows, DEFAULT_BATCH_MAX_ROWS);
        assert_eq!(c.pipeline.transaction_part_rows, DEFAULT_TRANSACTION_PART_ROWS);
        assert_eq!((c.pipeline.reconnect_max_secs, c.pipeline.reconnect_max_attempts), (10, 0));
        assert_eq!(c.sink.delta.root, std::path::PathBuf::from("/tmp/lake"));
    }

    #[test]
    fn unknown_keys_are_rejected_by_name() {
        let text = EXAMPLE.replace("name = \"shop\"", "name = \"shop\"\nbatch_size = 5");
        let err = PipelineConfig::parse(&text).unwrap_err().to_string();
        assert!(err.contains("batch_size"), "{err}");
        assert!(!err.contains('\n'), "one line: {err}");
    }

    #[test]
    fn a_bad_pipeline_name_names_the_field() {
        let text = EXAMPLE.replace("\"shop\"", "\"shop floor\"");
        let err = PipelineConfig::parse(&text).unwrap_err().to_string();
        assert!(err.contains("pipeline.name"), "{err}");
    }

    #[test]
    fn metrics_listen_on_loopback_by_default_and_a_bad_address_names_the_key() {
        let c = PipelineConfig::parse(EXAMPLE).unwrap();
        assert_eq!(c.metrics.listen, "127.0.0.1:9187");
        let text = format!("{EXAMPLE}\n[metrics]\nlisten = \"127.0.0.1:0\"\n");
        assert_eq!(PipelineConfig::parse(&text).unwrap().metrics.listen, "127.0.0.1:0");
        let err = PipelineConfig::parse(&format!("{EXAMPLE}\n[metrics]\nlisten = \"localhost\"\n")).unwrap_err();
        assert!(err.to_string().contains("metrics.listen"), "{err}");
        let err = PipelineConfig::parse(&format!("{EXAMPLE}\n[metrics]\nport = 1\n")).unwrap_err();
        assert!(err.to_string().contains("port"), "{err}");
    }

    #[test]
    fn a_postgres_source_parses_and_its_slot_name_is_checked() {
        let text = r#"
            [pipeline]
            name = "shop"
            [source.postgres]
            user = "cdc"
            database = "shop"
            slot = "shop_slot"
            include = ["public.*"]
        "#;
        let c = PipelineConfig::parse(text).unwrap();
        let SourceConfig::Postgres(p) = &c.source else { panic!("postgres source") };
        assert_eq!((p.slot.as_str(), p.publication.as_str(), p.port), ("shop_slot", "tributary", 5432));
        let err = PipelineConfig::parse(&text.replace("shop_slot", "Shop-Slot")).unwrap_err().to_string();
        assert!(err.contains("source.slot"), "{err}");
        assert!(c.mysql("validate").unwrap_err().to_string().contains("MySQL"));
    }

    #[test]
    fn password_file_is_read_and_password_with_password_file_is_refused() {
        if std::env::var_os(PASSWORD_ENV).is_some() || std::env::var_os(PASSWORD_FILE_ENV).is_some() {
            return; // the environment overrides both keys
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "from-a-file\n").unwrap();
        let text =
            EXAMPLE.replace("password = \"from-file\"", &format!("password_file = {:?}", file.display().to_string()));
        let c = PipelineConfig::parse(&text).unwrap();
        let m = c.mysql("run").unwrap();
        assert_eq!((m.password.expose(), m.password_file.is_none()), ("from-a-file", true));
        let both =
            EXAMPLE.replace("password = ", &format!("password_file = {:?}\npassword = ", file.display().to_string()));
        let err = PipelineConfig::parse(&both).unwrap_err().to_string();
        assert!(err.contains("source.password and source.password_file are both set"), "{err}");
        let missing = text.replace("/pw", "/no-such-file");
        let err = PipelineConfig::parse(&missing).unwrap_err().to_string();
        assert!(err.contains("source.password_file: cannot read") && err.contains("no-such-file"), "{err}");
    }

    #[test]
    fn the_password_is_not_in_debug_output() {
        let c = PipelineConfig::parse(EXAMPLE).unwrap();
        assert!(!format!("{c:?}").contains("from-file"));
    }
}
