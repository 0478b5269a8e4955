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
            columns.push(Column { name, data_type, nullable: meta.nullable, source_type, source_id: None });
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

    /// `TRUNCATE` of a table whose TABLE_MAP was seen: Begin / Truncate /
    /// Commit. Other DDL needs nothing: the next TABLE_MAP describes the table.
    fn table_ddl(
        &mut self,
        ddl: &super::TableDdl,
        _position: &tributary_core::MySqlPosition,
    ) -> Result<super::DdlAction, DecodeError> {
        let super::TableDdl::Truncate { table } = ddl else { return Ok(super::DdlAction::Nothing) };
        let known = self.cache.values().filter_map(|(_, s)| s.as_ref()).find(|s| s.id == *table);
        Ok(known.map_or(super::DdlAction::Nothing, |s| super::DdlAction::Truncate(Arc::clone(s))))
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
    /// Matches `schema` with the TABLE_MAP columns ([`check_columns`]): a
    /// TABLE_MAP the schema does not describe is refused, never decoded.
    pub(crate) fn new(schema: Arc<TableSchema>, tme: &TableMapEvent<'_>) -> Result<Self, String> {
        let info = TableMapInfo::parse(tme)?;
        let to_schema = check_columns(&schema, &info)?;
        let mut from_binlog = vec![usize::MAX; schema.columns.len()];
        for (b, s) in to_schema.iter().enumerate() {
            if let Some(s) = s {
                from_binlog[*s] = b;
            }
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

/// Which schema column each TABLE_MAP column fills (`None`: a hidden
/// `!hidden!` column), after checking that `schema` describes the binlog's
/// columns: by name when the TABLE_MAP carries names
/// (`binlog_row_metadata=FULL`: every column once, in any order), else by
/// position with the same count; and each column's binlog type must be one
/// its schema type is logged as ([`column_mismatch`]). `Err` says what differs.
pub(crate) fn check_columns(schema: &TableSchema, info: &TableMapInfo) -> Result<Vec<Option<usize>>, String> {
    let (binlog, ours) = (info.columns.len(), schema.columns.len());
    let to_schema: Vec<Option<usize>> = if info.has_names {
        let mut to_schema = Vec::with_capacity(binlog);
        let mut seen = vec![false; ours];
        for meta in &info.columns {
            let name = meta.name.as_deref().unwrap_or_default();
            match schema.column_index(name) {
                Some(i) if !seen[i] => {
                    seen[i] = true;
                    to_schema.push(Some(i));
                }
                None if name.starts_with(HIDDEN_PREFIX) => to_schema.push(None),
                _ => return Err(format!("binlog column {name} is not in the schema ({})", describe_schema(schema))),
            }
        }
        if let Some(missing) = seen.iter().position(|s| !s) {
            return Err(format!(
                "schema column {} is not among the binlog's columns ({})",
                schema.columns[missing].name,
                describe_binlog(info)
            ));
        }
        to_schema
    } else {
        if binlog != ours {
            return Err(format!(
                "the binlog has {binlog} columns ({}) but the schema has {ours} ({})",
                describe_binlog(info),
                describe_schema(schema)
            ));
        }
        (0..binlog).map(Some).collect()
    };
    for (b, s) in to_schema.iter().enumerate() {
        let Some(s) = s else { continue };
        let column = &schema.columns[*s];
        if let Some(reason) = column_mismatch(column, &info.columns[b]) {
            return Err(format!("column {} ({}): {reason}", column.name, column.source_type));
        }
    }
    Ok(to_schema)
}

/// Why cells of a binlog column described by `meta` cannot be decoded as
/// `column`, if they cannot. They can when the binlog type's values are
/// decoded the same way and fit the column: a narrower integer of the same
/// signedness (INT cells in a BIGINT column), FLOAT in DOUBLE, a DECIMAL with
/// no more integer or fraction digits, any string type of the same kind
/// (text / binary) in another, ENUM / SET with the same labels, BIT(1) as
/// BIT(1). Differences decoding does not depend on (VARCHAR length,
/// fractional seconds) pass; so does what the metadata does not say.
pub(crate) fn column_mismatch(column: &Column, meta: &ColumnMeta) -> Option<String> {
    let ty = meta.binlog_type?;
    let source = column.source_type.trim().to_ascii_lowercase();
    let word = source.split(|c: char| c == '(' || c.is_whitespace()).next().unwrap_or("");
    let schema_class = source_class(word)?;
    let binlog_class = binlog_class(ty)?;
    let logged = || format!("the binlog logs it as {}", binlog_type_name(ty));
    let unsigned = source.split(|c: char| c == ')' || c.is_whitespace()).any(|w| w == "unsigned" || w == "zerofill");
    match (binlog_class, schema_class) {
        (Class::Int(binlog_bits), Class::Int(bits)) => {
            let binlog_unsigned = meta.unsigned.unwrap_or(unsigned);
            if binlog_unsigned != unsigned {
                let sign = if binlog_unsigned { "unsigned" } else { "signed" };
                return Some(format!("the binlog logs it {sign}"));
            }
            if binlog_bits > bits {
                return Some(logged());
            }
        }
        (Class::Float, Class::Float | Class::Double) | (Class::Double, Class::Double) => {}
        (Class::Decimal, Class::Decimal) => {
            if let (ColumnType::Decimal { precision, scale }, [p, s, ..]) =
                (&column.data_type, meta.type_meta.as_slice())
            {
                if p.saturating_sub(*s) > precision.saturating_sub(*scale) || s > scale {
                    return Some(format!("the binlog logs it as decimal({p},{s})"));
                }
            }
        }
        (Class::String, Class::String) => {
            // Binary vs text: known from the charset, unless the schema itself could not tell ("text or blob").
            if let (Some(collation), false) = (meta.collation, source.contains(" or ")) {
                let binary = matches!(word, "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob");
                if (collation == BINARY_COLLATION) != binary {
                    let kind = if collation == BINARY_COLLATION { "binary" } else { "text" };
                    return Some(format!("the binlog logs it as {kind}"));
                }
            }
        }
        (Class::Enum, Class::Enum) | (Class::Set, Class::Set) => {
            if let (Some(labels), Some(ours)) = (&meta.labels, CellPlan::from_column(column).labels) {
                if *labels != ours {
                    let quoted: Vec<String> = labels.iter().map(|l| quote_label(l)).collect();
                    return Some(format!("the binlog lists the values ({})", quoted.join(",")));
                }
            }
        }
        (Class::Bit, Class::Bit) => {
            let m = &meta.type_meta;
            let bits = usize::from(*m.get(1).unwrap_or(&0)) * 8 + usize::from(*m.first().unwrap_or(&0));
            if (bits == 1) != (column.data_type == ColumnType::Bool) {
                return Some(format!("the binlog logs it as bit({bits})"));
            }
        }
        (a, b) if a == b => {}
        _ => return Some(logged()),
    }
    None
}

/// How cells of a type are decoded, for [`column_mismatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Integer of this many bits.
    Int(u8),
    Float,
    Double,
    Decimal,
    Date,
    DateTime,
    Timestamp,
    Time,
    Year,
    /// CHAR, VARCHAR, TEXT, BINARY, VARBINARY, BLOB.
    String,
    Enum,
    Set,
    Json,
    Bit,
    Vector,
    Geometry,
}

/// The class of a schema column from its source type's first word (`None`: unknown, not checked).
fn source_class(word: &str) -> Option<Class> {
    Some(match word {
        "tinyint" => Class::Int(8),
        "smallint" => Class::Int(16),
        "mediumint" => Class::Int(24),
        "int" | "integer" => Class::Int(32),
        "bigint" => Class::Int(64),
        "decimal" | "numeric" | "fixed" => Class::Decimal,
        "float" => Class::Float,
        "double" | "real" => Class::Double,
        "date" => Class::Date,
        "datetime" => Class::DateTime,
        "timestamp" => Class::Timestamp,
        "time" => Class::Time,
        "year" => Class::Year,
        "char" | "binary" | "varchar" | "varbinary" | "tinytext" | "text" | "mediumtext" | "longtext" | "tinyblob"
        | "blob" | "mediumblob" | "longblob" => Class::String,
        "enum" => Class::Enum,
        "set" => Class::Set,
        "json" => Class::Json,
        "bit" => Class::Bit,
        "vector" => Class::Vector,
        w if super::values::is_spatial(w) => Class::Geometry,
        _ => return None,
    })
}

/// The class of a binlog column type (`None`: unknown, not checked).
fn binlog_class(ty: BinlogType) -> Option<Class> {
    use BinlogType as B;
    Some(match ty {
        B::MYSQL_TYPE_TINY => Class::Int(8),
        B::MYSQL_TYPE_SHORT => Class::Int(16),
        B::MYSQL_TYPE_INT24 => Class::Int(24),
        B::MYSQL_TYPE_LONG => Class::Int(32),
        B::MYSQL_TYPE_LONGLONG => Class::Int(64),
        B::MYSQL_TYPE_NEWDECIMAL | B::MYSQL_TYPE_DECIMAL => Class::Decimal,
        B::MYSQL_TYPE_FLOAT => Class::Float,
        B::MYSQL_TYPE_DOUBLE => Class::Double,
        B::MYSQL_TYPE_DATE | B::MYSQL_TYPE_NEWDATE => Class::Date,
        B::MYSQL_TYPE_DATETIME | B::MYSQL_TYPE_DATETIME2 => Class::DateTime,
        B::MYSQL_TYPE_TIMESTAMP | B::MYSQL_TYPE_TIMESTAMP2 => Class::Timestamp,
        B::MYSQL_TYPE_TIME | B::MYSQL_TYPE_TIME2 => Class::Time,
        B::MYSQL_TYPE_YEAR => Class::Year,
        B::MYSQL_TYPE_STRING
        | B::MYSQL_TYPE_VARCHAR
        | B::MYSQL_TYPE_VAR_STRING
        | B::MYSQL_TYPE_BLOB
        | B::MYSQL_TYPE_TINY_BLOB
        | B::MYSQL_TYPE_MEDIUM_BLOB
        | B::MYSQL_TYPE_LONG_BLOB => Class::String,
        B::MYSQL_TYPE_ENUM => Class::Enum,
        B::MYSQL_TYPE_SET => Class::Set,
        B::MYSQL_TYPE_JSON => Class::Json,
        B::MYSQL_TYPE_BIT => Class::Bit,
        B::MYSQL_TYPE_VECTOR => Class::Vector,
        B::MYSQL_TYPE_GEOMETRY => Class::Geometry,
        _ => return None,
    })
}

/// The schema a TABLE_MAP with column names describes, for decoding its rows
/// when the schema loaded for the table does not fit them: the binlog's own
/// columns, each described as `known` describes a column of that name when
/// that description decodes its cells (so source types keep the catalog's
/// spelling, and a wider type the values fit is kept rather than narrowed),
/// else as the TABLE_MAP does. The primary key comes from the
/// metadata, else from `known` by name.
pub(crate) fn schema_from_binlog(tme: &TableMapEvent<'_>, known: Option<&TableSchema>) -> Result<TableSchema, String> {
    let info = TableMapInfo::parse(tme)?;
    if !info.has_names {
        return Err("the TABLE_MAP carries no column names (binlog_row_metadata is not FULL)".into());
    }
    let mut schema = TableMapResolver::schema_of(tme).map_err(|e| e.to_string())?;
    let Some(known) = known else { return Ok(schema) };
    for column in &mut schema.columns {
        let Some(old) = known.column_index(&column.name).map(|i| &known.columns[i]) else { continue };
        let Some(meta) = info.columns.iter().find(|m| m.name.as_deref() == Some(column.name.as_str())) else {
            continue;
        };
        if column_mismatch(old, meta).is_none() {
            *column = Column { nullable: column.nullable, ..old.clone() };
        }
    }
    if schema.primary_key.is_empty() {
        let names: Vec<&str> = known.primary_key.iter().map(|&i| known.columns[i].name.as_str()).collect();
        let key: Option<Vec<usize>> = names.iter().map(|n| schema.column_index(n)).collect();
        schema.primary_key = key.unwrap_or_default();
    }
    Ok(schema)
}

/// `id int, name varchar(50)` for messages.
fn describe_schema(schema: &TableSchema) -> String {
    schema.columns.iter().map(|c| format!("{} {}", c.name, c.source_type)).collect::<Vec<_>>().join(", ")
}

/// The TABLE_MAP's columns as `name type` (or just types without names).
fn describe_binlog(info: &TableMapInfo) -> String {
    info.columns
        .iter()
        .map(|c| {
            let ty = c.binlog_type.map_or("?".to_string(), binlog_type_name);
            match &c.name {
                Some(name) => format!("{name} {ty}"),
                None => ty,
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `varchar` for `MYSQL_TYPE_VARCHAR`.
fn binlog_type_name(ty: BinlogType) -> String {
    format!("{ty:?}").trim_start_matches("MYSQL_TYPE_").to_ascii_lowercase()
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

    fn col(name: &str, data_type: ColumnType, source_type: &str) -> Column {
        Column { name: name.into(), data_type, nullable: true, source_type: source_type.into(), source_id: None }
    }

    fn named(name: &str, m: ColumnMeta) -> ColumnMeta {
        ColumnMeta { name: Some(name.into()), ..m }
    }

    fn info(columns: Vec<ColumnMeta>) -> TableMapInfo {
        let has_names = columns.iter().all(|c| c.name.is_some());
        TableMapInfo { columns, primary_key: vec![], has_names }
    }

    fn table(columns: Vec<Column>) -> TableSchema {
        TableSchema { id: TableId::new("d", "t"), columns, primary_key: vec![0] }
    }

    fn int() -> ColumnMeta {
        ColumnMeta { unsigned: Some(false), ..meta(BinlogType::MYSQL_TYPE_LONG, &[]) }
    }

    fn varchar(collation: u16) -> ColumnMeta {
        ColumnMeta { collation: Some(collation), ..meta(BinlogType::MYSQL_TYPE_VARCHAR, &[200, 0]) }
    }

    #[test]
    fn named_columns_match_by_name_in_any_order_and_every_one_once() {
        let schema = table(vec![col("id", ColumnType::Int32, "int(11)"), col("s", ColumnType::Text, "varchar(50)")]);
        let swapped = info(vec![named("s", varchar(45)), named("id", int())]);
        assert_eq!(check_columns(&schema, &swapped).unwrap(), vec![Some(1), Some(0)]);
        let hidden = info(vec![named("id", int()), named("!hidden!i0", int()), named("s", varchar(45))]);
        assert_eq!(check_columns(&schema, &hidden).unwrap(), vec![Some(0), None, Some(1)]);
        let renamed = info(vec![named("id", int()), named("t", varchar(45))]);
        let err = check_columns(&schema, &renamed).unwrap_err();
        assert!(err.contains("binlog column t is not in the schema (id int(11), s varchar(50))"), "{err}");
        let fewer = info(vec![named("id", int())]);
        assert!(check_columns(&schema, &fewer).unwrap_err().contains("schema column s is not among"));
        let twice = info(vec![named("id", int()), named("id", int())]);
        assert!(check_columns(&schema, &twice).is_err());
    }

    #[test]
    fn unnamed_columns_match_by_position_with_the_same_count() {
        let schema = table(vec![col("id", ColumnType::Int32, "int(11)"), col("s", ColumnType::Text, "varchar(50)")]);
        assert!(check_columns(&schema, &info(vec![int(), varchar(45)])).is_ok());
        let err = check_columns(&schema, &info(vec![int(), varchar(45), int()])).unwrap_err();
        assert!(err.contains("3 columns (long, varchar, long) but the schema has 2"), "{err}");
        let err = check_columns(&schema, &info(vec![int(), int()])).unwrap_err();
        assert!(err.contains("column s (varchar(50)): the binlog logs it as long"), "{err}");
    }

    #[test]
    fn cells_that_fit_the_column_pass_others_do_not() {
        let bigint = col("a", ColumnType::Int64, "bigint(20)");
        assert_eq!(column_mismatch(&bigint, &int()), None, "INT cells fit BIGINT");
        let small = col("a", ColumnType::Int16, "smallint(6)");
        assert!(column_mismatch(&small, &int()).unwrap().contains("long"));
        let unsigned = col("a", ColumnType::Int64, "int(10) unsigned");
        assert!(column_mismatch(&unsigned, &int()).unwrap().contains("signed"));
        let double = col("f", ColumnType::Float64, "double");
        assert_eq!(column_mismatch(&double, &meta(BinlogType::MYSQL_TYPE_FLOAT, &[4])), None);
        let float = col("f", ColumnType::Float32, "float");
        assert!(column_mismatch(&float, &meta(BinlogType::MYSQL_TYPE_DOUBLE, &[8])).is_some());
        let dec = col("d", ColumnType::Decimal { precision: 12, scale: 2 }, "decimal(12,2)");
        assert_eq!(column_mismatch(&dec, &meta(BinlogType::MYSQL_TYPE_NEWDECIMAL, &[10, 2])), None);
        assert!(column_mismatch(&dec, &meta(BinlogType::MYSQL_TYPE_NEWDECIMAL, &[14, 2])).is_some());
        assert!(column_mismatch(&dec, &meta(BinlogType::MYSQL_TYPE_NEWDECIMAL, &[12, 4])).is_some());
        let text = col("s", ColumnType::Text, "text");
        assert_eq!(column_mismatch(&text, &varchar(45)), None, "VARCHAR cells in a TEXT column");
        assert!(column_mismatch(&text, &varchar(63)).unwrap().contains("binary"));
        let blob = col("s", ColumnType::Bytes, "text or blob");
        assert_eq!(column_mismatch(&blob, &varchar(45)), None, "the schema could not tell");
        let e = col("e", ColumnType::Text, "enum('p','q')");
        let labels = |l: &[&str]| ColumnMeta {
            labels: Some(l.iter().map(|s| s.to_string()).collect()),
            ..meta(BinlogType::MYSQL_TYPE_ENUM, &[247, 1])
        };
        assert_eq!(column_mismatch(&e, &labels(&["p", "q"])), None);
        assert!(column_mismatch(&e, &labels(&["p", "q", "r"])).unwrap().contains("'r'"));
        let flag = col("b", ColumnType::Bool, "bit(1)");
        assert!(column_mismatch(&flag, &meta(BinlogType::MYSQL_TYPE_BIT, &[3, 0])).is_some());
        let unknown = col("u", ColumnType::Text, "uuid");
        assert_eq!(column_mismatch(&unknown, &int()), None, "unknown source types are not checked");
    }
}
