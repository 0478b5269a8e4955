//! `tributary optimize`: compacts the small data files of the pipeline's
//! tables now (the same compaction `run` does automatically, see
//! `pipeline::maintenance`), every run until no small files are left to
//! combine. Safe while the pipeline streams: its next batch re-plans when a
//! file it read was compacted away. `--enable-deletion-vectors` first
//! upgrades the named tables for deletion vectors (docs/deletion-vectors.md);
//! run it with the table's pipeline stopped: the pipeline writes the table
//! with deletion vectors from its next start.

use crate::config::PipelineConfig;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tributary_core::TableId;
use tributary_delta::TableWriter;

pub async fn optimize(
    config_path: &Path,
    tables: &[String],
    enable_deletion_vectors: bool,
) -> anyhow::Result<ExitCode> {
    if enable_deletion_vectors && tables.is_empty() {
        anyhow::bail!("--enable-deletion-vectors upgrades tables one way: name each one with --table database.table");
    }
    let config = PipelineConfig::load(config_path)?;
    let mut options = config.maintenance.compaction_options();
    // On demand, any two small files are worth combining.
    options.min_small_files = 2;
    for (id, _) in selected_tables(&config, tables)? {
        let mut writer = TableWriter::open_stored(&config.sink.delta, &id, config.pipeline.name.as_str()).await?;
        if enable_deletion_vectors {
            match writer.enable_deletion_vectors().await? {
                true => println!("{id}: deletion vectors enabled (reader 3 / writer 7 with deletionVectors; one-way)"),
                false => println!("{id}: already has deletion vectors"),
            }
        }
        let (files_before, small_before) = (writer.file_count(), writer.small_file_count(&options));
        let (mut runs, mut bytes) = (0, 0u64);
        while let Some(done) = writer.compact(&options).await? {
            runs += 1;
            bytes += done.bytes_removed;
        }
        println!(
            "{id}: {files_before} data files ({small_before} small) -> {} ({} small); {runs} compaction commits rewrote {:.1} MB",
            writer.file_count(),
            writer.small_file_count(&options),
            bytes as f64 / 1e6
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The pipeline's tables under its lake root (all, or those named as
/// `database.table`); an unknown name is an error.
pub fn selected_tables(config: &PipelineConfig, names: &[String]) -> anyhow::Result<Vec<(TableId, PathBuf)>> {
    let root = config.sink.delta.tables_root();
    let mut found = Vec::new();
    for path in tributary_delta::list_tables(&root) {
        let Ok(relative) = path.strip_prefix(&root) else { continue };
        let parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().to_string()).collect();
        if let [schema, table] = parts.as_slice() {
            found.push((TableId::new(schema, table), path));
        }
    }
    if names.is_empty() {
        return Ok(found);
    }
    names
        .iter()
        .map(|name| {
            found.iter().find(|(id, _)| id.to_string() == *name).cloned().ok_or_else(|| {
                anyhow::anyhow!("table {name:?} has no Delta table under {}; give it as database.table", root.display())
            })
        })
        .collect()
}
