//! Before streaming starts (at start and after every reconnect): is the
//! server behind the address still the one the lake was written from, and
//! does its history reach every table's stored position?
//!
//! A server whose binlog / WAL ends before a table's position (RESET MASTER,
//! a restore from backup, another server behind the same address) would
//! otherwise hand out positions the writers treat as already committed and
//! skip: changes lost without a word. Both cases stop the pipeline with one
//! line naming the table, the positions and what to do.

use tributary_core::{SourcePosition, TableId};
use tributary_delta::Owner;

/// The source cannot continue what the lake holds; a person must decide.
#[derive(Debug, thiserror::Error)]
pub enum SourceMismatch {
    #[error("table {table} holds source position {stored}, but the server's history ends at {offered} (RESET MASTER / a restored or different server at this address?): point the source at the server that wrote the table, or remove the table's Delta directory so it is copied again")]
    Behind { table: TableId, stored: String, offered: String },
    #[error("the server at the source address is now `{found}` but the lake's tables were written from `{expected}`: point the source at the original server, or after a planned failover run `tributary adopt <table> --config ...` for each table (its next start copies it again from the new server: binlog positions carry over only between MariaDB servers of one GTID domain)")]
    OtherServer { expected: String, found: String },
    /// Not a refusal: the address now leads to another MariaDB server of the
    /// same GTID domain (a promoted replica); the pipeline starts again so
    /// every table continues on it by its GTID ([`super::failover`]).
    #[error("the server at the source address is now `{found}`, a server of the same GTID domain as `{expected}` (a failover): starting again to continue on it by GTID")]
    FailedOver { expected: String, found: String },
}

/// Refuses a server whose history ends before a table's stored position.
pub fn refuse_behind(stored: &[(TableId, SourcePosition)], server_end: &SourcePosition) -> Result<(), SourceMismatch> {
    for (table, position) in stored {
        if position.partial_cmp(server_end) == Some(std::cmp::Ordering::Greater) {
            return Err(SourceMismatch::Behind {
                table: table.clone(),
                stored: position.to_string(),
                offered: server_end.to_string(),
            });
        }
    }
    Ok(())
}

/// Why a stream that failed for good may have failed: when the server's
/// history now ends before a table's position (`RESET MASTER` under a running
/// pipeline shows up as "could not find next log"), that is the cause to
/// report. `None` when the server is not behind or cannot be asked.
pub async fn explain_stream_failure(
    config: &crate::config::PipelineConfig,
    stored: &[(TableId, SourcePosition)],
) -> Option<SourceMismatch> {
    let server_end = match &config.source {
        crate::config::SourceConfig::Mysql(source) => {
            SourcePosition::MySql(tributary_mysql::stream::current_server_position(source).await.ok()?)
        }
        crate::config::SourceConfig::Postgres(source) => {
            let client = tributary_postgres::connect::connect(source).await.ok()?;
            SourcePosition::Postgres { lsn: tributary_postgres::stream::current_wal_lsn(&client).await.ok()? }
        }
    };
    refuse_behind(stored, &server_end).err()
}

/// Refuses a server whose identity differs from the one the tables were opened for.
pub fn refuse_other_server(opened_for: &Owner, now: &Owner) -> Result<(), SourceMismatch> {
    match (&opened_for.source, &now.source) {
        (Some(expected), Some(found)) if tributary_mysql::gtid::same_domain(expected, found) => {
            Err(SourceMismatch::FailedOver { expected: expected.clone(), found: found.clone() })
        }
        (Some(expected), Some(found)) if expected != found => {
            Err(SourceMismatch::OtherServer { expected: expected.clone(), found: found.clone() })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_core::MySqlPosition;

    fn at(file: &str, offset: u64) -> SourcePosition {
        SourcePosition::MySql(MySqlPosition::new(file, offset))
    }

    #[test]
    fn a_server_whose_binlog_ends_before_a_table_is_refused_by_name() {
        let stored =
            vec![(TableId::new("shop", "a"), at("bin.000007", 400)), (TableId::new("shop", "b"), at("bin.000009", 4))];
        assert!(refuse_behind(&stored, &at("bin.000009", 4)).is_ok());
        let err = refuse_behind(&stored, &at("bin.000001", 350)).unwrap_err().to_string();
        assert!(err.contains("shop.a") && err.contains("000007") && err.contains("000001"), "{err}");
        assert!(!err.contains('\n'));
    }

    #[test]
    fn another_server_identity_is_refused_and_an_unknown_one_is_not_checked() {
        let a = Owner::new("p", "mariadb:server_id=1,gtid_domain_id=0");
        let b = Owner::new("p", "mariadb:server_id=2,gtid_domain_id=1");
        assert!(refuse_other_server(&a, &a.clone()).is_ok());
        let err = refuse_other_server(&a, &b).unwrap_err();
        assert!(matches!(err, SourceMismatch::OtherServer { .. }) && err.to_string().contains("server_id=2"));
        let replica = Owner::new("p", "mariadb:server_id=2,gtid_domain_id=0");
        assert!(matches!(refuse_other_server(&a, &replica), Err(SourceMismatch::FailedOver { .. })));
        let unknown = Owner { pipeline: "p".into(), source: None };
        assert!(refuse_other_server(&unknown, &b).is_ok());
    }
}
