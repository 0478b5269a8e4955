//! `tributary status`: per table, the Delta version, committed source
//! position, time since the last commit, and the schema changes it followed.

use crate::cli::OutputFormat;
use crate::config::PipelineConfig;
use std::path::Path;
use std::process::ExitCode;

pub async fn status(config_path: &Path, format: OutputFormat) -> anyhow::Result<ExitCode> {
    let config = PipelineConfig::load(config_path)?;
    let root = &config.sink.delta.tables_root();
    let now_ms = crate::pipeline::snapshot::now_micros() / 1000;
    let mut rows = Vec::new();
    for path in tributary_delta::list_tables(root) {
        let status = tributary_delta::table_status(&path, &config.pipeline.name).await?;
        let table = path.strip_prefix(root).unwrap_or(&path).display().to_string().replace('/', ".");
        let lag_s = status.last_commit_ts_ms.map(|t| (now_ms - t).max(0) as f64 / 1000.0);
        rows.push(serde_json::json!({
            "table": table,
            "delta_version": status.version,
            "committed_version": status.committed_version,
            "position": status.committed_position.as_ref().map(|p| p.to_string()),
            "seconds_since_last_commit": lag_s,
            "snapshot": match (&status.catching_up_until, status.snapshot_complete) {
                (Some(until), _) => format!("catching up after the copy until {until}"),
                (None, false) => format!("copy in progress: {} rows copied", status.rows.unwrap_or(0)),
                (None, true) => "complete".to_string(),
            },
            "schema_changes": status.schema_changes.iter().map(|c| serde_json::json!({
                "delta_version": c.delta_version,
                "position": c.position.as_ref().map(|p| p.to_string()),
                "changes": c.changes.iter().map(|x| x.to_string()).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        }));
    }
    match format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        OutputFormat::Table => {
            println!("{:<40} {:>8} {:<50} {:>12}", "TABLE", "VERSION", "POSITION", "LAST COMMIT");
            for r in &rows {
                println!(
                    "{:<40} {:>8} {:<50} {:>12}",
                    r["table"].as_str().unwrap_or(""),
                    r["delta_version"],
                    r["position"].as_str().unwrap_or("-"),
                    r["seconds_since_last_commit"].as_f64().map(|s| format!("{s:.1}s ago")).unwrap_or("-".into())
                );
                if r["snapshot"] != "complete" {
                    println!("    snapshot: {}", r["snapshot"].as_str().unwrap_or("-"));
                }
                for change in r["schema_changes"].as_array().into_iter().flatten() {
                    println!(
                        "    schema change at Delta version {} (source {}): {}",
                        change["delta_version"],
                        change["position"].as_str().unwrap_or("-"),
                        change["changes"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|c| c.as_str())
                            .collect::<Vec<_>>()
                            .join("; ")
                    );
                }
            }
            if rows.is_empty() {
                println!("(no Delta tables under {})", root.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
