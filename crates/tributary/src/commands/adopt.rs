//! `tributary adopt <table>`: hands a Delta table over to this pipeline
//! (table ownership, docs/operations.md), for when a person decided that this
//! pipeline takes over a table another pipeline or source wrote.

use crate::config::PipelineConfig;
use anyhow::{bail, Context};
use std::path::Path;
use std::process::ExitCode;
use tributary_core::TableId;

pub async fn adopt(config_path: &Path, table: &str) -> anyhow::Result<ExitCode> {
    let config = PipelineConfig::load(config_path)?;
    let Some((schema, name)) = table.split_once('.') else {
        bail!("table {table:?}: give it as database.table (PostgreSQL: schema.table)");
    };
    let id = TableId::new(schema, name);
    let owner = crate::pipeline::source_control::owner(&config).await?;
    let adopted = tributary_delta::adopt(&config.sink.delta, &id, &owner)
        .await
        .with_context(|| format!("adopt {id} at {}", config.sink.delta.table_path(&id).display()))?;
    let previous = adopted.previous.as_ref().map_or_else(
        || "nobody (no owner recorded)".to_string(),
        |p| format!("pipeline {:?} (source {})", p.pipeline, p.source.as_deref().unwrap_or("unknown")),
    );
    if adopted.previous.as_ref() == Some(&owner) {
        println!("{id}: already owned by pipeline {:?}; nothing changed", owner.pipeline);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{id}: now owned by pipeline {:?} (Delta version {}); before: {previous}",
        owner.pipeline, adopted.delta_version
    );
    match adopted.continues_from {
        Some(position) => println!("{id}: the pipeline continues from the table's position {position}"),
        None => println!(
            "{id}: the previous owner's position does not apply to this pipeline's source (or its copy was \
             incomplete): the next `tributary run` copies the table again, replacing its rows"
        ),
    }
    Ok(ExitCode::SUCCESS)
}
