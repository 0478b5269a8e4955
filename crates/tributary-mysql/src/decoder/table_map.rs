//! Schemas from TABLE_MAP events alone, for binlog files read offline: the
//! [`TableMapResolver`] maps each binlog column type (plus the optional
//! metadata: names, signedness, charsets, ENUM / SET labels, geometry types,
//! primary key) to a [`ColumnType`] as docs/types.md specifies. Also matches a
//! resolver's schema with the TABLE_MAP columns for the decoder.

use std::collections::HashMap;
use std::sync::Arc;

use mysql_common::binlog::events::{OptionalMetaExtractor, OptionalMetadataField, TableMapEvent};
use mysql_common::constants::{ColumnType as BinlogType, GeometryType};
use tributary_core::{Column, ColumnType, TableId, TableSchema};

use super::rows::{layout, ColumnLayout};
use super::values::{quote_label, CellPlan};
use super::{DecodeError, SchemaResolver};

/// Largest DECIMAL precision kept as a decimal; wider ones become exact text.
const MAX_DECIMAL_PRECISION: u8 = 38;
/// Collation id of the `binary` character set.
const BINARY_COLLATION: u16 = 63;
/// Prefix of the names MySQL gives hidden generated columns (functional indexes).
const HIDDEN_PREFIX: &str = "!hidden!";
/// Table maps remembered before the cache is emptied.
const CACHE_LIMIT: usize = 1024;

/// Include predicate of a [`TableMapResolver`].
type Include = Box<dyn FnMut(&TableId) -> bool + Send>;

/// Builds each table's schema from its TABLE_MAP event: columns are named
/// `col_{i}` when the metadata has no names (binlog_row_metadata=MINIMAL).
/// Every table is included unless an include predicate says otherwise.
pub struct TableMapResolver {
    include: Option<Include>,
    cache: HashMap<u64, (TableMapEvent<'static>, Option<Arc<TableSchema>>)>,
}

impl TableMapResolver {
    /// A resolver including every table.
    pub fn new() -> Self {
        TableMapResolver { include: None, cache: HashMap::new() }
    }

    /// A resolver including the tables `include` accepts.
    pub fn with_include(include: impl FnMut(&TableId) -> bool + Send + 'static) -> Self {
        TableMapResolver { include: Some(Box::new(include)), ..TableMapResolver::new() }
    }

    /// The schema a TABLE_MAP event describes.
    pub fn schema_of(tme: &TableMapEvent<'_>) -> Result<TableSchema, DecodeError> {
        let id = table_id_of(tme);
        let info = TableMapInfo::parse(tme).map_err(|e| DecodeError::schema(format!("table {id}: {e}")))?;
        let mut columns = Vec::with_capacity(info.columns.len());
        let mut index = Vec::with_capacity(info.columns.len());
        for (i, meta) in info.columns.iter().enumerate() {
            let name = meta.name.clone().unwrap_or_else(|| format!("col_{i}"));
            if name.starts_with(HIDDEN_PREFIX) {
                index.push(None);
                continue;
            }
            let (data_type, source_type) =
                column_type(meta).map_err(|e| DecodeError::schema(format!("table {id} column {name}: {e}")))?;
            index.push(Some(columns.len()));
            columns.push(Column { name, data_type, nullable: meta.nullable, source_type });
        }
        let primary_key = info.primary_key.iter().filter_map(|i| index.get(*i).copied().flatten()).collect();
        Ok(TableSchema { id, columns, primary_key })
    }
}

impl Default for TableMapResolver {
    fn default() -> Self {
        TableMapResolver::new()
    }
}

impl std::fmt::Debug for TableMapResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableMapResolver")
            .field("filtered", &self.include.is_some())
            .field("cached_tables", &self.cache.len())
            .finish()
    }
}

impl SchemaResolver for TableMapResolver {
    fn resolve(&mut self, tme: &TableMapEvent<'_>) -> Result<Option<Arc<TableSchema>>, DecodeError> {
        if let Some((cached, schema)) = self.cache.get(&tme.table_id()) {
            if cached == tme {
                return Ok(schema.clone());
            }
        }
        let id = table_id_of(tme);
        let included = self.include.as_mut().is_none_or(|include| include(&id));
        let schema = if included { Some(Arc::new(Self::schema_of(tme)?)) } else { None };
        if self.cache.len() >= CACHE_LIMIT {
            self.cache.clear();
        }
        self.cache.insert(tme.table_id(), (tme.clone().into_owned(), schema.clone()));
        Ok(schema)
    }
}

/// `database.table` of a TABLE_MAP event.
pub(crate) fn table_id_of(tme: &TableMapEvent<'_>) -> TableId {
    TableId::new(tme.database_name().into_owned(), tme.table_name().into_owned())
}

/// What the TABLE_MAP says about one column.
#[derive(Debug, Clone, Default)]
pub(crate) struct ColumnMeta {
    /// The real type (ENUM / SET unwrapped from STRING).
    pub(crate) binlog_type: Option<BinlogType>,
    pub(crate) type_meta: Vec<u8>,
    pub(crate) nullable: bool,
    pub(crate) name: Option<String>,
    pub(crate) unsigned: Option<bool>,
    pub(crate) collation: Option<u16>,
    pub(crate) labels: Option<Vec<String>>,
    pub(crate) geometry: Option<GeometryType>,
    pub(crate) dimension: Option<u64>,
}

/// A TABLE_MAP event's columns with their optional metadata.
#[derive(Debug, Clone, Default)]
pub(crate) struct TableMapInfo {
    pub(crate) columns: Vec<ColumnMeta>,
    pub(crate) primary_key: Vec<usize>,
    /// True when the event carries column names (binlog_row_metadata=FULL).
    pub(crate) has_names: bool,
}

impl TableMapInfo {
    /// Reads the column types and every optional metadata field.
    pub(crate) fn parse(tme: &TableMapEvent<'_>) -> Result<Self, String> {
        let n = tme.columns_count() as usize;
        let nulls = tme.null_bitmask();
        let mut columns = Vec::with_capacity(n);
        for i in 0..n {
            let binlog_type = tme.get_column_type(i).map_err(|e| format!("column {i}: {e}"))?;
            columns.push(ColumnMeta {
                binlog_type,
                type_meta: tme.get_column_metadata(i).unwrap_or_default().to_vec(),
                nullable: nulls.get(i).map(|b| *b).unwrap_or(true),
                ..ColumnMeta::default()
            });
        }
        let mut info = TableMapInfo { columns, primary_key: Vec::new(), has_names: false };
        info.read_extracted(tme).map_err(|e| format!("bad TABLE_MAP optional metadata: {e}"))?;
        info.read_fields(tme).map_err(|e| format!("bad TABLE_MAP optional metadata: {e}"))?;
        Ok(info)
    }

    /// Signedness, charsets, names and primary key, via `mysql_common`'s extractor.
    fn read_extracted(&mut self, tme: &TableMapEvent<'_>) -> std::io::Result<()> {
        let extractor = OptionalMetaExtractor::new(tme.iter_optional_meta())?;
        let mut signedness = extractor.iter_signedness();
        let mut charsets = extractor.iter_charset();
        let mut enum_charsets = extractor.iter_enum_and_set_charset();
        for col in &mut self.columns {
            let Some(ty) = col.binlog_type else { continue };
            if ty.is_numeric_type() {
                col.unsigned = signedness.next();
            }
            if is_character(ty) {
                col.collation = charsets.next().transpose()?;
            } else if ty.is_enum_or_set_type() {
                col.collation = enum_charsets.next().transpose()?;
            }
        }
        let mut names = extractor.iter_column_name();
        for col in &mut self.columns {
            match names.next().transpose()? {
                Some(name) => col.name = Some(name.name().into_owned()),
                None => break,
            }
        }
        self.has_names = self.columns.iter().all(|c| c.name.is_some()) && !self.columns.is_empty();
        for key in extractor.iter_primary_key() {
            self.primary_key.push(key? as usize);
        }
        Ok(())
    }

    /// ENUM / SET labels, geometry types and vector dimensions.
    fn read_fields(&mut self, tme: &TableMapEvent<'_>) -> std::io::Result<()> {
        for field in tme.iter_optional_meta() {
            match field? {
                OptionalMetadataField::EnumStrValue(values) => {
                    let mut cols = self.columns_of(BinlogType::MYSQL_TYPE_ENUM);
                    for labels in values.iter_values() {
                        let labels = labels?;
                        if let Some(i) = cols.next() {
                            self.columns[i].labels =
                                Some(labels.values().iter().map(|v| v.value().into_owned()).collect());
                        }
                    }
                }
                OptionalMetadataField::SetStrValue(values) => {
                    let mut cols = self.columns_of(BinlogType::MYSQL_TYPE_SET);
                    for labels in values.iter_values() {
                        let labels = labels?;
                        if let Some(i) = cols.next() {
                            self.columns[i].labels =
                                Some(labels.values().iter().map(|v| v.value().into_owned()).collect());
                        }
                    }
                }
                OptionalMetadataField::GeometryType(types) => {
                    let mut cols = self.columns_of(BinlogType::MYSQL_TYPE_GEOMETRY);
                    for ty in types.iter_geometry_types() {
                        let ty = ty?;
                        if let Some(i) = cols.next() {
                            self.columns[i].geometry = Some(ty);
                        }
                    }
                }
                OptionalMetadataField::Dimensionality(dims) => {
                    let mut cols = self.columns_of(BinlogType::MYSQL_TYPE_VECTOR);
                    for dim in dims.iter_dimensionalities() {
                        let dim = dim?;
                        if let Some(i) = cols.next() {
                            self.columns[i].dimension = Some(dim);
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Indexes of the columns of real type `ty`, in order.
    fn columns_of(&self, ty: BinlogType) -> std::vec::IntoIter<usize> {
        let idx: Vec<usize> = (0..self.columns.len()).filter(|i| self.columns[*i].binlog_type == Some(ty)).collect();
        idx.into_iter()
    }
}

/// Columns that take a charset entry: the string and BLOB-based types. The
/// servers count GEOMETRY and VECTOR too (VECTOR columns take one in
/// vector.binlog, MySQL 9.0), which `mysql_common`'s `is_character_type` misses.
fn is_character(ty: BinlogType) -> bool {
    ty.is_character_type() || matches!(ty, BinlogType::MYSQL_TYPE_GEOMETRY | BinlogType::MYSQL_TYPE_VECTOR)
}

/// The column type and a COLUMN_TYPE-like source type for one TABLE_MAP column.
fn column_type(meta: &ColumnMeta) -> Result<(ColumnType, String), String> {
    use BinlogType as B;
    let ty = meta.binlog_type.ok_or("unknown binlog column type")?;
    let unsigned = meta.unsigned.unwrap_or(false);
    let m = &meta.type_meta;
    let int = |name: &str, signed: ColumnType, unsigned_type: ColumnType| {
        if unsigned {
            (unsigned_type, format!("{name} unsigned"))
        } else {
            (signed, name.to_string())
        }
    };
    let binary = meta.collation == Some(BINARY_COLLATION);
    let charset_known = meta.collation.is_some();
    Ok(match ty {
        B::MYSQL_TYPE_TINY => int("tinyint", ColumnType::Int8, ColumnType::Int16),
        B::MYSQL_TYPE_SHORT => int("smallint", ColumnType::Int16, ColumnType::Int32),
        B::MYSQL_TYPE_INT24 => int("mediumint", ColumnType::Int32, ColumnType::Int32),
        B::MYSQL_TYPE_LONG => int("int", ColumnType::Int32, ColumnType::Int64),
        B::MYSQL_TYPE_LONGLONG => int("bigint", ColumnType::Int64, ColumnType::UInt64),
        B::MYSQL_TYPE_FLOAT => (ColumnType::Float32, "float".into()),
        B::MYSQL_TYPE_DOUBLE => (ColumnType::Float64, "double".into()),
        B::MYSQL_TYPE_NEWDECIMAL => decimal(m)?,
        B::MYSQL_TYPE_YEAR => (ColumnType::Int16, "year".into()),
        B::MYSQL_TYPE_DATE | B::MYSQL_TYPE_NEWDATE => (ColumnType::Date, "date".into()),
        B::MYSQL_TYPE_TIME => (ColumnType::Time { fsp: 0 }, "time".into()),
        B::MYSQL_TYPE_TIME2 => {
            let fsp = fsp(m)?;
            (ColumnType::Time { fsp }, with_fsp("time", fsp))
        }
        B::MYSQL_TYPE_DATETIME => (ColumnType::TimestampNtz, "datetime".into()),
        B::MYSQL_TYPE_DATETIME2 => (ColumnType::TimestampNtz, with_fsp("datetime", fsp(m)?)),
        B::MYSQL_TYPE_TIMESTAMP => (ColumnType::Timestamp, "timestamp".into()),
        B::MYSQL_TYPE_TIMESTAMP2 => (ColumnType::Timestamp, with_fsp("timestamp", fsp(m)?)),
        B::MYSQL_TYPE_BIT => {
            let bits = usize::from(*m.get(1).unwrap_or(&0)) * 8 + usize::from(*m.first().unwrap_or(&0));
            let t = if bits == 1 { ColumnType::Bool } else { ColumnType::Bytes };
            (t, format!("bit({bits})"))
        }
        B::MYSQL_TYPE_VARCHAR | B::MYSQL_TYPE_VAR_STRING if binary => (ColumnType::Bytes, "varbinary".into()),
        B::MYSQL_TYPE_VARCHAR | B::MYSQL_TYPE_VAR_STRING if charset_known => (ColumnType::Text, "varchar".into()),
        B::MYSQL_TYPE_STRING if binary => (ColumnType::Bytes, format!("binary({})", string_length(m))),
        B::MYSQL_TYPE_STRING if charset_known => (ColumnType::Text, "char".into()),
        B::MYSQL_TYPE_BLOB if binary => (ColumnType::Bytes, blob_name(m, "blob")),
        B::MYSQL_TYPE_BLOB if charset_known => (ColumnType::Text, blob_name(m, "text")),
        // No charset metadata (servers before MySQL 8.0.1 / MariaDB 10.5): bytes, losslessly.
        B::MYSQL_TYPE_VARCHAR | B::MYSQL_TYPE_VAR_STRING => (ColumnType::Bytes, "varchar or varbinary".into()),
        B::MYSQL_TYPE_STRING => (ColumnType::Bytes, "char or binary".into()),
        B::MYSQL_TYPE_BLOB => (ColumnType::Bytes, "text or blob".into()),
        B::MYSQL_TYPE_JSON => (ColumnType::Json, "json".into()),
        B::MYSQL_TYPE_GEOMETRY => (ColumnType::Bytes, geometry_name(meta.geometry).into()),
        B::MYSQL_TYPE_ENUM => labelled("enum", meta.labels.as_deref(), ColumnType::Int16),
        B::MYSQL_TYPE_SET => labelled("set", meta.labels.as_deref(), ColumnType::UInt64),
        B::MYSQL_TYPE_VECTOR => {
            let source = meta.dimension.map_or("vector".to_string(), |d| format!("vector({d})"));
            (ColumnType::Array { element: Box::new(ColumnType::Float32) }, source)
        }
        other => return Err(format!("binlog column type {other:?} has no mapping")),
    })
}

fn decimal(m: &[u8]) -> Result<(ColumnType, String), String> {
    let (p, s) = match m {
        [p, s, ..] => (*p, *s),
        _ => return Err("DECIMAL without precision metadata".into()),
    };
    let t = if p <= MAX_DECIMAL_PRECISION { ColumnType::Decimal { precision: p, scale: s } } else { ColumnType::Text };
    Ok((t, format!("decimal({p},{s})")))
}

fn fsp(m: &[u8]) -> Result<u8, String> {
    match m.first() {
        Some(f) if *f <= 6 => Ok(*f),
        Some(f) => Err(format!("fractional seconds precision {f} is above 6")),
        None => Ok(0),
    }
}

fn with_fsp(name: &str, fsp: u8) -> String {
    if fsp == 0 {
        name.to_string()
    } else {
        format!("{name}({fsp})")
    }
}

/// Byte length of a CHAR / BINARY column from its STRING metadata.
fn string_length(m: &[u8]) -> usize {
    match m {
        [b0, b1, ..] if b0 & 0x30 != 0x30 => usize::from(*b1) | ((usize::from(b0 & 0x30) ^ 0x30) << 4),
        [_, b1, ..] => usize::from(*b1),
        _ => 0,
    }
}

fn blob_name(m: &[u8], kind: &str) -> String {
    let prefix = match m.first() {
        Some(1) => "tiny",
        Some(3) => "medium",
        Some(4) => "long",
        _ => "",
    };
    format!("{prefix}{kind}")
}

fn geometry_name(ty: Option<GeometryType>) -> &'static str {
    match ty {
        Some(GeometryType::GEOM_POINT) => "point",
        Some(GeometryType::GEOM_LINESTRING) => "linestring",
        Some(GeometryType::GEOM_POLYGON) => "polygon",
        Some(GeometryType::GEOM_MULTIPOINT) => "multipoint",
        Some(GeometryType::GEOM_MULTILINESTRING) => "multilinestring",
        Some(GeometryType::GEOM_MULTIPOLYGON) => "multipolygon",
        Some(GeometryType::GEOM_GEOMETRYCOLLECTION) => "geomcollection",
        Some(GeometryType::GEOM_GEOMETRY) | None => "geometry",
    }
}

/// ENUM / SET: text labels when the metadata lists them, else the raw index / bitmask.
fn labelled(kind: &str, labels: Option<&[String]>, without: ColumnType) -> (ColumnType, String) {
    match labels {
        Some(labels) => {
            let quoted: Vec<String> = labels.iter().map(|l| quote_label(l)).collect();
            (ColumnType::Text, format!("{kind}({})", quoted.join(",")))
        }
        None => (without, format!("{kind} (labels not in the binlog: binlog_row_metadata=MINIMAL)")),
    }
}

/// How a resolver's schema lines up with a TABLE_MAP: which schema column
/// each binlog column fills, and how to decode each schema column's cells.
#[derive(Debug)]
pub(crate) struct TablePlan {
    pub(crate) schema: Arc<TableSchema>,
    /// For each TABLE_MAP column: its index in `schema.columns`, or `None` (hidden column).
    pub(crate) to_schema: Vec<Option<usize>>,
    /// For each schema column: how to decode its cells.
    pub(crate) cells: Vec<CellPlan>,
    /// For each TABLE_MAP column: how its cells are laid out in row images.
    pub(crate) layout: Vec<ColumnLayout>,
}

impl TablePlan {
    /// Matches `schema` with the TABLE_MAP columns: by position when the
    /// counts agree, else by name (hidden `!hidden!` columns are skipped).
    pub(crate) fn new(schema: Arc<TableSchema>, tme: &TableMapEvent<'_>) -> Result<Self, String> {
        let info = TableMapInfo::parse(tme)?;
        let to_schema = match_columns(&schema, &info)?;
        let mut from_binlog = vec![usize::MAX; schema.columns.len()];
        for (b, s) in to_schema.iter().enumerate() {
            if let Some(s) = s {
                from_binlog[*s] = b;
            }
        }
        if let Some(missing) = from_binlog.iter().position(|b| *b == usize::MAX) {
            let name = &schema.columns[missing].name;
            return Err(format!(
                "schema column {name} is not in the binlog's TABLE_MAP; the table was altered: restart Tributary to reload its schema"
            ));
        }
        let cells = from_binlog
            .iter()
            .zip(&schema.columns)
            .map(|(b, column)| {
                let meta = &info.columns[*b];
                let plan = CellPlan::from_column(column);
                match meta.binlog_type {
                    Some(ty) => plan.with_binlog_type(ty, meta.collation),
                    None => plan,
                }
            })
            .collect();
        let unsigned: Vec<bool> = info.columns.iter().map(|c| c.unsigned.unwrap_or(false)).collect();
        let layout = layout(tme, &unsigned)?;
        Ok(TablePlan { schema, to_schema, cells, layout })
    }
}

fn match_columns(schema: &TableSchema, info: &TableMapInfo) -> Result<Vec<Option<usize>>, String> {
    let (binlog, ours) = (info.columns.len(), schema.columns.len());
    if binlog == ours {
        return Ok((0..binlog).map(Some).collect());
    }
    if !info.has_names {
        return Err(format!(
            "the binlog has {binlog} columns but the schema has {ours}, and the TABLE_MAP carries no column names \
             to match them by; run SET GLOBAL binlog_row_metadata='FULL' on the source"
        ));
    }
    let mut to_schema = Vec::with_capacity(binlog);
    for meta in &info.columns {
        let name = meta.name.as_deref().unwrap_or_default();
        match schema.column_index(name) {
            Some(i) => to_schema.push(Some(i)),
            None if name.starts_with(HIDDEN_PREFIX) => to_schema.push(None),
            None => {
                return Err(format!(
                    "binlog column {name} is not in the schema; the table was altered: restart Tributary to reload its schema"
                ))
            }
        }
    }
    Ok(to_schema)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(ty: BinlogType, type_meta: &[u8]) -> ColumnMeta {
        ColumnMeta { binlog_type: Some(ty), type_meta: type_meta.to_vec(), nullable: true, ..ColumnMeta::default() }
    }

    fn mapped(m: ColumnMeta) -> (ColumnType, String) {
        column_type(&m).unwrap()
    }

    #[test]
    fn integers_widen_when_unsigned() {
        let cases = [
            (BinlogType::MYSQL_TYPE_TINY, ColumnType::Int8, ColumnType::Int16),
            (BinlogType::MYSQL_TYPE_SHORT, ColumnType::Int16, ColumnType::Int32),
            (BinlogType::MYSQL_TYPE_INT24, ColumnType::Int32, ColumnType::Int32),
            (BinlogType::MYSQL_TYPE_LONG, ColumnType::Int32, ColumnType::Int64),
            (BinlogType::MYSQL_TYPE_LONGLONG, ColumnType::Int64, ColumnType::UInt64),
        ];
        for (ty, signed, unsigned) in cases {
            assert_eq!(mapped(meta(ty, &[])).0, signed, "{ty:?}");
            let m = ColumnMeta { unsigned: Some(true), ..meta(ty, &[]) };
            let (t, source) = mapped(m);
            assert_eq!(t, unsigned, "{ty:?}");
            assert!(source.ends_with(" unsigned"));
        }
    }

    #[test]
    fn decimals_up_to_38_digits_are_decimal_and_wider_are_text() {
        assert_eq!(
            mapped(meta(BinlogType::MYSQL_TYPE_NEWDECIMAL, &[10, 2])),
            (ColumnType::Decimal { precision: 10, scale: 2 }, "decimal(10,2)".into())
        );
        assert_eq!(mapped(meta(BinlogType::MYSQL_TYPE_NEWDECIMAL, &[65, 30])).0, ColumnType::Text);
    }

    #[test]
    fn temporal_types_keep_their_precision() {
        assert_eq!(mapped(meta(BinlogType::MYSQL_TYPE_TIME2, &[3])), (ColumnType::Time { fsp: 3 }, "time(3)".into()));
        assert_eq!(mapped(meta(BinlogType::MYSQL_TYPE_DATETIME2, &[6])).0, ColumnType::TimestampNtz);
        assert_eq!(mapped(meta(BinlogType::MYSQL_TYPE_TIMESTAMP2, &[0])), (ColumnType::Timestamp, "timestamp".into()));
        assert_eq!(mapped(meta(BinlogType::MYSQL_TYPE_NEWDATE, &[])).0, ColumnType::Date);
        assert_eq!(mapped(meta(BinlogType::MYSQL_TYPE_YEAR, &[])).0, ColumnType::Int16);
    }

    #[test]
    fn strings_follow_their_charset() {
        let text = |ty, m: &[u8], c| mapped(ColumnMeta { collation: Some(c), ..meta(ty, m) });
        assert_eq!(text(BinlogType::MYSQL_TYPE_VARCHAR, &[144, 1], 255).0, ColumnType::Text);
        assert_eq!(text(BinlogType::MYSQL_TYPE_VARCHAR, &[144, 1], 63).0, ColumnType::Bytes);
        assert_eq!(text(BinlogType::MYSQL_TYPE_BLOB, &[2], 255), (ColumnType::Text, "text".into()));
        assert_eq!(text(BinlogType::MYSQL_TYPE_BLOB, &[4], 63), (ColumnType::Bytes, "longblob".into()));
        assert_eq!(text(BinlogType::MYSQL_TYPE_STRING, &[254, 16], 63), (ColumnType::Bytes, "binary(16)".into()));
        assert_eq!(text(BinlogType::MYSQL_TYPE_STRING, &[222, 0], 255).0, ColumnType::Text);
        assert_eq!(mapped(meta(BinlogType::MYSQL_TYPE_BLOB, &[2])).0, ColumnType::Bytes, "unknown charset is lossless");
    }

    #[test]
    fn char_length_reads_the_high_bits_of_long_char_columns() {
        assert_eq!(string_length(&[222, 0]), 512);
        assert_eq!(string_length(&[254, 8]), 8);
    }

    #[test]
    fn bit_json_geometry_and_vector_map() {
        assert_eq!(mapped(meta(BinlogType::MYSQL_TYPE_BIT, &[1, 0])), (ColumnType::Bool, "bit(1)".into()));
        assert_eq!(mapped(meta(BinlogType::MYSQL_TYPE_BIT, &[3, 0])), (ColumnType::Bytes, "bit(3)".into()));
        assert_eq!(mapped(meta(BinlogType::MYSQL_TYPE_BIT, &[0, 1])), (ColumnType::Bytes, "bit(8)".into()));
        assert_eq!(mapped(meta(BinlogType::MYSQL_TYPE_JSON, &[4])).0, ColumnType::Json);
        let point =
            ColumnMeta { geometry: Some(GeometryType::GEOM_POINT), ..meta(BinlogType::MYSQL_TYPE_GEOMETRY, &[4]) };
        assert_eq!(mapped(point), (ColumnType::Bytes, "point".into()));
        let v = ColumnMeta { dimension: Some(3), ..meta(BinlogType::MYSQL_TYPE_VECTOR, &[4]) };
        assert_eq!(mapped(v), (ColumnType::Array { element: Box::new(ColumnType::Float32) }, "vector(3)".into()));
    }

    #[test]
    fn enum_and_set_carry_their_labels_in_the_source_type() {
        let e = ColumnMeta {
            labels: Some(vec!["a".into(), "it's".into()]),
            ..meta(BinlogType::MYSQL_TYPE_ENUM, &[247, 1])
        };
        assert_eq!(mapped(e), (ColumnType::Text, "enum('a','it''s')".into()));
        let s = meta(BinlogType::MYSQL_TYPE_SET, &[248, 1]);
        assert_eq!(mapped(s).0, ColumnType::UInt64);
    }

    #[test]
    fn blob_based_types_take_a_charset_entry() {
        for ty in [BinlogType::MYSQL_TYPE_GEOMETRY, BinlogType::MYSQL_TYPE_VECTOR, BinlogType::MYSQL_TYPE_BLOB] {
            assert!(is_character(ty), "{ty:?}");
        }
        assert!(!is_character(BinlogType::MYSQL_TYPE_ENUM) && !is_character(BinlogType::MYSQL_TYPE_JSON));
    }
}
