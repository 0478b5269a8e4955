//! `tributary changes`: a table's Delta change feed between two versions.

use crate::cli::OutputFormat;
use crate::config::PipelineConfig;
use anyhow::{bail, Context};
use std::path::Path;
use std::process::ExitCode;

pub async fn changes(
    config_path: &Path,
    table: &str,
    from_version: i64,
    to_version: Option<i64>,
    format: OutputFormat,
) -> anyhow::Result<ExitCode> {
    let config = PipelineConfig::load(config_path)?;
    let Some((schema, name)) = table.split_once('.') else {
        bail!("table {table:?}: give it as database.table");
    };
    let path = config.sink.delta.table_path(&tributary_core::TableId::new(schema, name));
    if !tributary_delta::table_exists(&path) {
        bail!(
            "no Delta table for {table} at {}; check the name, sink.delta.root and sink.delta.table_prefix",
            path.display()
        );
    }
    let records = tributary_delta::read_changes(&path, from_version, to_version)
        .await
        .with_context(|| format!("read the change feed of {table}"))?;
    for r in &records {
        match format {
            OutputFormat::Json => {
                let mut obj = r.values.clone();
                obj.insert("_change_type".into(), r.change_type.clone().into());
                obj.insert("_commit_version".into(), r.commit_version.into());
                obj.insert("_commit_timestamp".into(), r.commit_timestamp.into());
                println!("{}", serde_json::Value::Object(obj));
            }
            OutputFormat::Table => {
                let cells: Vec<String> = r
                    .values
                    .iter()
                    .filter(|(k, _)| !k.starts_with("_tributary"))
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                println!("{:>6} {:<16} {}", r.commit_version, r.change_type, cells.join(" "));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
