//! `tributary generate`: creates the reference schemas in a source database (if
//! missing) and runs `rate × duration` seeded inserts / updates / deletes at
//! `rate` statements per second. Needs CREATE / INSERT / UPDATE / DELETE on the
//! database: the config's user, or `--user` with its password from
//! `TRIBUTARY_GENERATE_PASSWORD` or `--password-file` (`--password` works,
//! but puts the password in the process list).

use crate::config::PipelineConfig;
use crate::generate::schemas::RefSchema;
use crate::generate::{Generator, Op, TableState};
use anyhow::{bail, Context};
use mysql_async::prelude::Queryable;
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tributary_mysql::connect::connect;

/// What `tributary generate` was asked.
pub struct GenerateArgs<'a> {
    pub config: &'a Path,
    pub database: String,
    pub rate: u64,
    pub duration_secs: u64,
    pub seed: u64,
    pub schemas: Vec<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<std::path::PathBuf>,
}

pub async fn generate(args: GenerateArgs<'_>) -> anyhow::Result<ExitCode> {
    let config = PipelineConfig::load(args.config)?;
    if args.rate == 0 {
        bail!("--rate: must be at least 1 statement per second");
    }
    if args.database.is_empty() || args.database.contains('`') {
        bail!("--database: must be a non-empty name without backticks");
    }
    let mut schemas = Vec::new();
    for name in &args.schemas {
        let Some(schema) = RefSchema::parse(name) else {
            bail!("--schema {name}: expected customers, orders, products or inventory_transactions");
        };
        if !schemas.contains(&schema) {
            schemas.push(schema);
        }
    }
    if schemas.is_empty() {
        schemas = RefSchema::ALL.to_vec();
    }
    let mut source = config.mysql("generate")?.clone();
    if let Some(user) = args.user {
        source.user = user;
    }
    source = source.with_password_override(args.password);
    if let Some(path) = &args.password_file {
        let read = tributary_core::read_secret_file(path, "--password-file").map_err(anyhow::Error::msg)?;
        if let Some(mode) = read.world_readable_mode {
            tracing::warn!(
                "--password-file: {} is readable by every user (mode {mode:o}); run chmod 600 on it",
                path.display()
            );
        }
        source.password = read.secret;
    }
    let mut conn = connect(&source).await?;
    let db = &args.database;
    conn.query_drop(format!("CREATE DATABASE IF NOT EXISTS `{db}`")).await.with_context(|| {
        format!("creating database {db} (needs CREATE; use --user with --password-file or TRIBUTARY_GENERATE_PASSWORD)")
    })?;
    let mut tables = Vec::new();
    for schema in schemas {
        conn.query_drop(schema.ddl(db)).await.with_context(|| format!("creating {db}.{}", schema.name()))?;
        let ids: Vec<i64> = conn
            .query(format!("SELECT id FROM `{db}`.`{}`", schema.name()))
            .await
            .with_context(|| format!("reading the ids of {db}.{}", schema.name()))?;
        tables.push((schema, TableState::from_ids(ids)));
    }

    let total = args.rate.saturating_mul(args.duration_secs);
    let mut generator = Generator::new(db, args.seed, tables);
    let progress = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} statements, {per_sec}, {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let (mut inserts, mut updates, mut deletes) = (0u64, 0u64, 0u64);
    let started = Instant::now();
    for i in 0..total {
        let due = started + Duration::from_secs_f64(i as f64 / args.rate as f64);
        tokio::time::sleep_until(due.into()).await;
        let (op, sql) = generator.next_statement();
        conn.query_drop(&sql).await.with_context(|| format!("statement {} of {total}", i + 1))?;
        match op {
            Op::Insert => inserts += 1,
            Op::Update => updates += 1,
            Op::Delete => deletes += 1,
        }
        if let Some(bar) = &progress {
            bar.set_position(i + 1);
            bar.set_message(format!("{inserts} ins / {updates} upd / {deletes} del"));
        }
    }
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    let _ = conn.disconnect().await;
    println!(
        "generated {total} statements into {db} in {:.1} s: {inserts} inserts, {updates} updates, {deletes} deletes (seed {})",
        started.elapsed().as_secs_f64(),
        args.seed
    );
    Ok(ExitCode::SUCCESS)
}
