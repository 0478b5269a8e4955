//! Reads the schema of the selected tables from the catalog: columns in
//! attnum order with their mapped types, the primary key (or the replica
//! identity index), and each table's REPLICA IDENTITY setting.

use crate::error::PostgresError;
use crate::type_map::{map_type, PgType};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio_postgres::Client;
use tributary_core::{Column, TableFilter, TableId, TableSchema};

/// A table's REPLICA IDENTITY (`pg_class.relreplident`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaIdentity {
    /// `d`: the primary key (nothing when there is none).
    Default,
    /// `f`: the whole old row.
    Full,
    /// `i`: the columns of a chosen unique index.
    Index,
    /// `n`: nothing.
    Nothing,
}

impl ReplicaIdentity {
    fn from_code(code: &str) -> Self {
        match code {
            "f" => ReplicaIdentity::Full,
            "i" => ReplicaIdentity::Index,
            "n" => ReplicaIdentity::Nothing,
            _ => ReplicaIdentity::Default,
        }
    }
}

/// A selected table: its schema and its replica identity.
#[derive(Debug, Clone)]
pub struct SourceTable {
    pub schema: Arc<TableSchema>,
    pub replica_identity: ReplicaIdentity,
    /// True when the key of `schema` is the primary key (false: replica identity index or none).
    pub has_primary_key: bool,
}

const COLUMNS_SQL: &str = "
SELECT n.nspname::text, c.relname::text, c.relreplident::text, a.attname::text, a.attnotnull,
       format_type(a.atttypid, a.atttypmod),
       bt.typname::text, CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END,
       bt.typcategory::text, et.typname::text, et.typcategory::text
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type t ON t.oid = a.atttypid
JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
LEFT JOIN pg_type et ON et.oid = bt.typelem AND bt.typcategory = 'A'
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
ORDER BY n.nspname, c.relname, a.attnum";

const KEYS_SQL: &str = "
SELECT n.nspname::text, c.relname::text, a.attname::text, i.indisprimary
FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
WHERE (i.indisprimary OR i.indisreplident) AND c.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
ORDER BY n.nspname, c.relname, i.indisprimary DESC, k.ord";

/// Loads every table `filter` selects, sorted by table id.
pub async fn load_tables(client: &Client, filter: &TableFilter) -> Result<Vec<SourceTable>, PostgresError> {
    struct Building {
        columns: Vec<Column>,
        identity: ReplicaIdentity,
    }
    let rows = client.query(COLUMNS_SQL, &[]).await.map_err(|e| PostgresError::query("read table columns", e))?;
    let mut tables: BTreeMap<TableId, Building> = BTreeMap::new();
    for row in rows {
        let id = TableId::new(row.get::<_, String>(0), row.get::<_, String>(1));
        if !filter.matches(&id) {
            continue;
        }
        let name: String = row.get(3);
        let element = row.get::<_, Option<String>>(9).map(|element_name| {
            Box::new(PgType {
                name: element_name.clone(),
                typmod: row.get(7),
                category: first_char(row.get::<_, Option<String>>(10).as_deref()),
                element: None,
                display: element_name,
            })
        });
        let pg_type = PgType {
            name: row.get(6),
            typmod: row.get(7),
            category: first_char(row.get::<_, Option<String>>(8).as_deref()),
            element,
            display: row.get(5),
        };
        let data_type = map_type(&pg_type).map_err(|e| PostgresError::UnsupportedType {
            table: id.to_string(),
            column: name.clone(),
            source_type: e.source_type.clone(),
            reason: e.reason.clone(),
        })?;
        let column = Column { name, data_type, nullable: !row.get::<_, bool>(4), source_type: pg_type.display };
        let identity = ReplicaIdentity::from_code(&row.get::<_, String>(2));
        tables.entry(id).or_insert_with(|| Building { columns: Vec::new(), identity }).columns.push(column);
    }

    // Key columns: the primary key, else the replica identity index (rows sorted primary first).
    let key_rows = client.query(KEYS_SQL, &[]).await.map_err(|e| PostgresError::query("read table keys", e))?;
    let mut keys: BTreeMap<TableId, (bool, Vec<String>)> = BTreeMap::new();
    for row in key_rows {
        let id = TableId::new(row.get::<_, String>(0), row.get::<_, String>(1));
        if !tables.contains_key(&id) {
            continue;
        }
        let primary: bool = row.get(3);
        let entry = keys.entry(id).or_insert_with(|| (primary, Vec::new()));
        if entry.0 == primary {
            entry.1.push(row.get(2));
        }
    }

    let mut out = Vec::with_capacity(tables.len());
    for (id, building) in tables {
        let (has_primary_key, key_names) = keys.remove(&id).unwrap_or_default();
        let primary_key = key_names
            .iter()
            .map(|k| building.columns.iter().position(|c| &c.name == k).expect("key columns are table columns"))
            .collect();
        let schema = TableSchema { id, columns: building.columns, primary_key };
        out.push(SourceTable { schema: Arc::new(schema), replica_identity: building.identity, has_primary_key });
    }
    Ok(out)
}

fn first_char(text: Option<&str>) -> char {
    text.and_then(|t| t.chars().next()).unwrap_or('X')
}
