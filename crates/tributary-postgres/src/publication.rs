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

/// The tables a table-list publication names, or `None` when the
/// publication does not exist or is not a plain table list (`FOR ALL
/// TABLES`, or tables in schemas): then membership says nothing about
/// whether a table's changes were streamed.
pub async fn listed_tables(client: &Client, publication: &str) -> Result<Option<HashSet<TableId>>, PostgresError> {
    match check_existing(client, publication).await? {
        None | Some((true, _)) => return Ok(None),
        Some(_) => {}
    }
    let by_schema = client
        .query_opt(
            "SELECT 1 FROM pg_publication_namespace pn JOIN pg_publication p ON p.oid = pn.pnpubid WHERE p.pubname = $1",
            &[&publication],
        )
        .await;
    // pg_publication_namespace exists from PostgreSQL 15 on; an error means 14 (no schema publications).
    if matches!(by_schema, Ok(Some(_))) {
        return Ok(None);
    }
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text FROM pg_publication_rel pr \
             JOIN pg_class c ON c.oid = pr.prrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_publication p ON p.oid = pr.prpubid WHERE p.pubname = $1",
            &[&publication],
        )
        .await
        .map_err(|e| PostgresError::query("read pg_publication_rel", e))?;
    Ok(Some(rows.into_iter().map(|r| TableId::new(r.get::<_, String>(0), r.get::<_, String>(1))).collect()))
}

/// Removes `tables` from `publication` (tables this pipeline owns and no
/// longer captures), so that their absence tells a later start that their
/// changes were not streamed meanwhile. Best effort: a refusal is logged.
pub async fn drop_from_publication(client: &Client, publication: &str, tables: &[TableId]) {
    if tables.is_empty() {
        return;
    }
    let list = tables.iter().map(qualified).collect::<Vec<_>>().join(", ");
    let sql = format!("ALTER PUBLICATION {} DROP TABLE {list}", quote_ident(publication));
    match client.batch_execute(&sql).await {
        Ok(()) => tracing::info!(publication, tables = %list, "tables no longer captured left the publication"),
        Err(e) => {
            tracing::warn!(publication, error = %one_line(&e), "cannot remove tables no longer captured from the publication; if they are captured again later, changes made meanwhile are not detected as missing: {sql}")
        }
    }
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
