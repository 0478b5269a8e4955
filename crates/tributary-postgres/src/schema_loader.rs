//! Reads the schema of the selected tables from the catalog: columns in
//! attnum order with their mapped types, the key (the replica identity index
//! under REPLICA IDENTITY USING INDEX, else the primary key), and each
//! table's REPLICA IDENTITY setting.

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
    /// True when the key of `schema` is the primary key (false: a replica identity index other than it, or none).
    pub has_primary_key: bool,
}

/// `domains` and `resolved`: every domain with its base type through any
/// chain of domains, and the typmod of the innermost domain (`numeric(10,2)` of
/// `CREATE DOMAIN price AS numeric(10,2)`). Shared by [`COLUMNS_SQL`] and
/// [`TYPE_SQL`] so that the snapshot's schema and a relation message's agree.
macro_rules! domains_cte {
    () => {
        "
WITH RECURSIVE domains(oid, base, typmod) AS (
    SELECT oid, typbasetype, typtypmod FROM pg_type WHERE typtype = 'd'
  UNION ALL
    SELECT d.oid, t.typbasetype, CASE WHEN t.typtypmod <> -1 THEN t.typtypmod ELSE d.typmod END
    FROM domains d JOIN pg_type t ON t.oid = d.base AND t.typtype = 'd'
),
resolved AS (
    SELECT d.oid, d.base, d.typmod FROM domains d JOIN pg_type t ON t.oid = d.base AND t.typtype <> 'd'
)
"
    };
}

/// Columns with their types: columns 5-11 are read by [`pg_type_at`], 12 is
/// the attribute number (kept by a rename, [`Column::source_id`]). A domain
/// is resolved to its base type, for the column and for an array's element;
/// the typmod is the innermost domain's, else the column's. Generated columns
/// are left out: pgoutput does not publish them (PostgreSQL before 18), so the
/// stream could only ever write them as null.
const COLUMNS_SQL: &str = concat!(
    domains_cte!(),
    "SELECT n.nspname::text, c.relname::text, c.relreplident::text, a.attname::text, a.attnotnull,
       format_type(a.atttypid, a.atttypmod),
       bt.typname::text, COALESCE(rd.typmod, a.atttypmod),
       bt.typcategory::text, et.typname::text, et.typcategory::text,
       COALESCE(re.typmod, rd.typmod, a.atttypmod), a.attnum::int8
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
LEFT JOIN resolved rd ON rd.oid = a.atttypid
JOIN pg_type bt ON bt.oid = COALESCE(rd.base, a.atttypid)
LEFT JOIN resolved re ON re.oid = bt.typelem AND bt.typcategory = 'A'
LEFT JOIN pg_type et ON et.oid = COALESCE(re.base, bt.typelem) AND bt.typcategory = 'A'
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
ORDER BY n.nspname, c.relname, a.attnum"
);

/// Columns of each table's primary key and of its replica identity index (one
/// index may be both), in index order.
const KEYS_SQL: &str = "
SELECT n.nspname::text, c.relname::text, a.attname::text, i.indisprimary, i.indisreplident
FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
WHERE (i.indisprimary OR i.indisreplident) AND c.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
ORDER BY n.nspname, c.relname, i.indexrelid, k.ord";

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
        let pg_type = pg_type_at(&row, 5);
        let data_type = map_type(&pg_type).map_err(|e| PostgresError::UnsupportedType {
            table: id.to_string(),
            column: name.clone(),
            source_type: e.source_type.clone(),
            reason: e.reason.clone(),
        })?;
        let column = Column {
            name,
            data_type,
            nullable: !row.get::<_, bool>(4),
            source_type: pg_type.display,
            source_id: Some(row.get::<_, i64>(12)),
        };
        let identity = ReplicaIdentity::from_code(&row.get::<_, String>(2));
        tables.entry(id).or_insert_with(|| Building { columns: Vec::new(), identity }).columns.push(column);
    }

    // Key columns: the replica identity index under REPLICA IDENTITY USING INDEX
    // (PostgreSQL sends only its columns for a delete, or for an update that
    // changes them), else the primary key.
    let key_rows = client.query(KEYS_SQL, &[]).await.map_err(|e| PostgresError::query("read table keys", e))?;
    #[derive(Default)]
    struct Keys {
        primary: Vec<String>,
        identity: Vec<String>,
    }
    let mut keys: BTreeMap<TableId, Keys> = BTreeMap::new();
    for row in key_rows {
        let id = TableId::new(row.get::<_, String>(0), row.get::<_, String>(1));
        if !tables.contains_key(&id) {
            continue;
        }
        let entry = keys.entry(id).or_default();
        let column: String = row.get(2);
        if row.get::<_, bool>(4) {
            entry.identity.push(column.clone());
        }
        if row.get::<_, bool>(3) {
            entry.primary.push(column);
        }
    }

    let mut out = Vec::with_capacity(tables.len());
    for (id, building) in tables {
        let keys = keys.remove(&id).unwrap_or_default();
        let key_names = match building.identity {
            ReplicaIdentity::Index if !keys.identity.is_empty() => keys.identity,
            _ => keys.primary.clone(),
        };
        let has_primary_key = !key_names.is_empty() && key_names == keys.primary;
        let mut primary_key = Vec::with_capacity(key_names.len());
        for k in &key_names {
            // The only key column not among the loaded columns is a generated one.
            let Some(position) = building.columns.iter().position(|c| &c.name == k) else {
                return Err(PostgresError::ReplicaIdentity {
                    table: id.to_string(),
                    problem: format!(
                        "key column {k} is a generated column, which PostgreSQL's logical replication does not \
                         publish; give the table a key without generated columns (or REPLICA IDENTITY USING INDEX \
                         on such a unique index), or exclude it with source.exclude"
                    ),
                });
            };
            primary_key.push(position);
        }
        let schema = TableSchema { id, columns: building.columns, primary_key };
        out.push(SourceTable { schema: Arc::new(schema), replica_identity: building.identity, has_primary_key });
    }
    Ok(out)
}

fn first_char(text: Option<&str>) -> char {
    text.and_then(|t| t.chars().next()).unwrap_or('X')
}

/// One type by oid (`$1`, as text) and typmod (`$2`), as a relation message
/// names a column's: columns 0-6 in the layout of [`pg_type_at`].
const TYPE_SQL: &str = concat!(
    domains_cte!(),
    "
SELECT format_type(t.oid, $2::int4), bt.typname::text, COALESCE(rd.typmod, $2::int4),
       bt.typcategory::text, et.typname::text, et.typcategory::text,
       COALESCE(re.typmod, rd.typmod, $2::int4)
FROM pg_type t
LEFT JOIN resolved rd ON rd.oid = t.oid
JOIN pg_type bt ON bt.oid = COALESCE(rd.base, t.oid)
LEFT JOIN resolved re ON re.oid = bt.typelem AND bt.typcategory = 'A'
LEFT JOIN pg_type et ON et.oid = COALESCE(re.base, bt.typelem) AND bt.typcategory = 'A'
WHERE t.oid = $1::text::oid"
);

/// The catalog's description of type `oid` with `typmod` (as a relation
/// message names a column's type), domains resolved exactly as [`load_tables`] does.
pub async fn lookup_type(client: &Client, oid: u32, typmod: i32) -> Result<PgType, PostgresError> {
    let row = client
        .query_one(TYPE_SQL, &[&(oid as i64).to_string(), &typmod])
        .await
        .map_err(|e| PostgresError::query(format!("look up type oid {oid}"), e))?;
    Ok(pg_type_at(&row, 0))
}

/// A type from seven columns starting at `first`: `format_type`, the base
/// type's name, typmod and category, the array element's name and category
/// (null when not an array) and the element's typmod.
fn pg_type_at(row: &tokio_postgres::Row, first: usize) -> PgType {
    let element = row.get::<_, Option<String>>(first + 4).map(|name| {
        Box::new(PgType {
            name: name.clone(),
            typmod: row.get(first + 6),
            category: first_char(row.get::<_, Option<String>>(first + 5).as_deref()),
            element: None,
            display: name,
        })
    });
    PgType {
        name: row.get(first + 1),
        typmod: row.get(first + 2),
        category: first_char(row.get::<_, Option<String>>(first + 3).as_deref()),
        element,
        display: row.get(first),
    }
}

/// For columns `names` of `table` (just added by a schema change), the value
/// the source shows for rows that existed before them: PostgreSQL's "missing
/// value" (`pg_attribute.attmissingval`), which `ADD COLUMN ... DEFAULT x`
/// records for a constant or a stable default (`5`, `now()`,
/// `current_date`: evaluated once, at the ALTER), else a constant default
/// evaluated now (the table was rewritten since). A column without a
/// default, or with a volatile one (`clock_timestamp()`, `nextval(...)`:
/// PostgreSQL rewrote the table with per-row values that logical decoding
/// never sees), is left out: its older rows read NULL
/// (docs/schema-evolution.md).
pub async fn existing_row_values(
    client: &Client,
    table: &TableSchema,
    names: &[String],
) -> Result<Vec<(String, tributary_core::Value)>, PostgresError> {
    let relation = crate::connect::qualified(&table.id);
    let rows = client
        .query(
            "SELECT a.attname::text, pg_get_expr(d.adbin, d.adrelid), a.atthasmissing, format_type(a.atttypid, a.atttypmod)
             FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
             WHERE a.attrelid = $1::text::regclass AND a.attgenerated = '' AND a.attname = ANY($2)",
            &[&relation, &names],
        )
        .await
        .map_err(|e| PostgresError::query(format!("read the defaults of {}", table.id), e))?;
    let mut out = Vec::new();
    for row in rows {
        let name: String = row.get(0);
        let Some(column) = table.column_index(&name).map(|i| &table.columns[i]) else { continue };
        let (expression, has_missing, type_name): (Option<String>, bool, String) = (row.get(1), row.get(2), row.get(3));
        let sql = if has_missing && !matches!(column.data_type, tributary_core::ColumnType::Array { .. }) {
            // One element of the column's type, kept as anyarray.
            Some(format!(
                "SELECT ((attmissingval::text::{type_name}[])[1])::text FROM pg_attribute \
                 WHERE attrelid = $1::text::regclass AND attname = $2"
            ))
        } else {
            // A constant default, evaluated now (the parameters are unused).
            expression
                .filter(|e| !e.contains('('))
                .map(|e| format!("SELECT concat(({e})) WHERE $1::text <> '' AND $2::text <> ''"))
        };
        let Some(sql) = sql else { continue };
        let text: Option<String> = client
            .query_one(&sql, &[&relation, &name])
            .await
            .map_err(|e| PostgresError::query(format!("read the value older rows of {}.{name} show", table.id), e))?
            .get(0);
        if let Some(text) = text {
            let value = crate::text_value::parse_text(&column.data_type, &text).map_err(|e| PostgresError::Decode {
                table: table.id.to_string(),
                lsn: "-".into(),
                problem: format!("value of column {name} in older rows: {e}"),
            })?;
            out.push((name, value));
        }
    }
    Ok(out)
}

/// The live columns of relation `oid` now: `(attnum, name)`.
pub async fn column_numbers(client: &Client, oid: u32) -> Result<Vec<(i16, String)>, PostgresError> {
    let rows = client
        .query(
            "SELECT attnum, attname::text FROM pg_attribute \
             WHERE attrelid = $1::text::oid AND attnum > 0 AND NOT attisdropped",
            &[&oid.to_string()],
        )
        .await
        .map_err(|e| PostgresError::query(format!("read the columns of relation {oid}"), e))?;
    Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
}
