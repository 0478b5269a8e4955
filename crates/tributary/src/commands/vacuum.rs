//! `tributary vacuum`: deletes the files of the pipeline's tables that no
//! version inside the retention references (see `tributary_delta::vacuum`);
//! `--dry-run` lists them. The retention defaults to
//! `[maintenance] vacuum_retention_hours` and may not be shorter than a
//! table's `delta.deletedFileRetentionDuration`.

use super::optimize::selected_tables;
use crate::config::PipelineConfig;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;
use tributary_delta::VacuumOptions;

pub async fn vacuum(
    config_path: &Path,
    tables: &[String],
    retention_hours: Option<f64>,
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    let config = PipelineConfig::load(config_path)?;
    let hours = retention_hours.unwrap_or(config.maintenance.vacuum_retention_hours);
    if !(hours.is_finite() && hours >= 0.0) {
        anyhow::bail!("--retention-hours: must be a number of hours >= 0 (got {hours})");
    }
    let options = VacuumOptions { retention: Duration::from_secs_f64(hours * 3600.0), dry_run };
    for (id, path) in selected_tables(&config, tables)? {
        let done = tributary_delta::vacuum(&path, &options).await?;
        let verb = if dry_run { "would delete" } else { "deleted" };
        println!("{id}: {verb} {} files, {:.1} MB (retention {hours} h)", done.files.len(), done.bytes as f64 / 1e6);
        if dry_run {
            for file in &done.files {
                println!("  {file}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
