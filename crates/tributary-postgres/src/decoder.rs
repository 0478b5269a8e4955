//! Turns pg_walstream's decoded pgoutput messages into Tributary change
//! events: rows typed by the table schema, unchanged TOAST values marked
//! [`Value::Unchanged`], transaction boundaries carrying LSNs.

use crate::error::PostgresError;
use crate::text_value::parse_text;
use crate::type_map::{map_type, PgType};
use pg_walstream::{ColumnValue, EventType, RelationColumn, ReplicaIdentity, RowData};
use std::collections::HashMap;
use std::sync::Arc;
use tributary_core::{ChangeEvent, Column, Lsn, Row, SourcePosition, TableFilter, TableId, TableSchema, Value};

/// Prefix of the logical messages the pipeline writes as heartbeats.
pub const HEARTBEAT_PREFIX: &str = "tributary-heartbeat";

/// Decodes the events of one replication stream.
#[derive(Debug)]
pub struct PgOutputDecoder {
    by_name: HashMap<TableId, Arc<TableSchema>>,
    by_oid: HashMap<u32, Arc<TableSchema>>,
    /// Catalog types by `(type oid, typmod)`, filled by [`PgOutputDecoder::add_type`].
    types: HashMap<(u32, i32), PgType>,
    commit_ts: i64,
    /// Which unknown tables to follow when the stream shows them.
    new_tables: Option<TableFilter>,
    /// The catalog's current `attnum -> name` of the relation message being
    /// decoded, set by [`PgOutputDecoder::set_catalog_columns`]. The tables'
    /// own attribute numbers are their columns' `source_id`.
    catalog_columns: Option<(u32, HashMap<i16, String>)>,
}

impl PgOutputDecoder {
    /// A decoder for the selected `tables`; events of other tables are skipped.
    pub fn new(tables: impl IntoIterator<Item = Arc<TableSchema>>) -> Self {
        PgOutputDecoder {
            by_name: tables.into_iter().map(|t| (t.id.clone(), t)).collect(),
            by_oid: HashMap::new(),
            types: HashMap::new(),
            commit_ts: 0,
            new_tables: None,
            catalog_columns: None,
        }
    }

    /// Also follows tables the stream shows that `filter` selects but that
    /// were not known at the start (created later; published through a
    /// `FOR ALL TABLES` / `FOR TABLES IN SCHEMA` publication).
    pub fn with_new_tables(mut self, filter: TableFilter) -> Self {
        self.new_tables = Some(filter);
        self
    }

    /// Appends the events `event` stands for to `out`.
    pub fn decode(
        &mut self,
        event: pg_walstream::ChangeEvent,
        out: &mut Vec<ChangeEvent>,
    ) -> Result<(), PostgresError> {
        let lsn = event.lsn.value();
        let position = SourcePosition::Postgres { lsn: Lsn(lsn) };
        match event.event_type {
            EventType::Begin { final_lsn, commit_timestamp, .. } => {
                self.commit_ts = commit_timestamp.timestamp_micros();
                out.push(ChangeEvent::Begin {
                    position: SourcePosition::Postgres { lsn: Lsn(final_lsn.value()) },
                    commit_ts: self.commit_ts,
                });
            }
            EventType::Commit { end_lsn, commit_timestamp, .. } => {
                // The end of the commit record: streaming restarts after it.
                out.push(ChangeEvent::Commit {
                    position: SourcePosition::Postgres { lsn: Lsn(end_lsn.value()) },
                    commit_ts: commit_timestamp.timestamp_micros(),
                });
            }
            EventType::Insert { schema, table, relation_oid, data } => {
                if let Some(t) = self.table(relation_oid, &schema, &table) {
                    let after = self.row(&t, &data, lsn)?;
                    out.push(ChangeEvent::Insert { table: t, position, commit_ts: self.commit_ts, after });
                }
            }
            EventType::Update { schema, table, relation_oid, old_data, new_data, replica_identity, key_columns } => {
                if let Some(t) = self.table(relation_oid, &schema, &table) {
                    let after = self.row(&t, &new_data, lsn)?;
                    // Without an old image (key unchanged under REPLICA IDENTITY DEFAULT),
                    // the new row carries the key; the sink takes the rest from the
                    // stored row, so only key cells are copied (not large values).
                    let before = match &old_data {
                        Some(old) => identity_only(self.row(&t, old, lsn)?, &t, &replica_identity, &key_columns),
                        None => (0..after.len())
                            .map(|i| if t.primary_key.contains(&i) { after[i].clone() } else { Value::Unchanged })
                            .collect(),
                    };
                    out.push(ChangeEvent::Update { table: t, position, commit_ts: self.commit_ts, before, after });
                }
            }
            EventType::Delete { schema, table, relation_oid, old_data, replica_identity, key_columns } => {
                if let Some(t) = self.table(relation_oid, &schema, &table) {
                    let before = identity_only(self.row(&t, &old_data, lsn)?, &t, &replica_identity, &key_columns);
                    out.push(ChangeEvent::Delete { table: t, position, commit_ts: self.commit_ts, before });
                }
            }
            EventType::Truncate { tables, .. } => {
                for name in tables {
                    let id = name.split_once('.').map(|(s, t)| TableId::new(s, t));
                    if let Some(t) = id.and_then(|id| self.by_name.get(&id).cloned()) {
                        out.push(ChangeEvent::Truncate {
                            table: t,
                            position: position.clone(),
                            commit_ts: self.commit_ts,
                        });
                    }
                }
            }
            EventType::Relation { relation_id, namespace, relation_name, columns, .. } => {
                let id = TableId::new(&*namespace, &*relation_name);
                let mut current = self.by_oid.get(&relation_id).or_else(|| self.by_name.get(&id)).cloned();
                let catalog = match self.catalog_columns.take() {
                    Some((oid, catalog)) if oid == relation_id => catalog,
                    _ => HashMap::new(),
                };
                let renamed = current.as_deref().map(|c| renames(c, &catalog, &columns)).unwrap_or_default();
                if current.is_none() && self.new_tables.as_ref().is_some_and(|f| f.matches(&id)) {
                    // A table created after the start: no columns known yet, keyed by
                    // its replica identity (the primary key under DEFAULT).
                    let key: Vec<usize> =
                        columns.iter().enumerate().filter(|(_, c)| c.is_key).map(|(i, _)| i).collect();
                    let full = key.len() == columns.len() && columns.len() > 1;
                    let empty = TableSchema { id: id.clone(), columns: Vec::new(), primary_key: Vec::new() };
                    let mut schema = self.schema_of(&empty, &catalog, &columns, lsn)?;
                    // Under REPLICA IDENTITY FULL every column is flagged: no usable key.
                    schema.primary_key = if full { Vec::new() } else { key };
                    let table = Arc::new(schema);
                    out.push(ChangeEvent::SchemaChange {
                        table: table.clone(),
                        position: position.clone(),
                        commit_ts: self.commit_ts,
                        ddl: format!("new table {id}"),
                        renamed: Vec::new(),
                    });
                    self.by_name.insert(id.clone(), table.clone());
                    current = Some(table);
                }
                if let Some(current) = current {
                    let described = self.schema_of(&current, &catalog, &columns, lsn)?;
                    let table = if described.columns == current.columns {
                        current
                    } else if same_columns(&described, &current) {
                        // Only attribute numbers learnt (a schema stored without them).
                        let table = Arc::new(described);
                        self.by_name.insert(table.id.clone(), table.clone());
                        table
                    } else {
                        // The columns the table has from this message on.
                        let names = described.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ");
                        let table = Arc::new(described);
                        out.push(ChangeEvent::SchemaChange {
                            table: table.clone(),
                            position,
                            commit_ts: self.commit_ts,
                            ddl: format!("relation {} now has columns ({names})", table.id),
                            renamed,
                        });
                        self.by_name.insert(table.id.clone(), table.clone());
                        table
                    };
                    self.by_oid.insert(relation_id, table);
                }
            }
            EventType::Message { prefix, content, .. } if &*prefix == HEARTBEAT_PREFIX => {
                let written: i64 = std::str::from_utf8(&content).ok().and_then(|s| s.parse().ok()).unwrap_or(0);
                out.push(ChangeEvent::Heartbeat { position, commit_ts: written });
            }
            EventType::StreamStart { .. } | EventType::StreamAbort { .. } | EventType::StreamCommit { .. } => {
                return Err(PostgresError::Replication(
                    "the server streams an in-progress transaction, but streaming was not requested".into(),
                ));
            }
            _ => {}
        }
        Ok(())
    }

    /// What the catalog says now about the columns of `relation_id`
    /// (`attnum`, name), given before its relation message is decoded: lets
    /// a rename be told from a drop plus an add.
    pub fn set_catalog_columns(&mut self, relation_id: u32, columns: Vec<(i16, String)>) {
        self.catalog_columns = Some((relation_id, columns.into_iter().collect()));
    }

    /// The `(type oid, typmod)` pairs of `columns` whose catalog type is not known yet.
    pub fn missing_types(&self, columns: &[RelationColumn]) -> Vec<(u32, i32)> {
        let mut missing: Vec<(u32, i32)> =
            columns.iter().map(|c| (c.type_id, c.type_modifier)).filter(|key| !self.types.contains_key(key)).collect();
        missing.dedup();
        missing
    }

    /// Records what the catalog says about a type (see [`PgOutputDecoder::missing_types`]).
    pub fn add_type(&mut self, oid: u32, typmod: i32, pg_type: PgType) {
        self.types.insert((oid, typmod), pg_type);
    }

    /// The schema a relation message describes for `current`'s table: its
    /// columns in order with mapped types; nullability of known columns kept
    /// (new ones nullable), the primary key kept by name.
    /// A column keeps its attribute number; a new one takes the catalog's.
    fn schema_of(
        &self,
        current: &TableSchema,
        catalog: &HashMap<i16, String>,
        columns: &[RelationColumn],
        lsn: u64,
    ) -> Result<TableSchema, PostgresError> {
        let decode_error = |problem: String| PostgresError::Decode {
            table: current.id.to_string(),
            lsn: Lsn(lsn).to_string(),
            problem,
        };
        let mut out = Vec::with_capacity(columns.len());
        for c in columns {
            let pg_type = self.types.get(&(c.type_id, c.type_modifier)).ok_or_else(|| {
                decode_error(format!("column {}: type oid {} was not looked up in the catalog", c.name, c.type_id))
            })?;
            let data_type = map_type(pg_type).map_err(|e| decode_error(format!("column {}: {e}", c.name)))?;
            let known = current.column_index(&c.name).map(|i| &current.columns[i]);
            let nullable = known.map(|k| k.nullable).unwrap_or(true);
            let source_id = known
                .and_then(|k| k.source_id)
                .or_else(|| catalog.iter().find(|(_, name)| name.as_str() == &*c.name).map(|(&n, _)| i64::from(n)));
            out.push(Column {
                name: c.name.to_string(),
                data_type,
                nullable,
                source_type: pg_type.display.clone(),
                source_id,
            });
        }
        let mut primary_key = Vec::with_capacity(current.primary_key.len());
        for &k in &current.primary_key {
            let name = &current.columns[k].name;
            match out.iter().position(|c| &c.name == name) {
                Some(i) => primary_key.push(i),
                None => {
                    return Err(decode_error(format!("primary key column {name} was dropped; re-snapshot the table")))
                }
            }
        }
        Ok(TableSchema { id: current.id.clone(), columns: out, primary_key })
    }

    /// The schema of a selected table, by relation OID (names on first sight).
    fn table(&mut self, oid: u32, schema: &str, table: &str) -> Option<Arc<TableSchema>> {
        if let Some(t) = self.by_oid.get(&oid) {
            return Some(t.clone());
        }
        let t = self.by_name.get(&TableId::new(schema, table))?.clone();
        self.by_oid.insert(oid, t.clone());
        Some(t)
    }

    /// A row in schema column order; columns the message left out (unchanged
    /// TOAST values) become [`Value::Unchanged`].
    fn row(&self, table: &TableSchema, data: &RowData, lsn: u64) -> Result<Row, PostgresError> {
        let mut row: Row = Vec::with_capacity(table.columns.len());
        let mut sent = data.iter().peekable();
        for column in &table.columns {
            // pgoutput sends columns in table order; a skipped one is unchanged.
            let value = match sent.peek() {
                Some((name, _)) if &***name == column.name.as_str() => sent.next().map(|(_, v)| v),
                _ => data.get(&column.name),
            };
            row.push(match value {
                None => Value::Unchanged,
                Some(ColumnValue::Null) => Value::Null,
                Some(ColumnValue::Text(bytes)) => {
                    let text =
                        std::str::from_utf8(bytes).map_err(|_| decode_error(table, lsn, &column.name, "not UTF-8"))?;
                    parse_text(&column.data_type, text)
                        .map_err(|e| decode_error(table, lsn, &column.name, &e.to_string()))?
                }
                Some(ColumnValue::Binary(bytes)) => Value::Bytes(bytes.to_vec()),
            });
        }
        Ok(row)
    }
}

/// An old row as sent: under `REPLICA IDENTITY FULL` every column; otherwise
/// only the identity's key columns carry values (pgoutput sends the others as
/// NULL), so they become [`Value::Unchanged`]: not known, rather than NULL
/// (a sink must not take them for the stored row).
fn identity_only(mut row: Row, table: &TableSchema, identity: &ReplicaIdentity, key_columns: &[Arc<str>]) -> Row {
    if *identity != ReplicaIdentity::Full {
        for (i, (value, column)) in row.iter_mut().zip(&table.columns).enumerate() {
            if !table.primary_key.contains(&i) && !key_columns.iter().any(|k| **k == *column.name) {
                *value = Value::Unchanged;
            }
        }
    }
    row
}

fn decode_error(table: &TableSchema, lsn: u64, column: &str, problem: &str) -> PostgresError {
    PostgresError::Decode {
        table: table.id.to_string(),
        lsn: Lsn(lsn).to_string(),
        problem: format!("column {column}: {problem}"),
    }
}

/// The renames a relation message shows: a column of `current` that is gone
/// from the message, whose attribute number the catalog now gives to a new
/// column of the message (a drop plus an add gives a new number).
fn renames(current: &TableSchema, catalog: &HashMap<i16, String>, columns: &[RelationColumn]) -> Vec<(String, String)> {
    let names: Vec<&str> = columns.iter().map(|c| &*c.name).collect();
    current
        .columns
        .iter()
        .filter(|old| !names.contains(&old.name.as_str()))
        .filter_map(|old| {
            let new = catalog.get(&i16::try_from(old.source_id?).ok()?)?;
            (names.contains(&new.as_str()) && current.column_index(new).is_none())
                .then(|| (old.name.clone(), new.clone()))
        })
        .collect()
}

/// True when `a` and `b` have the same columns, apart from source numbers
/// (a schema stored before they were recorded has none).
fn same_columns(a: &TableSchema, b: &TableSchema) -> bool {
    a.columns.len() == b.columns.len()
        && a.columns.iter().zip(&b.columns).all(|(x, y)| {
            x.name == y.name && x.data_type == y.data_type && x.nullable == y.nullable && x.source_type == y.source_type
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(columns: &[&str]) -> TableSchema {
        let column = |name: &&str| Column {
            name: name.to_string(),
            data_type: tributary_core::ColumnType::Int32,
            nullable: true,
            source_type: "integer".into(),
            source_id: None,
        };
        TableSchema {
            id: TableId::new("public", "t"),
            columns: columns.iter().map(column).collect(),
            primary_key: vec![0],
        }
    }

    fn message(columns: &[&str]) -> Vec<RelationColumn> {
        let column =
            |name: &&str| RelationColumn { name: (*name).into(), type_id: 23, type_modifier: -1, is_key: false };
        columns.iter().map(column).collect()
    }

    fn catalog(columns: &[(i16, &str)]) -> HashMap<i16, String> {
        columns.iter().map(|(n, name)| (*n, name.to_string())).collect()
    }

    /// `table` with the attribute numbers 1, 2, ... (as the catalog gives them at the start).
    fn numbered(mut table: TableSchema) -> TableSchema {
        for (i, column) in table.columns.iter_mut().enumerate() {
            column.source_id = Some(i as i64 + 1);
        }
        table
    }

    #[test]
    fn a_rename_is_told_from_a_drop_plus_an_add_by_attribute_number() {
        let started = numbered(table(&["id", "old_name", "gone"]));
        // The first relation message is decoded after the rename, the drop and
        // the add ran: the catalog no longer has old_name; the number the
        // table's column carries still says which column it was.
        let after = catalog(&[(1, "id"), (2, "new_name"), (4, "fresh")]);
        assert!(renames(&started, &after, &message(&["id", "old_name", "gone"])).is_empty());
        let renamed = renames(&started, &after, &message(&["id", "new_name", "fresh"]));
        assert_eq!(renamed, [("old_name".to_string(), "new_name".to_string())], "gone -> fresh is a drop plus an add");
    }

    #[test]
    fn numbers_stored_with_the_schema_recognise_a_rename_made_while_stopped() {
        let stored = numbered(table(&["id", "old_name"]));
        // The catalog at the restart already has the new name.
        let renamed = renames(&stored, &catalog(&[(1, "id"), (2, "new_name")]), &message(&["id", "new_name"]));
        assert_eq!(renamed, [("old_name".to_string(), "new_name".to_string())]);
    }

    #[test]
    fn without_numbers_from_before_a_change_is_a_drop_plus_an_add() {
        // A schema stored without attribute numbers, renamed while the pipeline was stopped.
        let started = table(&["id", "old_name"]);
        assert!(renames(&started, &catalog(&[(1, "id"), (2, "new_name")]), &message(&["id", "new_name"])).is_empty());
    }
}
