//! The identity of a MySQL / MariaDB source, recorded with every Delta table
//! a pipeline writes so that another source (a shard with the same database
//! names, another server) is never mistaken for it: MySQL's `server_uuid`,
//! MariaDB's `server_id` and `gtid_domain_id` (MariaDB has no server UUID).

use crate::config::MySqlSourceConfig;
use crate::connect::{connect, server_info, Flavor};
use crate::error::MySqlError;
use mysql_async::prelude::Queryable;
use mysql_async::Row;

/// The identity text of the server `cfg` points at, e.g.
/// `mysql:server_uuid=3e11fa47-71ca-11e1-9e33-c80aa9429562` or
/// `mariadb:server_id=1,gtid_domain_id=0`.
pub async fn source_identity(cfg: &MySqlSourceConfig) -> Result<String, MySqlError> {
    const CONTEXT: &str = "reading the server identity";
    let mut conn = connect(cfg).await?;
    let info = server_info(&mut conn).await?;
    let identity = match info.flavor {
        Flavor::MySql => {
            let row: Option<Row> =
                conn.query_first("SELECT @@server_uuid").await.map_err(|e| MySqlError::query(CONTEXT, e))?;
            let uuid = row.and_then(|r| r.get_opt::<String, _>(0)).and_then(Result::ok).unwrap_or_default();
            format!("mysql:server_uuid={uuid}")
        }
        Flavor::MariaDb => {
            let row: Option<Row> = conn
                .query_first("SELECT CAST(@@server_id AS CHAR), CAST(@@gtid_domain_id AS CHAR)")
                .await
                .map_err(|e| MySqlError::query(CONTEXT, e))?;
            let field = |i: usize| {
                row.as_ref().and_then(|r| r.get_opt::<String, _>(i)).and_then(Result::ok).unwrap_or_default()
            };
            format!("mariadb:server_id={},gtid_domain_id={}", field(0), field(1))
        }
    };
    let _ = conn.disconnect().await;
    Ok(identity)
}
