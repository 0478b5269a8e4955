//! `tributary validate`: every selected source table against its Delta mirror
//! (row counts, per-row checksums chunk by chunk over the primary key, schema,
//! lag), for MySQL / MariaDB and PostgreSQL sources alike. Exit 0 nothing
//! failed (every table passed or, without a primary key, was not compared row
//! by row), 1 validation failed, 2 could not validate.

use crate::config::{PipelineConfig, SourceConfig};
use crate::metrics::validation::{self, TableResult, ValidationFile};
use crate::pipeline::snapshot::SnapshotSource;
use crate::validate::compare::{index_mirror, name_extra_keys, Comparator};
use crate::validate::report::{render_table, Outcome, TableReport};
use crate::validate::{schema_check, EXIT_ERROR, EXIT_FAILED, EXIT_PASSED};
use anyhow::{bail, Context};
use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;
use tributary_core::{Row, TableId, TableSchema};

/// What `tributary validate` was asked.
pub struct ValidateArgs<'a> {
    pub config: &'a Path,
    pub tables: Vec<String>,
    pub json: bool,
    pub max_lag_secs: Option<u64>,
    pub chunk_rows: Option<u64>,
}

pub async fn validate(args: ValidateArgs<'_>) -> anyhow::Result<ExitCode> {
    let json = args.json;
    match run(args).await {
        Ok(passed) => Ok(ExitCode::from(if passed { EXIT_PASSED } else { EXIT_FAILED })),
        Err(e) => {
            let message = crate::one_line(&e);
            if json {
                println!("{}", serde_json::json!({ "passed": false, "error": message }));
            }
            eprintln!("error: cannot validate: {message}");
            Ok(ExitCode::from(EXIT_ERROR))
        }
    }
}

/// Validates and prints; true when no table failed (each passed or, without a
/// primary key, was not compared row by row).
async fn run(args: ValidateArgs<'_>) -> anyhow::Result<bool> {
    let started = Instant::now();
    let config = PipelineConfig::load(args.config)?;
    if args.chunk_rows == Some(0) {
        bail!("--chunk-rows: must be at least 1");
    }
    let (selected, mut reader) = SourceReader::open(&config.source, args.chunk_rows, &args.tables).await?;
    let root = &config.sink.delta.root;
    let now_ms = crate::pipeline::snapshot::now_micros() / 1000;

    let mut reports = Vec::with_capacity(selected.len());
    for schema in &selected {
        let table_started = Instant::now();
        let path = config.sink.delta.table_path(&schema.id);
        let mut report = TableReport::new(schema.clone());
        report.max_lag_secs = args.max_lag_secs;
        if !tributary_delta::table_exists(&path) {
            report.problems.push(format!("no Delta mirror at {}", path.display()));
            report.seconds = table_started.elapsed().as_secs_f64();
            reports.push(report);
            continue;
        }
        let status = tributary_delta::table_status(&path, &config.pipeline.name)
            .await
            .with_context(|| format!("reading the mirror of {}", schema.id))?;
        report.lag_secs = status.last_commit_ts_ms.map(|t| (now_ms - t).max(0) as f64 / 1000.0);
        if let Some(max) = args.max_lag_secs {
            match report.lag_secs {
                Some(lag) if lag > max as f64 => {
                    report.problems.push(format!("lag {lag:.1} s exceeds --max-lag-secs {max}"))
                }
                Some(_) => {}
                None => report.problems.push(format!("no commit by pipeline {} yet", config.pipeline.name)),
            }
        }
        if !status.snapshot_complete {
            report.notes.push("the mirror's snapshot copy has not finished".into());
        }
        let mirror_schema = tributary_delta::mirror::mirror_schema(&path)
            .await
            .with_context(|| format!("reading the mirror schema of {}", schema.id))?;
        let schema_report = schema_check::check(schema, &mirror_schema);
        report.notes.extend(schema_report.notes());
        report.schema_report = Some(schema_report);
        // Keyed in the source but streamed as a changelog (the key came later): not comparable.
        let keyed = schema.has_primary_key() && mirror_schema.stored.as_ref().is_none_or(|s| s.has_primary_key());
        if keyed {
            let index =
                index_mirror(&path, schema).await.with_context(|| format!("reading the mirror of {}", schema.id))?;
            report.delta_rows = Some(index.rows);
            let mut comparator = Comparator::new(schema, index).with_text_columns(&mirror_schema.text_columns);
            while let Some(chunk) = reader.next_chunk(schema).await? {
                comparator.source_chunk(&chunk);
            }
            let (mut diffs, extra) = comparator.finish();
            let named = name_extra_keys(&path, schema, &extra)
                .await
                .with_context(|| format!("reading the mirror of {}", schema.id))?;
            Comparator::add_extra_keys(&mut diffs, named);
            report.diffs = Some(diffs);
        } else {
            report.delta_rows = status.rows.map(|n| n as u64);
            report.notes.push("no primary key: the mirror is an append-only changelog; rows not compared, schema and lag checked only".into());
        }
        report.seconds = table_started.elapsed().as_secs_f64();
        reports.push(report);
    }
    reader.finish().await;

    let failed = reports.iter().filter(|r| r.outcome() == Outcome::Failed).count();
    let not_compared: Vec<String> =
        reports.iter().filter(|r| r.outcome() == Outcome::NotCompared).map(|r| r.schema.id.to_string()).collect();
    let passed = failed == 0;
    let record = validation::file_path(root);
    if let Err(e) = record_result(&record, &reports, passed) {
        eprintln!("warning: cannot record the result for the pipeline's metrics in {}: {e}", record.display());
    }
    if args.json {
        let doc = serde_json::json!({
            "passed": passed,
            "not_compared": not_compared,
            "tables": reports.iter().map(TableReport::to_json).collect::<Vec<_>>(),
            "seconds": (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{}", render_table(&reports));
        let elapsed = started.elapsed().as_secs_f64();
        let compared = reports.len() - not_compared.len();
        if passed && not_compared.is_empty() {
            println!("\nvalidation passed: {} table(s) in {elapsed:.1} s", reports.len());
        } else if passed {
            println!(
                "\nvalidation passed for {compared} table(s); {} table(s) NOT COMPARED row by row (no primary key, \
                 schema and lag checked only): {} (in {elapsed:.1} s)",
                not_compared.len(),
                not_compared.join(", ")
            );
        } else {
            println!("\nvalidation FAILED: {failed} of {} table(s) differ (in {elapsed:.1} s)", reports.len());
        }
    }
    Ok(passed)
}

/// The source side: one consistent read of the selected tables, in
/// primary-key-ordered chunks, through the readers of the pipeline's snapshot
/// ([`SnapshotSource`]), so each source's values are typed as its pipeline types them.
enum SourceReader {
    /// A fresh `START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY` (no
    /// lock, no binlog position; the schemas are read just before it).
    Mysql(tributary_mysql::snapshot::SnapshotReader),
    /// A fresh REPEATABLE READ READ ONLY transaction (no slot, no exported
    /// snapshot); the schemas are read inside it, as of the same snapshot.
    Postgres(tributary_postgres::snapshot::SnapshotReader),
}

impl SourceReader {
    /// Reads the schemas of the tables to validate ([`select`]) and opens the reader,
    /// `chunk_rows` rows a chunk (default: `source.snapshot_chunk_rows`).
    async fn open(
        source: &SourceConfig,
        chunk_rows: Option<u64>,
        tables: &[String],
    ) -> anyhow::Result<(Vec<Arc<TableSchema>>, SourceReader)> {
        match source {
            SourceConfig::Mysql(source) => {
                let mut source = source.clone();
                source.snapshot_chunk_rows = chunk_rows.unwrap_or(source.snapshot_chunk_rows);
                let schemas = tributary_mysql::schema_loader::load_schema_map(&source).await?;
                let selected = select(&schemas, tables, "database.table")?;
                // Validate needs no binlog position: a plain consistent read, no lock, no RELOAD.
                let reader = tributary_mysql::snapshot::SnapshotReader::open_fresh(&source, selected.clone()).await?;
                Ok((selected, SourceReader::Mysql(reader)))
            }
            SourceConfig::Postgres(source) => {
                let mut source = source.clone();
                source.snapshot_chunk_rows = chunk_rows.unwrap_or(source.snapshot_chunk_rows);
                let filter = source.table_filter()?;
                let reader = tributary_postgres::snapshot::SnapshotReader::open_fresh(&source).await?;
                let loaded = tributary_postgres::schema_loader::load_tables(reader.client(), &filter).await?;
                let schemas = loaded.into_iter().map(|t| (t.schema.id.clone(), t.schema)).collect();
                let selected = select(&schemas, tables, "schema.table")?;
                Ok((selected, SourceReader::Postgres(reader)))
            }
        }
    }

    /// The next chunk of `table` in key order; `None` at the end.
    async fn next_chunk(&mut self, table: &TableSchema) -> anyhow::Result<Option<Vec<Row>>> {
        match self {
            SourceReader::Mysql(reader) => SnapshotSource::next_chunk(reader, table).await,
            SourceReader::Postgres(reader) => SnapshotSource::next_chunk(reader, table).await,
        }
    }

    /// Ends the read transaction (it changed nothing: a failure to end it does not matter).
    async fn finish(self) {
        let _ = match self {
            SourceReader::Mysql(reader) => reader.finish().await.map_err(anyhow::Error::from),
            SourceReader::Postgres(reader) => reader.finish().await.map_err(anyhow::Error::from),
        };
    }
}

/// Writes `<root>/_tributary/validation.json`, which the running pipeline
/// exports on /metrics: the tables of this run, plus those of the previous
/// result this run did not validate (a `--table` run replaces only its tables).
fn record_result(path: &Path, reports: &[TableReport], passed: bool) -> anyhow::Result<()> {
    let timestamp = crate::pipeline::snapshot::now_micros() as f64 / 1e6;
    let tables: Vec<TableResult> = reports
        .iter()
        .map(|r| {
            let d = r.diffs.as_ref();
            let schema_problems = r
                .schema_report
                .as_ref()
                .map(|s| s.missing_columns.len() + s.extra_columns.len() + s.type_changes.len())
                .unwrap_or(0);
            let outcome = r.outcome();
            TableResult {
                table: r.schema.id.to_string(),
                passed: outcome != Outcome::Failed,
                status: outcome.as_str().to_string(),
                source_rows: d.map(|d| d.source_rows),
                delta_rows: r.delta_rows,
                missing: d.map(|d| d.missing_in_delta.count).unwrap_or(0),
                extra: d.map(|d| d.extra_in_delta.count).unwrap_or(0),
                different: d.map(|d| d.different.count).unwrap_or(0),
                schema_problems: schema_problems as u64,
                problems: r.problems.len() as u64,
                lag_secs: r.lag_secs,
                timestamp,
            }
        })
        .collect();
    // An unreadable previous result is simply replaced.
    let tables = validation::merge_tables(tables, ValidationFile::read(path).ok().flatten());
    let file = ValidationFile {
        timestamp,
        outcome: if passed { "passed" } else { "failed" }.into(),
        exit_code: if passed { EXIT_PASSED } else { EXIT_FAILED },
        tables,
    };
    file.write(path)?;
    Ok(())
}

/// The tables to validate: those named with `--table` (each must be selected
/// by the config; `form` says how a name reads, e.g. `database.table`), else
/// every table the config selects, sorted.
fn select(
    schemas: &HashMap<TableId, Arc<TableSchema>>,
    wanted: &[String],
    form: &str,
) -> anyhow::Result<Vec<Arc<TableSchema>>> {
    let mut selected: Vec<Arc<TableSchema>> = if wanted.is_empty() {
        schemas.values().cloned().collect()
    } else {
        let mut out = Vec::new();
        for name in wanted {
            let Some((db, table)) = name.split_once('.') else {
                bail!("--table {name}: expected {form}");
            };
            match schemas.get(&TableId::new(db, table)) {
                Some(s) => out.push(s.clone()),
                None => bail!("--table {name}: no such table among those source.include / source.exclude select"),
            }
        }
        out
    };
    if selected.is_empty() {
        bail!("source.include selects no table on the source");
    }
    selected.sort_by(|a, b| a.id.cmp(&b.id));
    selected.dedup_by(|a, b| a.id == b.id);
    Ok(selected)
}
