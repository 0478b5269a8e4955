//! The publication the slot streams through: created for the selected tables
//! (or their schemas, `publish = "schemas"`) when missing, extended when a
//! selected table or schema is not in it yet.

use crate::connect::{qualified, quote_ident};
use crate::error::{one_line, PostgresError};
use std::collections::HashSet;
use tokio_postgres::Client;
use tributary_core::TableId;

/// Reads `publication` when it exists: (`FOR ALL TABLES`, publishes every
/// operation). Refuses one that publishes generated columns (PostgreSQL 18's
/// `publish_generated_columns`): the snapshot and the schema leave generated
/// columns out, and a stream that carried them would disagree with both.
/// Read-only: preflight (`tributary check`) runs it too.
pub async fn check_existing(client: &Client, publication: &str) -> Result<Option<(bool, bool)>, PostgresError> {
    let row = client
        .query_opt(
            // pubgencols: PostgreSQL 18 (absent before; read through jsonb to work on 14 to 17).
            "SELECT puballtables, pubinsert AND pubupdate AND pubdelete AND pubtruncate, \
             COALESCE(to_jsonb(p) ->> 'pubgencols', 'n') FROM pg_publication p WHERE pubname = $1",
            &[&publication],
        )
        .await
        .map_err(|e| PostgresError::query("read pg_publication", e))?;
    let Some(row) = row else { return Ok(None) };
    let gencols: String = row.get(2);
    if gencols != "n" {
        return Err(PostgresError::Publication {
            publication: publication.to_string(),
            problem: format!(
                "publishes generated columns (publish_generated_columns, PostgreSQL 18), which Tributary does not \
                 mirror; run: ALTER PUBLICATION {} SET (publish_generated_columns = none)",
                quote_ident(publication)
            ),
        });
    }
    Ok(Some((row.get(0), row.get(1))))
}

/// Makes `publication` publish inserts, updates, deletes and truncates of
/// every table in `tables`; with `schemas`, of every table in those schemas
/// (also tables created later).
pub async fn ensure_publication(
    client: &Client,
    publication: &str,
    tables: &[TableId],
    schemas: Option<&[String]>,
) -> Result<(), PostgresError> {
    let error = |problem: String| PostgresError::Publication { publication: publication.to_string(), problem };
    let list = match schemas {
        Some(schemas) => {
            format!("TABLES IN SCHEMA {}", schemas.iter().map(|s| quote_ident(s)).collect::<Vec<_>>().join(", "))
        }
        None => format!("TABLE {}", tables.iter().map(qualified).collect::<Vec<_>>().join(", ")),
    };
    let existing = check_existing(client, publication).await?;
    let Some((all_tables, all_ops)) = existing else {
        let sql = format!("CREATE PUBLICATION {} FOR {list}", quote_ident(publication));
        client.batch_execute(&sql).await.map_err(|e| {
            error(format!("cannot create it ({}); ask a table owner or superuser to run: {sql}", one_line(&e)))
        })?;
        tracing::info!(publication, tables = tables.len(), "publication created");
        return Ok(());
    };
    if !all_ops {
        return Err(error(format!(
            "does not publish every operation; run: ALTER PUBLICATION {} SET (publish = 'insert, update, delete, truncate')",
            quote_ident(publication)
        )));
    }
    if all_tables {
        return Ok(());
    }
    if let Some(schemas) = schemas {
        let covered: HashSet<String> = client
            .query(
                "SELECT n.nspname::text FROM pg_publication_namespace pn \
                 JOIN pg_namespace n ON n.oid = pn.pnnspid JOIN pg_publication p ON p.oid = pn.pnpubid \
                 WHERE p.pubname = $1",
                &[&publication],
            )
            .await
            .map_err(|e| {
                PostgresError::query(
                    "read pg_publication_namespace (publish = \"schemas\" needs PostgreSQL 15 or later)",
                    e,
                )
            })?
            .into_iter()
            .map(|r| r.get(0))
            .collect();
        let missing: Vec<String> = schemas.iter().filter(|s| !covered.contains(*s)).map(|s| quote_ident(s)).collect();
        if !missing.is_empty() {
            let sql =
                format!("ALTER PUBLICATION {} ADD TABLES IN SCHEMA {}", quote_ident(publication), missing.join(", "));
            client.batch_execute(&sql).await.map_err(|e| {
                error(format!(
                    "cannot add schema {} ({}); ask a superuser to run: {sql}",
                    missing.join(", "),
                    one_line(&e)
                ))
            })?;
            tracing::info!(publication, schemas = %missing.join(", "), "schemas added to the publication");
        }
        return Ok(());
    }
    let published: HashSet<TableId> = client
        .query(
            "SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1",
            &[&publication],
        )
        .await
        .map_err(|e| PostgresError::query("read pg_publication_tables", e))?
        .into_iter()
        .map(|r| TableId::new(r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect();
    let missing: Vec<&TableId> = tables.iter().filter(|t| !published.contains(t)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let add = missing.iter().map(|t| qualified(t)).collect::<Vec<_>>().join(", ");
    let sql = format!("ALTER PUBLICATION {} ADD TABLE {add}", quote_ident(publication));
    client.batch_execute(&sql).await.map_err(|e| {
        error(format!("cannot add {add} ({}); ask a table owner or superuser to run: {sql}", one_line(&e)))
    })?;
    tracing::info!(publication, added = missing.len(), "tables added to the publication");
    Ok(())
}
