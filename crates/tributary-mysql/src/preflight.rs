//! The checks run before any data moves: server flavor and version, binlog
//! settings, replication and SELECT grants, and that the filters match at
//! least one table. Every failure says the exact `SET GLOBAL` / my.cnf line or
//! `GRANT` that fixes it. The connection itself lives in [`crate::connect`].

use std::collections::{HashMap, HashSet};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use tributary_core::{MySqlPosition, TableId};

use crate::config::{MySqlSourceConfig, SnapshotMethod, SnapshotMode};
use crate::connect::{
    binlog_status, connect, log_bin_off, protocol, row_text, server_info, tls_version, Flavor, ServerInfo,
};
use crate::error::MySqlError;
use crate::schema_loader::{load_schemas, quote_table};

/// Server errors: table / column access denied for the SELECT check.
const ER_TABLE_ACCESS_DENIED: u16 = 1142;
const ER_COLUMN_ACCESS_DENIED: u16 = 1143;

/// What [`preflight`] found on a server that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreflightReport {
    pub flavor: Flavor,
    /// `SELECT VERSION()` verbatim.
    pub version: String,
    /// The server's own `@@server_id`.
    pub server_id: u32,
    /// The current end of the binlog.
    pub binlog: MySqlPosition,
    /// Tables selected by the filters, sorted.
    pub tables: Vec<TableId>,
    /// The session's encryption: `TLS 1.3`, or `not encrypted`.
    pub tls: String,
    /// Things that work but deserve attention (e.g. privileges hidden in roles).
    pub warnings: Vec<String>,
}

/// Runs every check against the server `cfg` points at.
pub async fn preflight(cfg: &MySqlSourceConfig) -> Result<PreflightReport, MySqlError> {
    cfg.validate()?;
    let filter = cfg.table_filter()?;
    let mut conn = connect(cfg).await?;
    let tls = tls_version(&mut conn).await?;
    let mut warnings = Vec::new();
    let (info, server_id) = check_server(&mut conn, cfg, &mut warnings).await?;
    let binlog = binlog_status(&mut conn, &info, &cfg.user).await?;
    let schemas = load_schemas(&mut conn, &filter).await?;
    if schemas.is_empty() {
        return Err(MySqlError::NoTables { include: cfg.include.clone() });
    }
    let tables: Vec<TableId> = schemas.iter().map(|s| s.id.clone()).collect();
    for table in &tables {
        check_select(&mut conn, table, &cfg.user).await?;
    }
    warnings.extend(
        schemas
            .iter()
            .filter(|s| !s.has_primary_key())
            .map(|s| format!("table {} has no primary key and no unique index of NOT NULL columns: it is mirrored as an append-only changelog (add either to mirror it by key)", s.id)),
    );
    let _ = conn.disconnect().await;
    Ok(PreflightReport { flavor: info.flavor, version: info.version_text, server_id, binlog, tables, tls, warnings })
}

/// MySQL 8.0+ and MariaDB 10.3+.
fn check_version(info: &ServerInfo) -> Result<(), MySqlError> {
    let (ok, expected) = match info.flavor {
        Flavor::MySql => (info.at_least(8, 0), "MySQL 8.0 or later"),
        Flavor::MariaDb => (info.at_least(10, 3), "MariaDB 10.3 or later"),
    };
    if ok {
        return Ok(());
    }
    Err(MySqlError::Setting {
        name: "version".into(),
        found: info.version_text.clone(),
        expected: expected.into(),
        fix: format!("upgrade the server to {expected}"),
    })
}

/// The global variables the checks read (absent ones are left out).
/// The server-wide part of [`preflight`] (version, CDC settings, replica id,
/// global grants), also run before streaming resumes after a reconnect: a
/// failover target must be set up for CDC too. Per-table checks are left to
/// the stream, which meets tables created or dropped meanwhile as DDL.
pub async fn check_server_for_reconnect(cfg: &MySqlSourceConfig) -> Result<(), MySqlError> {
    let mut conn = connect(cfg).await?;
    check_server(&mut conn, cfg, &mut Vec::new()).await?;
    let _ = conn.disconnect().await;
    Ok(())
}

async fn check_server(
    conn: &mut Conn,
    cfg: &MySqlSourceConfig,
    warnings: &mut Vec<String>,
) -> Result<(ServerInfo, u32), MySqlError> {
    let info = server_info(conn).await?;
    check_version(&info)?;
    let vars = global_variables(conn).await?;
    check_settings(&info, &vars)?;
    let server_id = own_server_id(&vars)?;
    check_server_id(cfg, server_id)?;
    let grants = show_grants(conn).await?;
    // Only a one-transaction snapshot takes the read lock on MySQL (a chunked
    // one takes it only for tables without a key, and then says so itself).
    let locking = match cfg.snapshot_method {
        SnapshotMethod::OneTransaction => cfg.snapshot,
        SnapshotMethod::Chunked => SnapshotMode::Never,
    };
    check_global_grants(&info, locking, &grants, &cfg.user, warnings)?;
    Ok((info, server_id))
}

async fn global_variables(conn: &mut Conn) -> Result<HashMap<String, String>, MySqlError> {
    const CONTEXT: &str = "reading server variables";
    let sql = "SHOW GLOBAL VARIABLES WHERE Variable_name IN \
               ('log_bin', 'binlog_format', 'binlog_row_image', 'log_bin_compress', \
               'binlog_row_value_options', 'binlog_row_metadata', 'server_id')";
    let rows: Vec<Row> = conn.query(sql).await.map_err(|e| MySqlError::query(CONTEXT, e))?;
    rows.iter().map(|r| Ok((row_text(r, 0, CONTEXT)?.to_ascii_lowercase(), row_text(r, 1, CONTEXT)?))).collect()
}

/// One required value of a global variable, with the fix when it differs.
struct Requirement {
    name: &'static str,
    expected: &'static str,
    fix: &'static str,
}

const ROW_FORMAT: Requirement = Requirement {
    name: "binlog_format",
    expected: "ROW",
    fix: "run SET GLOBAL binlog_format = 'ROW'; and add `binlog_format=ROW` under [mysqld] in my.cnf",
};
const FULL_ROW_IMAGE: Requirement = Requirement {
    name: "binlog_row_image",
    expected: "FULL",
    fix: "run SET GLOBAL binlog_row_image = 'FULL'; and add `binlog_row_image=FULL` under [mysqld] in my.cnf",
};
const NO_BINLOG_COMPRESSION: Requirement = Requirement {
    name: "log_bin_compress",
    expected: "OFF",
    fix: "compressed binlog events cannot be decoded: run SET GLOBAL log_bin_compress = OFF; \
          and add `log_bin_compress=OFF` under [mysqld] in my.cnf",
};
const NO_PARTIAL_JSON: Requirement = Requirement {
    name: "binlog_row_value_options",
    expected: "",
    fix: "partial JSON updates lose the full row image: run SET GLOBAL binlog_row_value_options = ''; \
          and add `binlog_row_value_options=` under [mysqld] in my.cnf",
};

/// log_bin, binlog_format, binlog_row_image, and the flavor-specific ones.
fn check_settings(info: &ServerInfo, vars: &HashMap<String, String>) -> Result<(), MySqlError> {
    let log_bin = vars.get("log_bin").map(String::as_str).unwrap_or("OFF");
    if !(log_bin.eq_ignore_ascii_case("ON") || log_bin == "1") {
        return Err(log_bin_off(log_bin));
    }
    let mut requirements = vec![ROW_FORMAT, FULL_ROW_IMAGE];
    requirements.push(match info.flavor {
        Flavor::MariaDb => NO_BINLOG_COMPRESSION,
        Flavor::MySql => NO_PARTIAL_JSON,
    });
    for req in requirements {
        // A variable the server does not have is at its safe default.
        let Some(found) = vars.get(req.name) else { continue };
        if !setting_matches(found, req.expected) {
            return Err(MySqlError::Setting {
                name: req.name.into(),
                found: found.clone(),
                expected: req.expected.into(),
                fix: req.fix.into(),
            });
        }
    }
    if let Some(metadata) = vars.get("binlog_row_metadata").filter(|m| !m.eq_ignore_ascii_case("FULL")) {
        tracing::warn!(
            binlog_row_metadata = %metadata,
            "without column names in the binlog, a restart across several schema changes of a table stops \
             and asks for a re-snapshot; run SET GLOBAL binlog_row_metadata = 'FULL' (docs/schema-evolution.md)"
        );
    }
    Ok(())
}

/// Case-insensitive, with `0` standing for `OFF`.
fn setting_matches(found: &str, expected: &str) -> bool {
    found.eq_ignore_ascii_case(expected) || (expected == "OFF" && found == "0")
}

fn own_server_id(vars: &HashMap<String, String>) -> Result<u32, MySqlError> {
    let text = vars.get("server_id").ok_or_else(|| protocol("reading server variables", "server_id is missing"))?;
    let id: u32 = text.parse().map_err(|_| protocol("reading server variables", format!("server_id = {text:?}")))?;
    if id == 0 {
        return Err(MySqlError::Setting {
            name: "server_id".into(),
            found: "0".into(),
            expected: "a nonzero id".into(),
            fix: "run SET GLOBAL server_id = 1; and add `server_id=1` under [mysqld] in my.cnf".into(),
        });
    }
    Ok(id)
}

/// The replica id must differ from the server's own.
fn check_server_id(cfg: &MySqlSourceConfig, server_id: u32) -> Result<(), MySqlError> {
    if cfg.server_id == server_id {
        return Err(MySqlError::Config {
            field: "source.server_id".into(),
            problem: format!("{server_id} is the source server's own server_id; pick an id no server or replica uses"),
        });
    }
    Ok(())
}

async fn show_grants(conn: &mut Conn) -> Result<Vec<String>, MySqlError> {
    const CONTEXT: &str = "reading grants (SHOW GRANTS FOR CURRENT_USER)";
    let rows: Vec<Row> = conn.query("SHOW GRANTS FOR CURRENT_USER").await.map_err(|e| MySqlError::query(CONTEXT, e))?;
    rows.iter().map(|r| row_text(r, 0, CONTEXT)).collect()
}

/// Global (`ON *.*`) privileges read from SHOW GRANTS lines.
#[derive(Debug, Default, PartialEq, Eq)]
struct GlobalPrivileges {
    all: bool,
    names: HashSet<String>,
    /// The user holds roles, whose privileges SHOW GRANTS does not expand.
    has_roles: bool,
}

impl GlobalPrivileges {
    fn parse(grants: &[String]) -> Self {
        let mut privileges = GlobalPrivileges::default();
        for line in grants {
            match parse_grant(line) {
                Some((names, target)) if is_global_target(&target) => {
                    for name in names {
                        privileges.all |= name == "ALL" || name == "ALL PRIVILEGES";
                        privileges.names.insert(name);
                    }
                }
                Some(_) => {}
                None => privileges.has_roles |= line.trim_start().to_ascii_uppercase().starts_with("GRANT "),
            }
        }
        privileges
    }

    fn has_any(&self, names: &[&str]) -> bool {
        self.all || names.iter().any(|n| self.names.contains(*n))
    }
}

/// `GRANT a, b (col) ON target TO ...` → (`["A", "B"]`, `"target"`); `None` for
/// lines without `ON` (role grants).
fn parse_grant(line: &str) -> Option<(Vec<String>, String)> {
    let rest = line.trim().strip_prefix("GRANT ")?;
    let on = find_top_level(rest, " ON ")?;
    let privileges = split_top_level(&rest[..on]);
    let after_on = &rest[on + 4..];
    let target = after_on[..find_top_level(after_on, " TO ").unwrap_or(after_on.len())].trim().to_string();
    Some((privileges, target))
}

/// Byte index of `needle` outside parentheses and quotes.
fn find_top_level(text: &str, needle: &str) -> Option<usize> {
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '`' | '\'' | '"') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => depth -= 1,
            (None, _) if depth == 0 && text[i..].starts_with(needle) => return Some(i),
            _ => {}
        }
    }
    None
}

/// Privilege names of a grant, upper-cased, column lists dropped.
fn split_top_level(privileges: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = privileges;
    while !rest.is_empty() {
        let end = find_top_level(rest, ",").unwrap_or(rest.len());
        let name = rest[..end].split('(').next().unwrap_or("").trim().to_ascii_uppercase();
        if !name.is_empty() {
            names.push(name);
        }
        rest = rest.get(end + 1..).unwrap_or("");
    }
    names
}

fn is_global_target(target: &str) -> bool {
    target.replace(['`', '\'', '"'], "") == "*.*"
}

/// REPLICATION SLAVE (binlog dump) and REPLICATION CLIENT (binlog position),
/// under their MariaDB 10.5+ names too; on MySQL, when `snapshot` is a copy
/// that takes the read lock (`snapshot_method = "one_transaction"`), also
/// RELOAD, for the instant of FLUSH TABLES WITH READ LOCK.
fn check_global_grants(
    info: &ServerInfo,
    snapshot: SnapshotMode,
    grants: &[String],
    user: &str,
    warnings: &mut Vec<String>,
) -> Result<(), MySqlError> {
    let privileges = GlobalPrivileges::parse(grants);
    let mut client_names = vec!["REPLICATION CLIENT", "BINLOG MONITOR"];
    // SUPER still implies the client privilege except on MariaDB 10.5+, which split it.
    if info.flavor == Flavor::MySql || !info.at_least(10, 5) {
        client_names.push("SUPER");
    }
    let mut required = vec![
        ("REPLICATION SLAVE", vec!["REPLICATION SLAVE", "REPLICATION REPLICA"]),
        ("REPLICATION CLIENT", client_names),
    ];
    if info.flavor == Flavor::MySql && snapshot == SnapshotMode::Initial {
        required.push(("RELOAD", vec!["RELOAD"]));
    }
    for (privilege, names) in required {
        if privileges.has_any(&names) {
            continue;
        }
        if privileges.has_roles {
            warnings.push(format!(
                "{privilege} is not granted to '{user}' directly; assuming one of its roles grants it \
                 (otherwise run: GRANT {privilege} ON *.* TO '{user}'@'%')"
            ));
            continue;
        }
        return Err(MySqlError::MissingPrivilege {
            user: user.to_string(),
            privilege: privilege.into(),
            on: "*.*".into(),
        });
    }
    Ok(())
}

/// Tries a `SELECT ... LIMIT 0` on the table: the server's own answer,
/// whatever grants, roles or column privileges are behind it.
async fn check_select(conn: &mut Conn, table: &TableId, user: &str) -> Result<(), MySqlError> {
    let sql = format!("SELECT * FROM {} LIMIT 0", quote_table(table));
    match conn.query_drop(sql).await {
        Ok(()) => Ok(()),
        Err(mysql_async::Error::Server(s)) if s.code == ER_TABLE_ACCESS_DENIED || s.code == ER_COLUMN_ACCESS_DENIED => {
            Err(MySqlError::MissingPrivilege {
                user: user.to_string(),
                privilege: "SELECT".into(),
                on: quote_table(table),
            })
        }
        Err(e) => Err(MySqlError::query(format!("checking SELECT on {table}"), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mariadb(version: &str) -> ServerInfo {
        ServerInfo::from_version_text(version).unwrap()
    }

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn good_vars() -> HashMap<String, String> {
        vars(&[("log_bin", "ON"), ("binlog_format", "ROW"), ("binlog_row_image", "FULL"), ("server_id", "1")])
    }

    fn grants(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn old_servers_are_refused() {
        assert!(check_version(&mariadb("5.7.44")).is_err());
        assert!(check_version(&mariadb("10.2.1-MariaDB")).is_err());
        assert!(check_version(&mariadb("10.3.0-MariaDB")).is_ok());
    }

    #[test]
    fn good_settings_pass() {
        check_settings(&mariadb("10.11.6-MariaDB"), &good_vars()).unwrap();
        check_settings(&mariadb("8.0.36"), &good_vars()).unwrap();
    }

    #[test]
    fn binlog_off_says_to_edit_my_cnf() {
        let mut v = good_vars();
        v.insert("log_bin".into(), "OFF".into());
        let err = check_settings(&mariadb("8.0.36"), &v).unwrap_err().to_string();
        assert!(err.contains("log_bin=mysql-bin") && err.contains("my.cnf"), "{err}");
    }

    #[test]
    fn statement_format_says_set_global_row() {
        let mut v = good_vars();
        v.insert("binlog_format".into(), "MIXED".into());
        let err = check_settings(&mariadb("8.0.36"), &v).unwrap_err().to_string();
        assert!(err.contains("SET GLOBAL binlog_format = 'ROW'") && err.contains("MIXED"), "{err}");
    }

    #[test]
    fn minimal_row_image_is_refused() {
        let mut v = good_vars();
        v.insert("binlog_row_image".into(), "MINIMAL".into());
        let err = check_settings(&mariadb("10.6.1-MariaDB"), &v).unwrap_err().to_string();
        assert!(err.contains("SET GLOBAL binlog_row_image = 'FULL'"), "{err}");
    }

    #[test]
    fn mariadb_binlog_compression_is_refused() {
        let mut v = good_vars();
        v.insert("log_bin_compress".into(), "ON".into());
        let err = check_settings(&mariadb("10.6.1-MariaDB"), &v).unwrap_err().to_string();
        assert!(err.contains("SET GLOBAL log_bin_compress = OFF"), "{err}");
        v.insert("log_bin_compress".into(), "OFF".into());
        check_settings(&mariadb("10.6.1-MariaDB"), &v).unwrap();
    }

    #[test]
    fn mysql_partial_json_is_refused() {
        let mut v = good_vars();
        v.insert("binlog_row_value_options".into(), "PARTIAL_JSON".into());
        let err = check_settings(&mariadb("8.0.36"), &v).unwrap_err().to_string();
        assert!(err.contains("SET GLOBAL binlog_row_value_options = ''"), "{err}");
        v.insert("binlog_row_value_options".into(), "".into());
        check_settings(&mariadb("8.0.36"), &v).unwrap();
    }

    #[test]
    fn replica_id_equal_to_the_servers_is_refused() {
        let cfg = MySqlSourceConfig::new("cdc", vec!["a.*".into()]);
        assert!(check_server_id(&cfg, cfg.server_id).unwrap_err().to_string().contains("source.server_id"));
        check_server_id(&cfg, 1).unwrap();
        assert!(own_server_id(&vars(&[("server_id", "0")])).is_err());
    }

    #[test]
    fn parses_grant_lines() {
        let (names, target) = parse_grant(
            "GRANT SELECT (`a`, `b`), REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO `cdc`@`%` IDENTIFIED BY PASSWORD '*AB'",
        )
        .unwrap();
        assert_eq!(names, ["SELECT", "REPLICATION SLAVE", "REPLICATION CLIENT"]);
        assert_eq!(target, "*.*");
        assert_eq!(parse_grant("GRANT SELECT ON `shop`.* TO `cdc`@`%`").unwrap().1, "`shop`.*");
        assert!(parse_grant("GRANT `reader` TO `cdc`@`%`").is_none());
    }

    #[test]
    fn replication_grants_pass_with_plain_names_all_or_mariadb_names() {
        let user = "cdc";
        let mut w = Vec::new();
        let my = mariadb("8.0.36");
        let md = mariadb("10.11.6-MariaDB");
        check_global_grants(
            &my,
            SnapshotMode::Never,
            &grants(&["GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO `cdc`@`%`"]),
            user,
            &mut w,
        )
        .unwrap();
        check_global_grants(
            &my,
            SnapshotMode::Never,
            &grants(&["GRANT ALL PRIVILEGES ON *.* TO `root`@`%`"]),
            user,
            &mut w,
        )
        .unwrap();
        check_global_grants(
            &md,
            SnapshotMode::Initial,
            &grants(&["GRANT BINLOG MONITOR, REPLICATION SLAVE ON *.* TO `cdc`@`%`"]),
            user,
            &mut w,
        )
        .unwrap();
        assert!(w.is_empty());
    }

    #[test]
    fn missing_replication_slave_names_the_grant_to_run() {
        let mut w = Vec::new();
        let err = check_global_grants(
            &mariadb("8.0.36"),
            SnapshotMode::Never,
            &grants(&["GRANT REPLICATION CLIENT ON *.* TO `cdc`@`%`", "GRANT ALL PRIVILEGES ON `shop`.* TO `cdc`@`%`"]),
            "cdc",
            &mut w,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("GRANT REPLICATION SLAVE ON *.* TO 'cdc'@'%'"), "{err}");
    }

    #[test]
    fn super_no_longer_counts_as_client_on_mariadb_10_5() {
        let lines = grants(&["GRANT SUPER, REPLICATION SLAVE ON *.* TO `cdc`@`%`"]);
        let mut w = Vec::new();
        check_global_grants(&mariadb("10.4.1-MariaDB"), SnapshotMode::Initial, &lines, "cdc", &mut w).unwrap();
        let err =
            check_global_grants(&mariadb("10.5.2-MariaDB"), SnapshotMode::Initial, &lines, "cdc", &mut w).unwrap_err();
        assert!(err.to_string().contains("REPLICATION CLIENT"), "{err}");
    }

    #[test]
    fn mysql_snapshots_need_reload_for_the_read_lock() {
        let lines = grants(&["GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO `cdc`@`%`"]);
        let mut w = Vec::new();
        let err = check_global_grants(&mariadb("8.0.36"), SnapshotMode::Initial, &lines, "cdc", &mut w).unwrap_err();
        assert!(err.to_string().contains("GRANT RELOAD ON *.* TO 'cdc'@'%'"), "{err}");
        check_global_grants(&mariadb("8.0.36"), SnapshotMode::Never, &lines, "cdc", &mut w).unwrap();
        check_global_grants(&mariadb("10.11.6-MariaDB"), SnapshotMode::Initial, &lines, "cdc", &mut w).unwrap();
    }

    #[test]
    fn privileges_hidden_in_roles_only_warn() {
        let mut w = Vec::new();
        check_global_grants(
            &mariadb("8.0.36"),
            SnapshotMode::Never,
            &grants(&["GRANT `cdc_role`@`%` TO `cdc`@`%`"]),
            "cdc",
            &mut w,
        )
        .unwrap();
        assert_eq!(w.len(), 2);
    }
}
