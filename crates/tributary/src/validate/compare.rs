//! Row comparison of a table with a primary key. The mirror is read once,
//! file by file, into an index of key hash → row checksum (16 bytes of
//! payload a row, never whole rows or keys); the source is then read in
//! primary-key-ordered chunks of `--chunk-rows` from one consistent snapshot
//! and each chunk is matched against the index. Keys left in the index
//! afterwards exist only in Delta; a second pass over the mirror names them
//! (only when there are any).

use super::checksum::{key_hash, key_text, row_checksum};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use tributary_core::{Row, TableSchema, Value};

/// How many keys of each kind a report lists (the counts are always complete).
pub const MAX_REPORTED_KEYS: usize = 100;

/// The mirror of one table as key hash → checksum.
pub struct MirrorIndex {
    checksums: HashMap<u64, u64>,
    /// Keys present more than once in the mirror (each extra copy is extra in Delta).
    duplicates: Vec<String>,
    duplicate_count: u64,
    pub rows: u64,
}

/// Calls `row` with the key text and checksum of every mirror row, over the
/// source table's columns only, found by name: metadata columns and the
/// columns the source dropped that the mirror keeps (docs/schema-evolution.md)
/// never enter a checksum, and a source column a file lacks (written before
/// the column was added) reads NULL, as Delta readers read it.
async fn scan_mirror(
    path: &Path,
    schema: &TableSchema,
    mut row: impl FnMut(String, u64),
) -> Result<u64, tributary_delta::DeltaError> {
    // Position of each source column in the file's columns; files of one table share them.
    let mut names_seen: Vec<String> = Vec::new();
    let mut positions: Vec<Option<usize>> = Vec::new();
    let null = Value::Null;
    tributary_delta::for_each_row(path, |names, values| {
        if names != names_seen.as_slice() {
            names_seen = names.to_vec();
            positions = schema.columns.iter().map(|c| names.iter().position(|n| *n == c.name)).collect();
        }
        let cell = |i: usize| positions[i].map(|p| &values[p]).unwrap_or(&null);
        let key: Vec<&Value> = schema.primary_key.iter().map(|&i| cell(i)).collect();
        row(key_text(&key), row_checksum((0..schema.columns.len()).map(cell)));
    })
    .await
}

/// Reads the mirror at `path` into an index over the source table's columns.
pub async fn index_mirror(path: &Path, schema: &TableSchema) -> Result<MirrorIndex, tributary_delta::DeltaError> {
    let mut index = MirrorIndex { checksums: HashMap::new(), duplicates: Vec::new(), duplicate_count: 0, rows: 0 };
    index.rows = scan_mirror(path, schema, |key, checksum| {
        if index.checksums.insert(key_hash(&key), checksum).is_some() {
            index.duplicate_count += 1;
            if index.duplicates.len() < MAX_REPORTED_KEYS {
                index.duplicates.push(key);
            }
        }
    })
    .await?;
    Ok(index)
}

/// The texts of the keys (first [`MAX_REPORTED_KEYS`], sorted) whose hashes are in `wanted`.
pub async fn name_extra_keys(
    path: &Path,
    schema: &TableSchema,
    wanted: &HashSet<u64>,
) -> Result<Vec<String>, tributary_delta::DeltaError> {
    let mut keys = Vec::new();
    if wanted.is_empty() {
        return Ok(keys);
    }
    scan_mirror(path, schema, |key, _| {
        if wanted.contains(&key_hash(&key)) {
            keys.push(key);
        }
    })
    .await?;
    keys.sort();
    keys.dedup();
    keys.truncate(MAX_REPORTED_KEYS);
    Ok(keys)
}

/// Keys of one kind of difference: the complete count and the first keys.
#[derive(Debug, Default, Clone)]
pub struct KeyList {
    pub count: u64,
    pub keys: Vec<String>,
}

impl KeyList {
    fn add(&mut self, key: String) {
        self.count += 1;
        if self.keys.len() < MAX_REPORTED_KEYS {
            self.keys.push(key);
        }
    }
}

/// What differs between the source and the mirror.
#[derive(Debug, Default, Clone)]
pub struct Differences {
    pub source_rows: u64,
    pub chunks: u64,
    pub missing_in_delta: KeyList,
    pub extra_in_delta: KeyList,
    pub different: KeyList,
}

impl Differences {
    pub fn none(&self) -> bool {
        self.missing_in_delta.count == 0 && self.extra_in_delta.count == 0 && self.different.count == 0
    }
}

/// Matches source chunks against a mirror index.
pub struct Comparator<'a> {
    schema: &'a TableSchema,
    index: MirrorIndex,
    diffs: Differences,
    /// Per column: the mirror stores it as text (compared as its text form).
    as_text: Vec<bool>,
}

impl<'a> Comparator<'a> {
    pub fn new(schema: &'a TableSchema, index: MirrorIndex) -> Self {
        let mut diffs = Differences::default();
        diffs.extra_in_delta.count = index.duplicate_count;
        diffs.extra_in_delta.keys = index.duplicates.clone();
        Comparator { schema, index, diffs, as_text: vec![false; schema.columns.len()] }
    }

    /// Compares these columns by their text form: the mirror stores them as
    /// text (`sink.delta.incompatible_type_changes = "string"`).
    pub fn with_text_columns(mut self, text_columns: &BTreeSet<String>) -> Self {
        self.as_text = self.schema.columns.iter().map(|c| text_columns.contains(&c.name)).collect();
        self
    }

    /// One chunk of source rows (values in schema column order).
    pub fn source_chunk(&mut self, rows: &[Row]) {
        self.diffs.chunks += 1;
        let stored_forms = self.as_text.contains(&true)
            || self.schema.columns.iter().any(|c| tributary_delta::mirror::has_stored_form(&c.data_type));
        for row in rows {
            self.diffs.source_rows += 1;
            let stored;
            let row = if stored_forms {
                stored = stored_row(self.schema, &self.as_text, row);
                &stored
            } else {
                row
            };
            let key: Vec<&Value> = self.schema.primary_key.iter().map(|&i| &row[i]).collect();
            let key = key_text(&key);
            match self.index.checksums.remove(&key_hash(&key)) {
                None => self.diffs.missing_in_delta.add(key),
                Some(checksum) if checksum != row_checksum(row.iter()) => self.diffs.different.add(key),
                Some(_) => {}
            }
        }
    }

    /// The differences, and the hashes of the keys only the mirror holds
    /// (counted in `extra_in_delta`; name them with [`name_extra_keys`]).
    pub fn finish(mut self) -> (Differences, HashSet<u64>) {
        let extra: HashSet<u64> = self.index.checksums.into_keys().collect();
        self.diffs.extra_in_delta.count += extra.len() as u64;
        (self.diffs, extra)
    }

    /// Adds the named extra keys (from [`name_extra_keys`]) to the report.
    pub fn add_extra_keys(diffs: &mut Differences, keys: Vec<String>) {
        for key in keys {
            if diffs.extra_in_delta.keys.len() < MAX_REPORTED_KEYS && !diffs.extra_in_delta.keys.contains(&key) {
                diffs.extra_in_delta.keys.push(key);
            }
        }
    }
}

/// `row` with each value in the form the mirror reads it back
/// ([`tributary_delta::mirror::stored_form`]: a PostgreSQL time is stored as
/// text; [`tributary_delta::mirror::text_form`] for columns stored as text).
fn stored_row(schema: &TableSchema, as_text: &[bool], row: &Row) -> Row {
    row.iter()
        .zip(&schema.columns)
        .zip(as_text)
        .map(|((v, c), &text)| {
            if text {
                tributary_delta::mirror::text_form(&c.data_type, v)
            } else {
                tributary_delta::mirror::stored_form(&c.data_type, v).unwrap_or_else(|| v.clone())
            }
        })
        .collect()
}

/// A key text (JSON array) as an object `{column: value}` for reports.
pub fn key_object(schema: &TableSchema, key: &str) -> serde_json::Value {
    let parts: Vec<serde_json::Value> = serde_json::from_str(key).unwrap_or_default();
    let names = schema.primary_key.iter().map(|&i| schema.columns[i].name.clone());
    serde_json::Value::Object(names.zip(parts).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_core::{Column, ColumnType, TableId};

    #[test]
    fn reports_missing_extra_and_different_keys() {
        let schema = TableSchema {
            id: TableId::new("d", "t"),
            columns: vec![
                Column {
                    name: "id".into(),
                    data_type: ColumnType::Int64,
                    nullable: false,
                    source_type: "bigint".into(),
                    source_id: None,
                },
                Column {
                    name: "v".into(),
                    data_type: ColumnType::Text,
                    nullable: true,
                    source_type: "text".into(),
                    source_id: None,
                },
            ],
            primary_key: vec![0],
        };
        let row = |id: i64, v: &str| vec![Value::Int(id), Value::Text(v.into())];
        let mut checksums = HashMap::new();
        for r in [row(1, "a"), row(2, "B"), row(4, "d")] {
            checksums.insert(key_hash(&key_text(&[&r[0]])), row_checksum(r.iter()));
        }
        let index = MirrorIndex { checksums, duplicates: vec![], duplicate_count: 0, rows: 3 };
        let mut c = Comparator::new(&schema, index);
        c.source_chunk(&[row(1, "a"), row(2, "b")]);
        c.source_chunk(&[row(3, "c")]);
        let (mut d, extra) = c.finish();
        assert_eq!(extra, HashSet::from([key_hash("[4]")]));
        Comparator::add_extra_keys(&mut d, vec!["[4]".to_string()]);
        assert_eq!(d.source_rows, 3);
        assert_eq!(d.missing_in_delta.keys, vec!["[3]"]);
        assert_eq!(d.extra_in_delta.keys, vec!["[4]"]);
        assert_eq!(d.different.keys, vec!["[2]"]);
        assert_eq!(key_object(&schema, "[2]"), serde_json::json!({"id": 2}));
    }

    #[test]
    fn a_source_time_matches_the_text_the_mirror_stores() {
        let schema = TableSchema {
            id: TableId::new("d", "t"),
            columns: vec![
                Column {
                    name: "id".into(),
                    data_type: ColumnType::Int32,
                    nullable: false,
                    source_type: "int".into(),
                    source_id: None,
                },
                Column {
                    name: "t".into(),
                    data_type: ColumnType::Time { fsp: 3 },
                    nullable: true,
                    source_type: "time(3) without time zone".into(),
                    source_id: None,
                },
            ],
            primary_key: vec![0],
        };
        let stored = [Value::Int(1), Value::Text("00:00:01.500".into())];
        let mut checksums = HashMap::new();
        checksums.insert(key_hash(&key_text(&[&stored[0]])), row_checksum(stored.iter()));
        let index = MirrorIndex { checksums, duplicates: vec![], duplicate_count: 0, rows: 1 };
        let mut c = Comparator::new(&schema, index);
        c.source_chunk(&[vec![Value::Int(1), Value::Time(1_500_000)]]);
        let (d, extra) = c.finish();
        assert!(d.none() && extra.is_empty(), "{d:?}");
    }
}
