//! The identity of a PostgreSQL source, recorded with every Delta table a
//! pipeline writes so that another cluster or database is never mistaken for
//! it: the cluster's `system_identifier` (pg_control_system(), readable by
//! any role) and the database name.

use crate::config::PostgresSourceConfig;
use crate::connect::connect;
use crate::error::PostgresError;

/// The identity text of the database `cfg` points at, e.g.
/// `postgres:system_identifier=7714682274164719241,database=shop`.
pub async fn source_identity(cfg: &PostgresSourceConfig) -> Result<String, PostgresError> {
    let client = connect(cfg).await?;
    let row = client
        .query_one("SELECT system_identifier::text, current_database()::text FROM pg_control_system()", &[])
        .await
        .map_err(|e| PostgresError::query("reading the server identity", e))?;
    let (system, database): (String, String) = (row.get(0), row.get(1));
    Ok(format!("postgres:system_identifier={system},database={database}"))
}
