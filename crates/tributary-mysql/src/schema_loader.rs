//! Table schemas read from `information_schema` (columns in ORDINAL_POSITION
//! order; the key in SEQ_IN_INDEX order: the primary key, else a unique index
//! of NOT NULL columns) for the tables the filters
//! select, and the [`LiveSchemaResolver`] the binlog decoder asks for them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use mysql_common::binlog::events::TableMapEvent;
use mysql_common::binlog::value::BinlogValue;
use tributary_core::{Column, ColumnType, MySqlPosition, SourcePosition, TableId, TableSchema, Value};

use crate::config::MySqlSourceConfig;
use crate::connect::{connect, row_text, server_info, Flavor};
use crate::decoder::table_map::{check_columns, schema_from_binlog, TableMapInfo};
use crate::decoder::values::CellPlan;
use crate::decoder::{DdlAction, DecodeError, SchemaResolver, TableDdl};
use crate::error::MySqlError;
use crate::type_map::map_column;
use crate::SYSTEM_SCHEMAS;
use tributary_core::TableFilter;

/// `` `db`.`table` `` with backticks doubled inside names.
pub fn quote_table(table: &TableId) -> String {
    format!("{}.{}", quote_ident(&table.schema), quote_ident(&table.name))
}

/// `` `name` `` with backticks doubled.
pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `'a', 'b'` for an SQL `IN` list of known-safe literals.
fn system_schema_list() -> String {
    SYSTEM_SCHEMAS.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", ")
}

/// Schemas of every table `filter` selects, sorted by table id. Views and
/// sequences are left out; a column of an unsupported type fails the load
/// with [`MySqlError::UnsupportedType`] naming it.
pub async fn load_schemas(conn: &mut Conn, filter: &TableFilter) -> Result<Vec<Arc<TableSchema>>, MySqlError> {
    let columns = load_columns(conn, Some(filter), None).await?;
    let mut keys = load_keys(conn, Some(filter), None).await?;
    let mut schemas = Vec::with_capacity(columns.len());
    for (id, columns) in columns {
        let key_names = keys.remove(&id).unwrap_or_default();
        schemas.push(Arc::new(build_schema(id, columns, &key_names)?));
    }
    Ok(schemas)
}

/// Connects with `cfg` and loads the schemas of the tables its filters select, by id.
pub async fn load_schema_map(cfg: &MySqlSourceConfig) -> Result<HashMap<TableId, Arc<TableSchema>>, MySqlError> {
    let filter = cfg.table_filter()?;
    let mut conn = connect(cfg).await?;
    let schemas = load_schemas(&mut conn, &filter).await?;
    let _ = conn.disconnect().await;
    Ok(schemas.into_iter().map(|s| (s.id.clone(), s)).collect())
}

/// Reads the schemas of `tables` (those the catalog has; a table missing
/// from the result no longer exists), e.g. after a DDL statement on them.
pub async fn load_table_schemas(
    conn: &mut Conn,
    tables: &[TableId],
) -> Result<HashMap<TableId, Arc<TableSchema>>, MySqlError> {
    let mut out = HashMap::new();
    for id in tables {
        let only = Some(id);
        let mut columns = load_columns(conn, None, only).await?;
        let Some((id, columns)) = columns.pop() else { continue };
        let mut keys = load_keys(conn, None, only).await?;
        let key_names = keys.remove(&id).unwrap_or_default();
        out.insert(id.clone(), Arc::new(build_schema(id, columns, &key_names)?));
    }
    Ok(out)
}

/// `AND <schema column> = ? AND <name column> = ?` for one table, else nothing.
fn only_clause(only: Option<&TableId>, schema_column: &str, name_column: &str) -> (String, Vec<mysql_async::Value>) {
    match only {
        Some(id) => (
            format!(" AND {schema_column} = ? AND {name_column} = ?"),
            vec![id.schema.clone().into(), id.name.clone().into()],
        ),
        None => (String::new(), Vec::new()),
    }
}

/// Columns of the selected base tables (or of `only`), per table, in ORDINAL_POSITION order.
async fn load_columns(
    conn: &mut Conn,
    filter: Option<&TableFilter>,
    only: Option<&TableId>,
) -> Result<Vec<(TableId, Vec<Column>)>, MySqlError> {
    const CONTEXT: &str = "reading information_schema.COLUMNS";
    let (clause, params) = only_clause(only, "c.TABLE_SCHEMA", "c.TABLE_NAME");
    let sql = format!(
        "SELECT c.TABLE_SCHEMA, c.TABLE_NAME, c.COLUMN_NAME, c.DATA_TYPE, c.COLUMN_TYPE, c.IS_NULLABLE \
         FROM information_schema.COLUMNS c \
         JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME \
         WHERE t.TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED') AND c.TABLE_SCHEMA NOT IN ({}){clause} \
         ORDER BY c.TABLE_SCHEMA, c.TABLE_NAME, c.ORDINAL_POSITION",
        system_schema_list()
    );
    let rows: Vec<Row> = if params.is_empty() {
        conn.query(sql).await
    } else {
        conn.exec(sql, mysql_async::Params::Positional(params)).await
    }
    .map_err(|e| MySqlError::query(CONTEXT, e))?;
    let mut tables: Vec<(TableId, Vec<Column>)> = Vec::new();
    for row in &rows {
        let id = TableId::new(row_text(row, 0, CONTEXT)?, row_text(row, 1, CONTEXT)?);
        if filter.is_some_and(|f| !f.matches(&id)) {
            continue;
        }
        let column = map_column(
            &id,
            &row_text(row, 2, CONTEXT)?,
            &row_text(row, 3, CONTEXT)?,
            &row_text(row, 4, CONTEXT)?,
            &row_text(row, 5, CONTEXT)?,
        )?;
        match tables.last_mut() {
            Some((last, columns)) if *last == id => columns.push(column),
            _ => tables.push((id, vec![column])),
        }
    }
    tables.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(tables)
}

/// Key column names of the selected tables (or of `only`), in SEQ_IN_INDEX
/// order: the primary key; for a table without one, the unique index whose
/// columns are all NOT NULL (the one InnoDB clusters such a table by; the
/// first by name when there are several). Rows are matched, and tables
/// copied in chunks, by it. A table with neither has no key (an append-only
/// changelog, docs/operations.md).
async fn load_keys(
    conn: &mut Conn,
    filter: Option<&TableFilter>,
    only: Option<&TableId>,
) -> Result<HashMap<TableId, Vec<String>>, MySqlError> {
    const CONTEXT: &str = "reading information_schema.STATISTICS";
    let (clause, params) = only_clause(only, "TABLE_SCHEMA", "TABLE_NAME");
    let sql = format!(
        "SELECT TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, COLUMN_NAME, NULLABLE FROM information_schema.STATISTICS \
         WHERE NON_UNIQUE = 0 AND TABLE_SCHEMA NOT IN ({}){clause} \
         ORDER BY TABLE_SCHEMA, TABLE_NAME, INDEX_NAME <> 'PRIMARY', INDEX_NAME, SEQ_IN_INDEX",
        system_schema_list()
    );
    let rows: Vec<Row> = if params.is_empty() {
        conn.query(sql).await
    } else {
        conn.exec(sql, mysql_async::Params::Positional(params)).await
    }
    .map_err(|e| MySqlError::query(CONTEXT, e))?;
    let mut indexes: Vec<(TableId, UniqueIndex)> = Vec::new();
    for row in &rows {
        let id = TableId::new(row_text(row, 0, CONTEXT)?, row_text(row, 1, CONTEXT)?);
        if filter.is_some_and(|f| !f.matches(&id)) {
            continue;
        }
        let index = row_text(row, 2, CONTEXT)?;
        // A functional key part (MySQL 8) has no column name.
        let column: Option<String> = row.get_opt::<Option<String>, _>(3).and_then(Result::ok).flatten();
        let nullable = row_text(row, 4, CONTEXT)? == "YES";
        match indexes.last_mut() {
            Some((last, current)) if *last == id && current.name == index => current.add(column, nullable),
            _ => {
                let mut current = UniqueIndex::new(index);
                current.add(column, nullable);
                indexes.push((id, current));
            }
        }
    }
    Ok(choose_keys(indexes))
}

/// One unique index of a table as `information_schema.STATISTICS` lists it.
#[derive(Debug)]
struct UniqueIndex {
    name: String,
    columns: Vec<String>,
    /// Every part is a NOT NULL column (not an expression).
    usable: bool,
}

impl UniqueIndex {
    fn new(name: String) -> Self {
        UniqueIndex { name, columns: Vec::new(), usable: true }
    }

    /// Adds the next part: a column (`None` for an expression) and whether it allows NULL.
    fn add(&mut self, column: Option<String>, nullable: bool) {
        match column {
            Some(column) if !nullable => self.columns.push(column),
            _ => self.usable = false,
        }
    }
}

/// Each table's key from its unique indexes (listed per table, `PRIMARY`
/// first, then by name): the primary key, else the first usable index.
fn choose_keys(indexes: Vec<(TableId, UniqueIndex)>) -> HashMap<TableId, Vec<String>> {
    let mut keys: HashMap<TableId, Vec<String>> = HashMap::new();
    for (id, index) in indexes {
        if index.usable && !keys.contains_key(&id) {
            if index.name != "PRIMARY" {
                tracing::debug!(table = %id, index = %index.name, "no primary key: keyed by a NOT NULL unique index");
            }
            keys.insert(id, index.columns);
        }
    }
    keys
}

/// Resolves key column names to column indexes.
fn build_schema(id: TableId, columns: Vec<Column>, key_names: &[String]) -> Result<TableSchema, MySqlError> {
    let mut schema = TableSchema { id, columns, primary_key: Vec::with_capacity(key_names.len()) };
    for name in key_names {
        let idx = schema.column_index(name).ok_or_else(|| MySqlError::Protocol {
            context: format!("reading the primary key of {}", schema.id),
            detail: format!("key column {name} is not among the table's columns"),
        })?;
        schema.primary_key.push(idx);
    }
    Ok(schema)
}

/// Resolves binlog TABLE_MAP events to the schema of each captured table as
/// it stands at the event's position, and says what DDL statements mean for
/// the captured tables (docs/schema-evolution.md, "MySQL / MariaDB"):
///
/// - it starts from the schemas the sink holds ([`LiveSchemaResolver::resume`]:
///   each Delta table's schema at its committed position) or from the
///   catalog ([`LiveSchemaResolver::load`]);
/// - TABLE_MAP events and DDL statements at or below a table's committed
///   position are skipped for that table (its sink already holds them);
/// - `ALTER TABLE` / `CREATE TABLE` of a captured table ask for its schema
///   from the catalog ([`DdlAction::Reload`]); `TRUNCATE` becomes a
///   truncate; `DROP TABLE` and a rename away forget the table (its Delta
///   table is kept); a rename *to* a captured name is an error asking for a
///   snapshot of that table, whose existing rows were never streamed, except
///   an online schema change cut-over (gh-ost / pt-osc swapping in their copy
///   `_<t>_gho` / `_<t>_new` in the same statement), which reloads the schema;
/// - every TABLE_MAP is checked against the schema
///   ([`check_columns`]). When they differ (the catalog was read after
///   later DDL: several statements while the pipeline was down, or in quick
///   succession) and the TABLE_MAP carries column names
///   (`binlog_row_metadata=FULL`), the rows are decoded with the binlog's own
///   column list, announced as a schema change; without names, decoding
///   stops with an error naming the table, the position and the fix.
#[derive(Debug, Clone)]
pub struct LiveSchemaResolver {
    tables: HashMap<TableId, Arc<TableSchema>>,
    /// Per table: the position its sink holds; events up to it are skipped.
    committed: HashMap<TableId, MySqlPosition>,
    /// Tables dropped or renamed away, with their last schema.
    gone: HashMap<TableId, Arc<TableSchema>>,
    /// Captured tables renamed away, with the position of the statement (a
    /// copy renamed into the name in the same statement is a cut-over).
    renamed_away: HashMap<TableId, MySqlPosition>,
    /// Schema changes found while resolving, for the decoder to emit.
    changes: Vec<Arc<TableSchema>>,
    /// Selected tables without a schema whose rows were skipped (warned once).
    warned: HashSet<TableId>,
    /// The last TABLE_MAP checked against each table's schema (every
    /// transaction repeats it): the same event and schema need no new check.
    checked: HashMap<TableId, (TableMapEvent<'static>, Arc<TableSchema>)>,
    filter: TableFilter,
}

impl LiveSchemaResolver {
    /// A resolver over `tables` (usually what [`load_schemas`] returned).
    pub fn new(tables: impl IntoIterator<Item = Arc<TableSchema>>, filter: TableFilter) -> Self {
        LiveSchemaResolver {
            tables: tables.into_iter().map(|s| (s.id.clone(), s)).collect(),
            committed: HashMap::new(),
            gone: HashMap::new(),
            renamed_away: HashMap::new(),
            changes: Vec::new(),
            warned: HashSet::new(),
            checked: HashMap::new(),
            filter,
        }
    }

    /// A resolver resuming from what the sink holds: each table's schema at
    /// its committed position (the Delta table's source schema), and that
    /// position (`None`: nothing committed). Rows and DDL at or below a
    /// table's position are skipped for it.
    pub fn resume(
        tables: impl IntoIterator<Item = (Arc<TableSchema>, Option<SourcePosition>)>,
        filter: TableFilter,
    ) -> Self {
        let mut resolver = LiveSchemaResolver::new([], filter);
        for (schema, position) in tables {
            if let Some(SourcePosition::MySql(position)) = position {
                resolver.committed.insert(schema.id.clone(), position);
            }
            resolver.tables.insert(schema.id.clone(), schema);
        }
        resolver
    }

    /// Connects with `cfg` and loads the schemas of the selected tables.
    pub async fn load(cfg: &MySqlSourceConfig) -> Result<Self, MySqlError> {
        let filter = cfg.table_filter()?;
        let tables = load_schema_map(cfg).await?;
        Ok(LiveSchemaResolver::new(tables.into_values(), filter))
    }

    /// The schemas this resolver knows, by table id.
    pub fn tables(&self) -> &HashMap<TableId, Arc<TableSchema>> {
        &self.tables
    }

    /// True when the sink of `id` already holds `position`.
    fn held(&self, id: &TableId, position: &MySqlPosition) -> bool {
        self.committed.get(id).is_some_and(|committed| position <= committed)
    }

    /// The schema of a selected table whose TABLE_MAP is `tme`, checked
    /// against the TABLE_MAP (see the type's docs).
    fn resolve_checked(
        &mut self,
        tme: &TableMapEvent<'_>,
        position: Option<&MySqlPosition>,
    ) -> Result<Option<Arc<TableSchema>>, DecodeError> {
        let id = TableId::new(tme.database_name().into_owned(), tme.table_name().into_owned());
        if !self.filter.matches(&id) || position.is_some_and(|p| self.held(&id, p)) {
            return Ok(None);
        }
        let Some(schema) = self.tables.get(&id).cloned() else {
            if !self.gone.contains_key(&id) && self.warned.insert(id.clone()) {
                tracing::warn!(
                    table = %id,
                    "rows skipped: the table matches source.include but is not in the catalog and no CREATE TABLE \
                     for it was read (dropped or renamed before Tributary started)"
                );
            }
            return Ok(None);
        };
        if let Some((event, checked)) = self.checked.get(&id) {
            if Arc::ptr_eq(checked, &schema) && event == tme {
                return Ok(Some(schema));
            }
        }
        let info = TableMapInfo::parse(tme).map_err(|e| DecodeError::schema(format!("table {id}: {e}")))?;
        let detail = match check_columns(&schema, &info) {
            Ok(_) => {
                self.checked.insert(id, (tme.clone().into_owned(), schema.clone()));
                return Ok(Some(schema));
            }
            Err(detail) => detail,
        };
        if !info.has_names {
            return Err(DecodeError::schema(format!(
                "table {id}: the binlog's columns do not match its schema ({detail}): the table was changed again \
                 after this point (several DDL statements while the pipeline was down, or in quick succession), and \
                 without column names in the binlog its rows cannot be decoded safely; re-snapshot the table (stop \
                 the pipeline, move its Delta table directory aside, start) and run SET GLOBAL \
                 binlog_row_metadata='FULL' on the source so Tributary follows such changes itself"
            )));
        }
        let derived = schema_from_binlog(tme, Some(&schema))
            .map_err(|e| DecodeError::schema(format!("table {id}: {detail}; and its TABLE_MAP: {e}")))?;
        tracing::warn!(
            table = %id,
            position = ?position.map(|p| SourcePosition::MySql(p.clone()).to_string()),
            %detail,
            "the binlog's columns differ from the schema read at the last DDL (the table changed again since): \
             its rows are decoded with the binlog's own column list"
        );
        let derived = Arc::new(derived);
        self.checked.insert(id.clone(), (tme.clone().into_owned(), derived.clone()));
        self.tables.insert(id, derived.clone());
        self.changes.push(derived.clone());
        Ok(Some(derived))
    }
}

/// True when `copy` is the name an online schema change tool gives its copy
/// of `table`: gh-ost `_<table>_gho`, pt-online-schema-change `_<table>_new`.
fn is_online_schema_change_copy(copy: &TableId, table: &TableId) -> bool {
    copy.schema == table.schema && [format!("_{}_gho", table.name), format!("_{}_new", table.name)].contains(&copy.name)
}

/// True when `old` is the name an online schema change tool gives `table`
/// at its cut-over, before dropping it: gh-ost `_<table>_del`,
/// pt-online-schema-change `_<table>_old`.
fn is_online_schema_change_leftover(old: &TableId, table: &TableId) -> bool {
    old.schema == table.schema && [format!("_{}_del", table.name), format!("_{}_old", table.name)].contains(&old.name)
}

impl SchemaResolver for LiveSchemaResolver {
    fn resolve(&mut self, tme: &TableMapEvent<'_>) -> Result<Option<Arc<TableSchema>>, DecodeError> {
        self.resolve_checked(tme, None)
    }

    fn resolve_at(
        &mut self,
        tme: &TableMapEvent<'_>,
        position: &MySqlPosition,
    ) -> Result<Option<Arc<TableSchema>>, DecodeError> {
        self.resolve_checked(tme, Some(position))
    }

    fn take_schema_changes(&mut self) -> Vec<Arc<TableSchema>> {
        std::mem::take(&mut self.changes)
    }

    fn table_ddl(&mut self, ddl: &TableDdl, position: &MySqlPosition) -> Result<DdlAction, DecodeError> {
        let live = |r: &Self, id: &TableId| r.filter.matches(id) && !r.held(id, position);
        let at = SourcePosition::MySql(position.clone());
        Ok(match ddl {
            TableDdl::Truncate { table } if live(self, table) => match self.tables.get(table) {
                Some(schema) => DdlAction::Truncate(schema.clone()),
                None => {
                    tracing::warn!(table = %table, position = %at, "TRUNCATE of a table Tributary has no schema for: ignored");
                    DdlAction::Nothing
                }
            },
            TableDdl::Create { table, if_not_exists, .. } if live(self, table) => {
                if *if_not_exists && self.tables.contains_key(table) {
                    // A no-op on the source.
                    DdlAction::Nothing
                } else {
                    let earlier = self.tables.contains_key(table) || self.gone.contains_key(table);
                    DdlAction::Reload { table: table.clone(), truncate: earlier }
                }
            }
            TableDdl::Alter { table } if live(self, table) => {
                DdlAction::Reload { table: table.clone(), truncate: false }
            }
            TableDdl::Rename { from, to } => {
                if live(self, from) {
                    if let Some(schema) = self.tables.remove(from) {
                        tracing::info!(table = %from, renamed_to = %to, position = %at, "table renamed: its Delta table is kept as it was, nothing more arrives");
                        self.gone.insert(from.clone(), schema);
                    }
                    self.renamed_away.insert(from.clone(), position.clone());
                }
                if live(self, to)
                    && self.renamed_away.get(to) == Some(position)
                    && is_online_schema_change_copy(from, to)
                {
                    // gh-ost / pt-osc cut-over: `RENAME TABLE t TO _t_del, _t_gho TO t`
                    // in one statement. The tool kept the copy's rows equal to the
                    // table's, so the table goes on with the copy's schema.
                    tracing::warn!(
                        table = %to,
                        copy = %from,
                        position = %at,
                        "online schema change cut-over: the table goes on with its copy's schema (the tool kept the \
                         rows equal; `tributary validate` checks)"
                    );
                    return Ok(DdlAction::Reload { table: to.clone(), truncate: false });
                }
                if live(self, to) && is_online_schema_change_leftover(to, from) {
                    // The cut-over's other half (`t` TO `_t_del` / `_t_old`): the old
                    // table, about to be dropped; its rows are in `t`'s Delta table.
                    tracing::info!(table = %from, renamed_to = %to, position = %at, "online schema change cut-over: the old table's new name is not captured");
                    return Ok(DdlAction::Nothing);
                }
                if live(self, to) {
                    return Err(DecodeError::schema(format!(
                        "table {from} was renamed to {to}, which matches source.include, but the rows {to} holds now \
                         were never streamed as {to}; re-snapshot {to}: stop the pipeline, move the Delta table \
                         directory of {to} aside if there is one, start (it is copied again); the Delta table of \
                         {from} is kept as it was"
                    )));
                }
                DdlAction::Nothing
            }
            TableDdl::Drop { table } if live(self, table) => {
                if let Some(schema) = self.tables.remove(table) {
                    tracing::info!(table = %table, position = %at, "table dropped: its Delta table is kept as it was, nothing more arrives");
                    self.gone.insert(table.clone(), schema);
                }
                DdlAction::Nothing
            }
            TableDdl::PartitionRows { table, operation } if live(self, table) => {
                tracing::error!(
                    table = %table,
                    position = %at,
                    %operation,
                    "rows were removed or swapped in by a partition operation, which the binlog has no row events \
                     for: the mirror keeps the rows as they were; re-snapshot the table if it must follow"
                );
                DdlAction::Nothing
            }
            TableDdl::DropDatabase { database } => {
                let dropped: Vec<TableId> = self
                    .tables
                    .keys()
                    .filter(|id| id.schema == *database && !self.held(id, position))
                    .cloned()
                    .collect();
                for id in dropped {
                    tracing::info!(table = %id, position = %at, "database dropped: the table's Delta table is kept as it was");
                    let schema = self.tables.remove(&id).expect("listed above");
                    self.gone.insert(id, schema);
                }
                DdlAction::Nothing
            }
            _ => DdlAction::Nothing,
        })
    }

    fn schema_loaded(
        &mut self,
        table: &TableId,
        schema: Option<Arc<TableSchema>>,
        position: &MySqlPosition,
    ) -> Option<Arc<TableSchema>> {
        let Some(schema) = schema else {
            tracing::warn!(
                table = %table,
                position = %SourcePosition::MySql(position.clone()),
                "the table changed but is no longer in the catalog (dropped or renamed since): its rows are decoded \
                 only where the binlog's columns match its last known schema"
            );
            return None;
        };
        self.gone.remove(table);
        let schema = match self.tables.get(table) {
            // A table streamed without a key is an append-only changelog in
            // Delta; a key the source gained since (a primary key, or a
            // NOT NULL unique index) does not turn it into a mirror.
            Some(old) if old.primary_key.is_empty() && !schema.primary_key.is_empty() => {
                tracing::warn!(
                    table = %table,
                    position = %SourcePosition::MySql(position.clone()),
                    "the table has a key now (a primary key or a NOT NULL unique index) but its Delta table is an \
                     append-only changelog: it stays one; to mirror it by the key, re-copy it (stop the pipeline, \
                     move its Delta table directory aside, start)"
                );
                Arc::new(TableSchema { primary_key: Vec::new(), ..(*schema).clone() })
            }
            _ => schema,
        };
        let changed = self
            .tables
            .get(table)
            .is_none_or(|old| old.columns != schema.columns || old.primary_key != schema.primary_key);
        self.tables.insert(table.clone(), schema.clone());
        changed.then_some(schema)
    }
}

/// For columns `names` of `table` (just added by a schema change), the value
/// the source shows for rows that existed before them: the column's default
/// when it is a constant (read with `DEFAULT(column)`, typed as the column),
/// the implicit default of a NOT NULL column without one (0, '', the first
/// ENUM value), nothing for a default expression (e.g. CURRENT_TIMESTAMP,
/// evaluated per row: unknown here) or a NULL default. Nothing either when
/// the table is empty or no longer has the column.
pub async fn existing_row_values(
    cfg: &MySqlSourceConfig,
    table: &TableSchema,
    names: &[String],
) -> Result<Vec<(String, Value)>, MySqlError> {
    let mut conn = connect(cfg).await?;
    let result = existing_row_values_on(&mut conn, table, names).await;
    let _ = conn.disconnect().await;
    result
}

async fn existing_row_values_on(
    conn: &mut Conn,
    table: &TableSchema,
    names: &[String],
) -> Result<Vec<(String, Value)>, MySqlError> {
    const CONTEXT: &str = "reading the defaults of added columns";
    let flavor = server_info(conn).await?.flavor;
    for sql in ["SET time_zone = '+00:00'", "SET NAMES utf8mb4"] {
        conn.query_drop(sql).await.map_err(|e| MySqlError::query(CONTEXT, e))?;
    }
    let rows: Vec<Row> = conn
        .exec(
            "SELECT COLUMN_NAME, COLUMN_DEFAULT, IS_NULLABLE, EXTRA FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (table.id.schema.clone(), table.id.name.clone()),
        )
        .await
        .map_err(|e| MySqlError::query(CONTEXT, e))?;
    let mut constant = Vec::new();
    let mut implicit = Vec::new();
    for row in &rows {
        let name = row_text(row, 0, CONTEXT)?;
        let Some(column) = names.contains(&name).then(|| table.column_index(&name)).flatten() else { continue };
        let column = &table.columns[column];
        let default: Option<String> = row.get_opt(1).and_then(Result::ok);
        let nullable = row_text(row, 2, CONTEXT)?.eq_ignore_ascii_case("YES");
        let extra = row_text(row, 3, CONTEXT).unwrap_or_default().to_ascii_uppercase();
        match default.as_deref().map(str::trim) {
            None if !nullable => implicit.extend(implicit_default(column).map(|v| (name.clone(), v))),
            None | Some("NULL") => {}
            _ if extra.contains("DEFAULT_GENERATED") => {}
            Some(text) if flavor == Flavor::MariaDb && !is_mariadb_literal(text) => {}
            Some(_) => constant.push(column.clone()),
        }
    }
    let mut out = implicit;
    if constant.is_empty() && out.is_empty() {
        return Ok(out);
    }
    let probe = format!("SELECT 1 FROM {} LIMIT 1", quote_table(&table.id));
    let any: Option<Row> = conn.query_first(probe).await.map_err(|e| MySqlError::query(CONTEXT, e))?;
    if any.is_none() {
        return Ok(Vec::new());
    }
    for column in constant {
        let sql = format!("SELECT DEFAULT({}) FROM {} LIMIT 1", quote_ident(&column.name), quote_table(&table.id));
        let row: Option<Row> = match conn.exec_first(sql, ()).await {
            Ok(row) => row,
            Err(e) => {
                tracing::warn!(table = %table.id, column = %column.name, error = %e, "default of an added column unknown: older rows read NULL");
                continue;
            }
        };
        let Some(mut row) = row else { continue };
        let value: mysql_async::Value = row.take(0).unwrap_or(mysql_async::Value::NULL);
        match default_value(&table.id, &column, value) {
            Ok(Value::Null) => {}
            Ok(v) => out.push((column.name.clone(), v)),
            Err(e) => {
                tracing::warn!(table = %table.id, column = %column.name, error = %e, "default of an added column unreadable: older rows read NULL")
            }
        }
    }
    Ok(out)
}

/// MariaDB prints literal defaults quoted ('abc') or as numbers, expressions bare (current_timestamp()).
fn is_mariadb_literal(text: &str) -> bool {
    text.starts_with('\'') || text.parse::<f64>().is_ok() || text.starts_with("b'") || text.starts_with("0x")
}

/// A default read with `DEFAULT(column)` as the snapshot would read the column.
fn default_value(table: &TableId, column: &Column, value: mysql_async::Value) -> Result<Value, DecodeError> {
    let is_set = column.source_type.trim_start().to_ascii_lowercase().starts_with("set");
    match value {
        mysql_async::Value::NULL => Ok(Value::Null),
        mysql_async::Value::Bytes(labels) if is_set => Ok(Value::Text(String::from_utf8_lossy(&labels).into_owned())),
        value => CellPlan::from_column(column).decode(BinlogValue::Value(value), column, table),
    }
}

/// What MySQL puts in existing rows for a NOT NULL column added without a default.
fn implicit_default(column: &Column) -> Option<Value> {
    Some(match &column.data_type {
        ColumnType::Int8 | ColumnType::Int16 | ColumnType::Int32 | ColumnType::Int64 => Value::Int(0),
        ColumnType::UInt64 => Value::UInt(0),
        ColumnType::Float32 => Value::Float(0.0),
        ColumnType::Float64 => Value::Double(0.0),
        ColumnType::Decimal { scale, .. } => Value::Decimal { unscaled: 0, scale: *scale },
        ColumnType::Bool => Value::Bool(false),
        ColumnType::Text => match CellPlan::from_column(column).labels {
            Some(labels) if column.source_type.trim_start().to_ascii_lowercase().starts_with("enum") => {
                Value::Text(labels.first()?.clone())
            }
            _ => Value::Text(String::new()),
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_core::ColumnType;

    fn column(name: &str) -> Column {
        Column {
            name: name.into(),
            data_type: ColumnType::Int32,
            nullable: false,
            source_type: "int".into(),
            source_id: None,
        }
    }

    fn resolver() -> LiveSchemaResolver {
        let schema =
            build_schema(TableId::new("shop", "orders"), vec![column("id"), column("qty")], &["id".into()]).unwrap();
        let filter = TableFilter::new(&["shop.*".into()], &["shop.skip".into()], &SYSTEM_SCHEMAS).unwrap();
        LiveSchemaResolver::new([Arc::new(schema)], filter)
    }

    #[test]
    fn quotes_identifiers_with_doubled_backticks() {
        assert_eq!(quote_table(&TableId::new("my db", "we`ird")), "`my db`.`we``ird`");
    }

    #[test]
    fn primary_key_names_become_indexes_in_key_order() {
        let s = build_schema(
            TableId::new("a", "b"),
            vec![column("x"), column("y"), column("z")],
            &["z".into(), "x".into()],
        )
        .unwrap();
        assert_eq!(s.primary_key, vec![2, 0]);
        assert!(build_schema(TableId::new("a", "b"), vec![column("x")], &["nope".into()]).is_err());
    }

    fn id(name: &str) -> TableId {
        TableId::new("shop", name)
    }

    fn at(offset: u64) -> MySqlPosition {
        MySqlPosition::new("bin.000002", offset)
    }

    fn schema(name: &str, columns: &[&str]) -> Arc<TableSchema> {
        Arc::new(build_schema(id(name), columns.iter().map(|c| column(c)).collect(), &["id".into()]).unwrap())
    }

    #[test]
    fn ddl_on_tables_outside_the_filter_means_nothing() {
        let mut r = resolver();
        for table in [TableId::new("crm", "orders"), id("skip"), TableId::new("mysql", "user")] {
            for ddl in [
                TableDdl::Alter { table: table.clone() },
                TableDdl::Create { table: table.clone(), if_not_exists: false, or_replace: false },
                TableDdl::Truncate { table: table.clone() },
            ] {
                assert_eq!(r.table_ddl(&ddl, &at(100)).unwrap(), DdlAction::Nothing, "{ddl:?}");
            }
        }
    }

    #[test]
    fn alter_and_create_ask_for_the_catalog_schema_truncate_truncates() {
        let mut r = resolver();
        let alter = r.table_ddl(&TableDdl::Alter { table: id("orders") }, &at(100)).unwrap();
        assert_eq!(alter, DdlAction::Reload { table: id("orders"), truncate: false });
        let create = TableDdl::Create { table: id("new"), if_not_exists: false, or_replace: false };
        assert_eq!(r.table_ddl(&create, &at(100)).unwrap(), DdlAction::Reload { table: id("new"), truncate: false });
        match r.table_ddl(&TableDdl::Truncate { table: id("orders") }, &at(100)).unwrap() {
            DdlAction::Truncate(s) => assert_eq!(s.id, id("orders")),
            other => panic!("{other:?}"),
        }
        // Unknown table: nothing to truncate.
        assert_eq!(r.table_ddl(&TableDdl::Truncate { table: id("nope") }, &at(100)).unwrap(), DdlAction::Nothing);
    }

    #[test]
    fn create_of_an_existing_table_is_a_no_op_or_a_new_table_without_the_old_rows() {
        let mut r = resolver();
        let if_not_exists = TableDdl::Create { table: id("orders"), if_not_exists: true, or_replace: false };
        assert_eq!(r.table_ddl(&if_not_exists, &at(100)).unwrap(), DdlAction::Nothing);
        let replace = TableDdl::Create { table: id("orders"), if_not_exists: false, or_replace: true };
        assert_eq!(r.table_ddl(&replace, &at(100)).unwrap(), DdlAction::Reload { table: id("orders"), truncate: true });
        // Dropped, then created again: the old rows are gone too.
        assert_eq!(r.table_ddl(&TableDdl::Drop { table: id("orders") }, &at(200)).unwrap(), DdlAction::Nothing);
        assert!(!r.tables().contains_key(&id("orders")));
        let create = TableDdl::Create { table: id("orders"), if_not_exists: true, or_replace: false };
        assert_eq!(r.table_ddl(&create, &at(300)).unwrap(), DdlAction::Reload { table: id("orders"), truncate: true });
    }

    #[test]
    fn ddl_the_sink_already_holds_is_skipped() {
        let filter = TableFilter::new(&["shop.*".into()], &[], &SYSTEM_SCHEMAS).unwrap();
        let committed = SourcePosition::MySql(at(500));
        let mut r = LiveSchemaResolver::resume([(schema("orders", &["id", "qty"]), Some(committed))], filter);
        for ddl in [
            TableDdl::Alter { table: id("orders") },
            TableDdl::Truncate { table: id("orders") },
            TableDdl::Rename { from: id("x"), to: id("orders") },
        ] {
            assert_eq!(r.table_ddl(&ddl, &at(500)).unwrap(), DdlAction::Nothing, "{ddl:?}");
        }
        assert_eq!(
            r.table_ddl(&TableDdl::Alter { table: id("orders") }, &at(501)).unwrap(),
            DdlAction::Reload { table: id("orders"), truncate: false }
        );
    }

    #[test]
    fn a_rename_forgets_the_old_name_and_refuses_a_captured_new_name() {
        let mut r = resolver();
        let away = TableDdl::Rename { from: id("orders"), to: TableId::new("archive", "orders") };
        assert_eq!(r.table_ddl(&away, &at(100)).unwrap(), DdlAction::Nothing);
        assert!(!r.tables().contains_key(&id("orders")));
        let into = TableDdl::Rename { from: id("tmp_orders"), to: id("orders") };
        let err = r.table_ddl(&into, &at(200)).unwrap_err().to_string();
        assert!(err.contains("shop.tmp_orders") && err.contains("shop.orders") && err.contains("re-snapshot"), "{err}");
        assert!(!err.contains('\n'));
    }

    #[test]
    fn an_online_schema_change_cut_over_reloads_the_table_and_other_swaps_stop() {
        for (copy, old) in [("_orders_gho", "_orders_del"), ("_orders_new", "_orders_old")] {
            // RENAME TABLE orders TO <old>, <copy> TO orders: one statement, one
            // position. The filter (shop.*) matches the tools' names too.
            let mut r = resolver();
            let away = TableDdl::Rename { from: id("orders"), to: id(old) };
            assert_eq!(r.table_ddl(&away, &at(100)).unwrap(), DdlAction::Nothing);
            let swap = TableDdl::Rename { from: id(copy), to: id("orders") };
            assert_eq!(
                r.table_ddl(&swap, &at(100)).unwrap(),
                DdlAction::Reload { table: id("orders"), truncate: false }
            );
            let loaded = schema("orders", &["id", "qty", "note"]);
            assert_eq!(r.schema_loaded(&id("orders"), Some(loaded.clone()), &at(100)), Some(loaded));
        }
        // Another name, or the copy renamed in by a later statement: its rows are unknown.
        let mut r = resolver();
        r.table_ddl(&TableDdl::Rename { from: id("orders"), to: TableId::new("archive", "orders") }, &at(100)).unwrap();
        assert!(r.table_ddl(&TableDdl::Rename { from: id("orders_empty"), to: id("orders") }, &at(100)).is_err());
        let mut r = resolver();
        r.table_ddl(&TableDdl::Rename { from: id("orders"), to: id("_orders_del") }, &at(100)).unwrap();
        assert!(r.table_ddl(&TableDdl::Rename { from: id("_orders_gho"), to: id("orders") }, &at(200)).is_err());
    }

    #[test]
    fn a_loaded_schema_is_announced_only_when_it_changed() {
        let mut r = resolver();
        let same = schema("orders", &["id", "qty"]);
        assert_eq!(r.schema_loaded(&id("orders"), Some(same), &at(100)), None);
        let wider = schema("orders", &["id", "qty", "note"]);
        assert_eq!(r.schema_loaded(&id("orders"), Some(wider.clone()), &at(200)), Some(wider.clone()));
        assert_eq!(r.tables()[&id("orders")], wider);
        // A table no longer in the catalog keeps its last schema.
        assert_eq!(r.schema_loaded(&id("orders"), None, &at(300)), None);
        assert_eq!(r.tables()[&id("orders")], wider);
        let new = schema("fresh", &["id"]);
        assert_eq!(r.schema_loaded(&id("fresh"), Some(new.clone()), &at(400)), Some(new));
    }

    #[test]
    fn implicit_defaults_are_those_mysql_gives_existing_rows() {
        let c = |data_type, source_type: &str| Column {
            name: "c".into(),
            data_type,
            nullable: false,
            source_type: source_type.into(),
            source_id: None,
        };
        assert_eq!(implicit_default(&c(ColumnType::Int32, "int(11)")), Some(Value::Int(0)));
        assert_eq!(implicit_default(&c(ColumnType::Text, "varchar(10)")), Some(Value::Text(String::new())));
        assert_eq!(implicit_default(&c(ColumnType::Text, "enum('p','q')")), Some(Value::Text("p".into())));
        assert_eq!(
            implicit_default(&c(ColumnType::Decimal { precision: 5, scale: 2 }, "decimal(5,2)")),
            Some(Value::Decimal { unscaled: 0, scale: 2 })
        );
        assert_eq!(implicit_default(&c(ColumnType::Timestamp, "timestamp")), None);
    }

    #[test]
    fn mariadb_literal_defaults_are_told_from_expressions() {
        assert!(is_mariadb_literal("'x'") && is_mariadb_literal("7") && is_mariadb_literal("-1.5"));
        assert!(!is_mariadb_literal("current_timestamp()") && !is_mariadb_literal("uuid()"));
    }

    fn unique(table: &str, name: &str, parts: &[(Option<&str>, bool)]) -> (TableId, UniqueIndex) {
        let mut index = UniqueIndex::new(name.into());
        for (column, nullable) in parts {
            index.add(column.map(String::from), *nullable);
        }
        (id(table), index)
    }

    #[test]
    fn the_key_is_the_primary_key_else_the_first_unique_index_of_not_null_columns() {
        let keys = choose_keys(vec![
            unique("pk", "PRIMARY", &[(Some("id"), false)]),
            unique("pk", "a_code", &[(Some("code"), false)]),
            unique("uniq", "a_nullable", &[(Some("a"), false), (Some("b"), true)]),
            unique("uniq", "b_functional", &[(None, false)]),
            unique("uniq", "c_pair", &[(Some("x"), false), (Some("y"), false)]),
            unique("uniq", "d_later", &[(Some("z"), false)]),
            unique("loose", "only_nullable", &[(Some("a"), true)]),
        ]);
        assert_eq!(keys.get(&id("pk")), Some(&vec!["id".to_string()]));
        assert_eq!(keys.get(&id("uniq")), Some(&vec!["x".to_string(), "y".to_string()]));
        assert_eq!(keys.get(&id("loose")), None, "no usable index: no key");
    }

    #[test]
    fn a_table_held_without_a_key_stays_keyless_when_the_catalog_gains_one() {
        let keyless = Arc::new(TableSchema { primary_key: Vec::new(), ..(*schema("log", &["id", "v"])).clone() });
        let mut r = LiveSchemaResolver::new([keyless.clone()], resolver().filter.clone());
        let wider = schema("log", &["id", "v", "w"]);
        let loaded = r.schema_loaded(&id("log"), Some(wider.clone()), &at(100)).expect("a change");
        assert!(loaded.primary_key.is_empty() && loaded.columns == wider.columns, "{loaded:?}");
        // A keyed table whose key changes is still reported as changed (the sink stops it).
        let mut r = resolver();
        let rekeyed = Arc::new(build_schema(id("orders"), vec![column("id"), column("qty")], &["qty".into()]).unwrap());
        assert_eq!(r.schema_loaded(&id("orders"), Some(rekeyed.clone()), &at(100)), Some(rekeyed));
    }
}
