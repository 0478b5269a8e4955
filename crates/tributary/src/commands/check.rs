//! `tributary check`: the source preflight, plus the type mapping of every selected table.

use crate::config::{PipelineConfig, SourceConfig};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use tributary_core::TableSchema;

pub async fn check(config_path: &Path) -> anyhow::Result<ExitCode> {
    let config = PipelineConfig::load(config_path)?;
    let schemas: Vec<Arc<TableSchema>> = match &config.source {
        SourceConfig::Mysql(source) => {
            let report = tributary_mysql::preflight::preflight(source).await?;
            println!("source: {report:?}");
            println!("source connection: {} (ssl_mode = {})", report.tls, source.ssl_mode);
            let resolver = tributary_mysql::schema_loader::LiveSchemaResolver::load(source).await?;
            let mut schemas: Vec<_> = resolver.tables().values().cloned().collect();
            schemas.sort_by(|a, b| a.id.cmp(&b.id));
            schemas
        }
        SourceConfig::Postgres(source) => {
            let checked = tributary_postgres::preflight::preflight(source).await?;
            println!("source: {:?}", checked.report);
            println!("source connection: {} (ssl_mode = {})", checked.report.tls, source.ssl_mode);
            checked.tables.iter().map(|t| t.schema.clone()).collect()
        }
    };
    for schema in &schemas {
        let key: Vec<&str> = schema.primary_key.iter().map(|&i| schema.columns[i].name.as_str()).collect();
        let mode = if key.is_empty() {
            "append-only changelog (no primary key)".to_string()
        } else {
            format!("primary key ({})", key.join(", "))
        };
        println!("table {}: {} columns, {mode}", schema.id, schema.columns.len());
    }
    let root = &config.sink.delta.root;
    if tributary_delta::remote_url(root).is_some() {
        tributary_delta::probe_conditional_writes(root).await?;
        println!("lake: {} (reachable, conditional writes honoured)", root.display());
    }
    println!("ok: {} table(s) ready for CDC", schemas.len());
    Ok(ExitCode::SUCCESS)
}
