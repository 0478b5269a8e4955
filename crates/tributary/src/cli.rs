//! Command-line flags as clap parses them; `main` turns them into commands.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Tributary streams row changes from MySQL / MariaDB into Delta Lake tables
/// with Change Data Feed, exactly once.
#[derive(Debug, Parser)]
#[command(name = "tributary", version, about, long_about = None)]
pub struct Cli {
    /// Log format: human-readable text or one JSON object per line.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// Log filter (tracing env-filter syntax), e.g. `info` or `tributary=debug`.
    #[arg(long, env = "TRIBUTARY_LOG", default_value = "info", global = true)]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the pipeline: snapshot what is new, then stream changes. Ctrl-C /
    /// SIGTERM commits the current batch and exits 0.
    Run {
        /// Pipeline config file.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Check the source: connection, binlog settings, privileges, tables and types.
    Check {
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Per table: Delta version, committed source position, lag, schema changes followed.
    Status {
        #[arg(short, long)]
        config: PathBuf,
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
    /// Print a table's Delta change feed between two versions.
    Changes {
        /// Source table as `database.table` (PostgreSQL: `schema.table`).
        table: String,
        #[arg(short, long)]
        config: PathBuf,
        /// First Delta version to include.
        #[arg(long, default_value_t = 0)]
        from_version: i64,
        /// Last Delta version to include (default: the latest).
        #[arg(long)]
        to_version: Option<i64>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
    /// Compare source tables with their Delta mirrors: row counts, per-row
    /// checksums (chunk by chunk over the primary key), schema, lag.
    #[command(after_help = "Exit codes: 0 every table passed; 1 validation failed (rows, schema or lag differ); \
                      2 could not validate (bad config, source unreachable, mirror unreadable).")]
    Validate {
        #[arg(short, long)]
        config: PathBuf,
        /// Only this table (`database.table`, PostgreSQL `schema.table`; repeatable). Default: every table the config selects.
        #[arg(long = "table")]
        tables: Vec<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        /// Fail a table whose last commit is older than this many seconds.
        #[arg(long)]
        max_lag_secs: Option<u64>,
        /// Source rows per chunk (default: source.snapshot_chunk_rows).
        #[arg(long)]
        chunk_rows: Option<u64>,
    },
    /// Create the reference schemas (customers, orders, products,
    /// inventory_transactions) in a source database if missing, then run
    /// `rate x duration` seeded inserts / updates / deletes at `rate` per second.
    /// The same seed on the same starting tables gives the same statements.
    /// Needs CREATE / INSERT / UPDATE / DELETE: the config's user, or --user
    /// with TRIBUTARY_GENERATE_PASSWORD or --password-file.
    Generate {
        #[arg(short, long)]
        config: PathBuf,
        /// Database to create the tables in (created if missing).
        #[arg(long)]
        database: String,
        /// Statements per second.
        #[arg(long, default_value_t = 10)]
        rate: u64,
        /// Seconds to run; rate x duration statements in all.
        #[arg(long, default_value_t = 10)]
        duration_secs: u64,
        /// RNG seed: same seed, same statements.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Comma-separated subset of customers,orders,products,inventory_transactions.
        #[arg(long = "schema", value_delimiter = ',')]
        schemas: Vec<String>,
        /// Source user with write rights (default: the config's user).
        #[arg(long)]
        user: Option<String>,
        /// Password of that user (default: the config's password). Prefer
        /// the environment variable or --password-file: a flag's value is
        /// visible to every user in the process list.
        #[arg(long, env = "TRIBUTARY_GENERATE_PASSWORD", hide_env_values = true, conflicts_with = "password_file")]
        password: Option<String>,
        /// A file holding the password of that user (one trailing newline is ignored).
        #[arg(long, env = "TRIBUTARY_GENERATE_PASSWORD_FILE")]
        password_file: Option<PathBuf>,
    },
    /// Make this pipeline the owner of a Delta table another pipeline (or
    /// another source) owns, after a person decided so. With the same source
    /// and a complete copy, the table's committed position is carried over and
    /// the pipeline continues exactly once; otherwise its next start copies
    /// the table again, replacing its rows.
    Adopt {
        /// Source table as `database.table` (PostgreSQL: `schema.table`).
        table: String,
        /// The config of the pipeline that takes the table over.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Copy one table again while the running pipeline keeps streaming the
    /// others (after a suspected divergence, a purged binlog, a restored
    /// backup). The table's rows are replaced: its change feed shows every
    /// old row deleted and the copy inserted (docs/snapshots.md). Asks the
    /// `tributary run` of this config over its HTTP port (metrics.listen).
    Resnapshot {
        /// Source table as `database.table` (PostgreSQL: `schema.table`); it needs a primary key.
        table: String,
        #[arg(short, long)]
        config: PathBuf,
        /// The running pipeline's HTTP address (default: metrics.listen of the config).
        #[arg(long)]
        address: Option<String>,
    },
    /// Compact the small data files of the pipeline's Delta tables now (what
    /// `run` does automatically, `[maintenance]`): rows ordered by primary key
    /// into files near `maintenance.target_file_mb`, without data change (the
    /// change feed is untouched). Safe while the pipeline runs.
    Optimize {
        #[arg(short, long)]
        config: PathBuf,
        /// Only these tables (`database.table`); default: every table of the pipeline.
        #[arg(long = "table")]
        tables: Vec<String>,
        /// First upgrade the tables named by `--table` for deletion vectors
        /// (one-way: the `deletionVectors` feature and
        /// `delta.enableDeletionVectors = true`); from then on updates and
        /// deletes mark rows instead of rewriting files (docs/deletion-vectors.md).
        #[arg(long)]
        enable_deletion_vectors: bool,
    },
    /// Delete the files of the pipeline's Delta tables that no version inside
    /// the retention references: data files compaction or updates replaced,
    /// old change data, orphans of failed writes. Time travel to versions
    /// older than the retention stops working.
    Vacuum {
        #[arg(short, long)]
        config: PathBuf,
        /// Only these tables (`database.table`); default: every table of the pipeline.
        #[arg(long = "table")]
        tables: Vec<String>,
        /// Keep files unreferenced for less than this many hours (default:
        /// `maintenance.vacuum_retention_hours`, 168); never below a table's
        /// `delta.deletedFileRetentionDuration`.
        #[arg(long)]
        retention_hours: Option<f64>,
        /// Only list what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
    /// Remove leftovers of test runs (kept Delta table dirs of failed tests) older than an age.
    ///
    /// Only what the test kit created is removed: the root must hold the test
    /// kit's `.tributary-test-root` marker file (otherwise clean refuses it and
    /// exits 1), and inside it only directories carrying the marker are
    /// removed; anything else is kept and listed.
    Clean {
        /// Directory holding the per-run dirs (default: $TRIBUTARY_TEST_ROOT or <tmp>/tributary-tests).
        #[arg(long)]
        root: Option<PathBuf>,
        /// Age, e.g. 30m, 1h, 2d.
        #[arg(long, default_value = "1h")]
        older_than: String,
        /// Only print what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
}
