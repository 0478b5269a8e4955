//! Table schemas read from `information_schema` (columns in ORDINAL_POSITION
//! order, primary key in SEQ_IN_INDEX order) for the tables the filters
//! select, and the [`LiveSchemaResolver`] the binlog decoder asks for them.

use std::collections::HashMap;
use std::sync::Arc;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use mysql_common::binlog::events::TableMapEvent;
use tributary_core::{Column, TableId, TableSchema};

use crate::config::MySqlSourceConfig;
use crate::decoder::{DecodeError, SchemaResolver};
use crate::error::MySqlError;
use crate::preflight::{connect, row_text};
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
    let columns = load_columns(conn, filter).await?;
    let mut keys = load_primary_keys(conn, filter).await?;
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

/// Columns of the selected base tables, per table, in ORDINAL_POSITION order.
async fn load_columns(conn: &mut Conn, filter: &TableFilter) -> Result<Vec<(TableId, Vec<Column>)>, MySqlError> {
    const CONTEXT: &str = "reading information_schema.COLUMNS";
    let sql = format!(
        "SELECT c.TABLE_SCHEMA, c.TABLE_NAME, c.COLUMN_NAME, c.DATA_TYPE, c.COLUMN_TYPE, c.IS_NULLABLE \
         FROM information_schema.COLUMNS c \
         JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME \
         WHERE t.TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED') AND c.TABLE_SCHEMA NOT IN ({}) \
         ORDER BY c.TABLE_SCHEMA, c.TABLE_NAME, c.ORDINAL_POSITION",
        system_schema_list()
    );
    let rows: Vec<Row> = conn.query(sql).await.map_err(|e| MySqlError::query(CONTEXT, e))?;
    let mut tables: Vec<(TableId, Vec<Column>)> = Vec::new();
    for row in &rows {
        let id = TableId::new(row_text(row, 0, CONTEXT)?, row_text(row, 1, CONTEXT)?);
        if !filter.matches(&id) {
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

/// Primary-key column names of the selected tables, in SEQ_IN_INDEX order.
async fn load_primary_keys(conn: &mut Conn, filter: &TableFilter) -> Result<HashMap<TableId, Vec<String>>, MySqlError> {
    const CONTEXT: &str = "reading information_schema.STATISTICS";
    let sql = format!(
        "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME FROM information_schema.STATISTICS \
         WHERE INDEX_NAME = 'PRIMARY' AND TABLE_SCHEMA NOT IN ({}) \
         ORDER BY TABLE_SCHEMA, TABLE_NAME, SEQ_IN_INDEX",
        system_schema_list()
    );
    let rows: Vec<Row> = conn.query(sql).await.map_err(|e| MySqlError::query(CONTEXT, e))?;
    let mut keys: HashMap<TableId, Vec<String>> = HashMap::new();
    for row in &rows {
        let id = TableId::new(row_text(row, 0, CONTEXT)?, row_text(row, 1, CONTEXT)?);
        if filter.matches(&id) {
            keys.entry(id).or_default().push(row_text(row, 2, CONTEXT)?);
        }
    }
    Ok(keys)
}

/// Resolves primary-key names to column indexes.
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

/// Resolves binlog TABLE_MAP events to the schemas loaded at start; tables the
/// filters do not select resolve to `None` and their rows are skipped.
#[derive(Debug, Clone)]
pub struct LiveSchemaResolver {
    tables: HashMap<TableId, Arc<TableSchema>>,
    filter: TableFilter,
}

impl LiveSchemaResolver {
    /// A resolver over `tables` (usually what [`load_schemas`] returned).
    pub fn new(tables: impl IntoIterator<Item = Arc<TableSchema>>, filter: TableFilter) -> Self {
        LiveSchemaResolver { tables: tables.into_iter().map(|s| (s.id.clone(), s)).collect(), filter }
    }

    /// Connects with `cfg` and loads the schemas of the selected tables.
    pub async fn load(cfg: &MySqlSourceConfig) -> Result<Self, MySqlError> {
        let filter = cfg.table_filter()?;
        let tables = load_schema_map(cfg).await?;
        Ok(LiveSchemaResolver { tables, filter })
    }

    /// The schemas this resolver knows, by table id.
    pub fn tables(&self) -> &HashMap<TableId, Arc<TableSchema>> {
        &self.tables
    }

    /// The schema of a table the filters select, checked against the binlog's column count.
    fn resolve_id(&self, id: &TableId, binlog_columns: u64) -> Result<Option<Arc<TableSchema>>, DecodeError> {
        if !self.filter.matches(id) {
            return Ok(None);
        }
        let schema = self.tables.get(id).ok_or_else(|| {
            DecodeError::schema(format!(
                "table {id} matches source.include but did not exist when Tributary started; restart Tributary to capture it"
            ))
        })?;
        if binlog_columns != schema.columns.len() as u64 {
            return Err(DecodeError::schema(format!(
                "table {id} has {binlog_columns} columns in the binlog but {} when Tributary loaded its schema: \
                 the table was altered; schema changes are not tracked yet, re-snapshot the table",
                schema.columns.len()
            )));
        }
        Ok(Some(Arc::clone(schema)))
    }
}

impl SchemaResolver for LiveSchemaResolver {
    fn resolve(&mut self, tme: &TableMapEvent<'_>) -> Result<Option<Arc<TableSchema>>, DecodeError> {
        let id = TableId::new(tme.database_name().into_owned(), tme.table_name().into_owned());
        self.resolve_id(&id, tme.columns_count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_core::ColumnType;

    fn column(name: &str) -> Column {
        Column { name: name.into(), data_type: ColumnType::Int32, nullable: false, source_type: "int".into() }
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

    #[test]
    fn unselected_tables_resolve_to_none() {
        let r = resolver();
        assert!(r.resolve_id(&TableId::new("crm", "orders"), 2).unwrap().is_none());
        assert!(r.resolve_id(&TableId::new("shop", "skip"), 2).unwrap().is_none());
        assert!(r.resolve_id(&TableId::new("mysql", "user"), 2).unwrap().is_none());
    }

    #[test]
    fn selected_tables_resolve_to_their_schema() {
        let s = resolver().resolve_id(&TableId::new("shop", "orders"), 2).unwrap().unwrap();
        assert_eq!(s.id, TableId::new("shop", "orders"));
    }

    #[test]
    fn a_column_count_change_is_an_error_saying_the_table_changed() {
        let err = resolver().resolve_id(&TableId::new("shop", "orders"), 3).unwrap_err().to_string();
        assert!(err.contains("shop.orders") && err.contains("altered"), "{err}");
    }

    #[test]
    fn a_selected_table_created_after_start_is_an_error() {
        let err = resolver().resolve_id(&TableId::new("shop", "new_table"), 1).unwrap_err().to_string();
        assert!(err.contains("shop.new_table") && err.contains("restart"), "{err}");
    }
}
