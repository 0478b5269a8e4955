//! The Delta table contract in types: how a source [`TableSchema`] becomes a
//! Delta schema (kernel `StructField`s) and the arrow schema of its data and
//! change-data files, plus the metadata columns and table properties Tributary
//! adds.
//!
//! | core type | Delta / Spark type |
//! |---|---|
//! | Bool | boolean |
//! | Int8 / Int16 / Int32 / Int64 | long (all integers 64-bit: widening INT → BIGINT changes nothing in Delta) |
//! | UInt64 | decimal(20,0) |
//! | Float32 / Float64 | float / double |
//! | Decimal{p,s} | decimal(p,s) (p > 38: string, Delta's limit) |
//! | Date | date |
//! | Time{fsp} | string `[-]HH:MM:SS[.f…]` |
//! | Timestamp | timestamp (UTC instant) |
//! | TimestampNtz | timestamp_ntz (needs the `timestampNtz` table feature) |
//! | Text / Json | string |
//! | Bytes | binary |
//! | Array{e} | array<e> |

use deltalake::arrow::datatypes::{DataType as ArrowType, Field, Schema as ArrowSchema, SchemaRef, TimeUnit};
use deltalake::kernel::{ArrayType, DataType, DecimalType, PrimitiveType, StructField};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use tributary_core::{ColumnType, TableSchema};

/// Metadata column: how the row got here: `r` snapshot read, `c` insert,
/// `u` update, `d` delete (`d` only in append-only changelog tables).
pub const OP_COLUMN: &str = "_tributary_op";
/// Metadata column: the source position of the row's transaction (its Display form).
pub const POSITION_COLUMN: &str = "_tributary_source_position";
/// Metadata column: that position as the monotonic i64 of the Delta txn action.
pub const SOURCE_VERSION_COLUMN: &str = "_tributary_source_version";
/// Metadata column: the source commit time (UTC); snapshot rows carry the
/// time the snapshot started (there is no commit time for a copied row).
pub const COMMIT_TS_COLUMN: &str = "_tributary_commit_ts";
/// Metadata column: the change's index within its source transaction (0, 1,
/// 2, ... over all tables of the transaction, so gaps show changes of other
/// tables). With [`SOURCE_VERSION_COLUMN`] it orders every change of a
/// table: several changes of one key in one transaction share the version
/// and differ here. Snapshot rows carry 0; rows written before the column
/// existed read NULL.
pub const CHANGE_SEQ_COLUMN: &str = "_tributary_change_seq";
/// Column of change-data files: insert, update_preimage, update_postimage, delete.
pub const CHANGE_TYPE_COLUMN: &str = "_change_type";

/// Table property naming the source table (`schema.table`).
pub const PROP_SOURCE_TABLE: &str = "tributary.source.table";
/// Table property listing the primary-key columns as a JSON array (`[]` for a changelog table).
pub const PROP_PRIMARY_KEY: &str = "tributary.primaryKey";
/// Table property saying whether the table mirrors rows (`upsert`) or logs changes (`changelog`).
pub const PROP_MODE: &str = "tributary.mode";
/// Table property holding the table's schema with Tributary's column types
/// (JSON of [`TableSchema`]): the schema in force at the committed position,
/// from which decoding resumes after a restart.
pub const PROP_SCHEMA: &str = "tributary.schema";
/// Table property: how many leading columns the source fills (the rest are
/// columns the source dropped, kept with NULLs).
pub const PROP_SOURCE_COLUMNS: &str = "tributary.sourceColumns";

/// Table property listing (JSON array) the columns stored as text whatever
/// their source type (`sink.delta.incompatible_type_changes = "string"`);
/// absent when there are none.
pub const PROP_TEXT_COLUMNS: &str = "tributary.textColumns";

/// The widest decimal Delta (and Spark) can store.
pub const MAX_DECIMAL_PRECISION: u8 = 38;

/// Name of the list element field, as delta-kernel names it.
const LIST_ELEMENT: &str = "element";

/// Everything the writer needs to know about one table's layout.
#[derive(Debug)]
pub(crate) struct TableLayout {
    pub source: Arc<TableSchema>,
    /// Arrow schema of data files: source columns then the five metadata columns.
    pub arrow: SchemaRef,
    /// Arrow schema of change-data files: `arrow` plus `_change_type`.
    pub cdc_arrow: SchemaRef,
    /// Indexes of the primary-key columns, in key order.
    pub pk: Vec<usize>,
    /// How many leading columns the source fills; the others are columns the
    /// source dropped, kept with NULLs (see [`crate::evolve`]).
    pub source_columns: usize,
    /// Per column: stored as text whatever its source type (an incompatible
    /// type change under `incompatible_type_changes = "string"`).
    pub as_text: Vec<bool>,
}

impl TableLayout {
    pub fn new(source: Arc<TableSchema>) -> Self {
        let n = source.columns.len();
        Self::evolved(source, n, &BTreeSet::new())
    }

    /// The layout of a table whose first `source_columns` columns the source
    /// fills and whose `text_columns` are stored as text.
    pub fn evolved(source: Arc<TableSchema>, source_columns: usize, text_columns: &BTreeSet<String>) -> Self {
        let as_text: Vec<bool> = source.columns.iter().map(|c| text_columns.contains(&c.name)).collect();
        let mut fields: Vec<Field> = source
            .columns
            .iter()
            .zip(&as_text)
            .map(|(c, &text)| Field::new(c.name.clone(), arrow_type(stored(&c.data_type, text)), c.nullable))
            .collect();
        fields.extend(metadata_arrow_fields());
        let arrow = Arc::new(ArrowSchema::new(fields.clone()));
        fields.push(Field::new(CHANGE_TYPE_COLUMN, ArrowType::Utf8, true));
        let cdc_arrow = Arc::new(ArrowSchema::new(fields));
        let pk = source.primary_key.clone();
        TableLayout { source, arrow, cdc_arrow, pk, source_columns, as_text }
    }

    /// The names of the columns stored as text.
    pub fn text_columns(&self) -> BTreeSet<String> {
        self.source.columns.iter().zip(&self.as_text).filter(|(_, &t)| t).map(|(c, _)| c.name.clone()).collect()
    }

    /// The type column `index` is stored with: its source type, or `Text`.
    pub fn stored_type(&self, index: usize) -> &ColumnType {
        stored(&self.source.columns[index].data_type, self.as_text[index])
    }

    /// Number of source columns (metadata columns follow them).
    pub fn n_source(&self) -> usize {
        self.source.columns.len()
    }

    pub fn has_pk(&self) -> bool {
        !self.pk.is_empty()
    }

    /// The Delta schema: source columns then metadata columns.
    pub fn delta_fields(&self) -> Vec<StructField> {
        let mut fields: Vec<StructField> = self
            .source
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| StructField::new(c.name.clone(), delta_type(self.stored_type(i)), c.nullable))
            .collect();
        fields.extend(metadata_delta_fields());
        fields
    }

    /// Table properties written at creation (besides `delta.enableChangeDataFeed`).
    pub fn tributary_properties(&self) -> HashMap<String, String> {
        let pk: Vec<&str> = self.pk.iter().map(|&i| self.source.columns[i].name.as_str()).collect();
        let mut props = HashMap::new();
        props.insert(PROP_SOURCE_TABLE.to_string(), self.source.id.to_string());
        props.insert(PROP_PRIMARY_KEY.to_string(), serde_json::to_string(&pk).expect("strings serialize"));
        props.insert(PROP_MODE.to_string(), if self.has_pk() { "upsert" } else { "changelog" }.to_string());
        props.insert(PROP_SCHEMA.to_string(), serde_json::to_string(&*self.source).expect("schemas serialize"));
        props.insert(PROP_SOURCE_COLUMNS.to_string(), self.source_columns.to_string());
        let text_columns = self.text_columns();
        if !text_columns.is_empty() {
            props.insert(
                PROP_TEXT_COLUMNS.to_string(),
                serde_json::to_string(&text_columns).expect("strings serialize"),
            );
        }
        // Readers (and delta-rs, which feeds our in-memory key index) use stats of
        // the first N columns only; make sure every key column is among them.
        if let Some(&last_key) = self.pk.iter().max() {
            if last_key >= 32 {
                props.insert("delta.dataSkippingNumIndexedCols".to_string(), (last_key + 1).to_string());
            }
        }
        props
    }
}

/// `ty`, or `Text` for a column stored as text.
fn stored(ty: &ColumnType, as_text: bool) -> &ColumnType {
    if as_text {
        &ColumnType::Text
    } else {
        ty
    }
}

fn metadata_arrow_fields() -> Vec<Field> {
    vec![
        Field::new(OP_COLUMN, ArrowType::Utf8, true),
        Field::new(POSITION_COLUMN, ArrowType::Utf8, true),
        Field::new(SOURCE_VERSION_COLUMN, ArrowType::Int64, true),
        Field::new(COMMIT_TS_COLUMN, ArrowType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
        Field::new(CHANGE_SEQ_COLUMN, ArrowType::Int64, true),
    ]
}

fn metadata_delta_fields() -> Vec<StructField> {
    vec![
        StructField::nullable(OP_COLUMN, DataType::STRING),
        StructField::nullable(POSITION_COLUMN, DataType::STRING),
        StructField::nullable(SOURCE_VERSION_COLUMN, DataType::LONG),
        StructField::nullable(COMMIT_TS_COLUMN, DataType::TIMESTAMP),
        StructField::nullable(CHANGE_SEQ_COLUMN, DataType::LONG),
    ]
}

/// True when a decimal of this precision is stored as text (Delta allows at most 38 digits).
pub(crate) fn decimal_as_text(precision: u8) -> bool {
    precision > MAX_DECIMAL_PRECISION || precision == 0
}

/// The Delta type of a core column type.
pub fn delta_type(ty: &ColumnType) -> DataType {
    match ty {
        ColumnType::Bool => DataType::BOOLEAN,
        // Every integer is stored 64-bit: INT -> BIGINT at the source then
        // changes nothing in Delta, and Spark 3.5 + Delta 3.x keep reading the
        // change feed across it (they cannot read an INT32 file as BIGINT).
        ColumnType::Int8 | ColumnType::Int16 | ColumnType::Int32 | ColumnType::Int64 => DataType::LONG,
        ColumnType::UInt64 => decimal(20, 0),
        ColumnType::Float32 => DataType::FLOAT,
        ColumnType::Float64 => DataType::DOUBLE,
        ColumnType::Decimal { precision, scale } if !decimal_as_text(*precision) => {
            decimal(*precision, (*scale).min(*precision))
        }
        ColumnType::Decimal { .. } => DataType::STRING,
        ColumnType::Date => DataType::DATE,
        ColumnType::Time { .. } => DataType::STRING,
        ColumnType::Timestamp => DataType::TIMESTAMP,
        ColumnType::TimestampNtz => DataType::TIMESTAMP_NTZ,
        ColumnType::Text | ColumnType::Json => DataType::STRING,
        ColumnType::Bytes => DataType::BINARY,
        ColumnType::Array { element } => DataType::Array(Box::new(ArrayType::new(delta_type(element), true))),
    }
}

fn decimal(precision: u8, scale: u8) -> DataType {
    DataType::Primitive(PrimitiveType::Decimal(
        DecimalType::try_new(precision, scale).expect("precision 1..=38 and scale <= precision"),
    ))
}

/// The arrow type of a core column type, matching what delta-kernel derives
/// from [`delta_type`] (so files read back without casts).
pub fn arrow_type(ty: &ColumnType) -> ArrowType {
    match ty {
        ColumnType::Bool => ArrowType::Boolean,
        ColumnType::Int8 | ColumnType::Int16 | ColumnType::Int32 | ColumnType::Int64 => ArrowType::Int64,
        ColumnType::UInt64 => ArrowType::Decimal128(20, 0),
        ColumnType::Float32 => ArrowType::Float32,
        ColumnType::Float64 => ArrowType::Float64,
        ColumnType::Decimal { precision, scale } if !decimal_as_text(*precision) => {
            ArrowType::Decimal128(*precision, (*scale).min(*precision) as i8)
        }
        ColumnType::Decimal { .. } => ArrowType::Utf8,
        ColumnType::Date => ArrowType::Date32,
        ColumnType::Time { .. } => ArrowType::Utf8,
        ColumnType::Timestamp => ArrowType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        ColumnType::TimestampNtz => ArrowType::Timestamp(TimeUnit::Microsecond, None),
        ColumnType::Text | ColumnType::Json => ArrowType::Utf8,
        ColumnType::Bytes => ArrowType::Binary,
        ColumnType::Array { element } => ArrowType::List(Arc::new(Field::new(LIST_ELEMENT, arrow_type(element), true))),
    }
}

/// Compares the Delta schema on disk with the one the source maps to; returns
/// a description of the first difference.
pub(crate) fn schema_difference(expected: &[StructField], found: &deltalake::kernel::StructType) -> Option<String> {
    let found: Vec<&StructField> = found.fields().collect();
    for (i, want) in expected.iter().enumerate() {
        match found.get(i) {
            None => return Some(format!("column {} is missing", want.name())),
            Some(have) if have.name() != want.name() => {
                return Some(format!("column {} is {} on disk, {} in the source", i + 1, have.name(), want.name()))
            }
            Some(have) if have.data_type() != want.data_type() => {
                let narrow_integer = [DataType::BYTE, DataType::SHORT, DataType::INTEGER].contains(have.data_type())
                    && want.data_type() == &DataType::LONG;
                return Some(format!(
                    "column {} has type {} on disk, {} in the source{}",
                    want.name(),
                    have.data_type(),
                    want.data_type(),
                    if narrow_integer {
                        " (the table was written before Tributary stored every integer as long, docs/types.md)"
                    } else {
                        ""
                    }
                ));
            }
            Some(_) => {}
        }
    }
    if found.len() > expected.len() {
        return Some(format!("column {} exists on disk but not in the source", found[expected.len()].name()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_core::{Column, TableId};

    fn col(name: &str, ty: ColumnType) -> Column {
        Column { name: name.into(), data_type: ty, nullable: true, source_type: String::new(), source_id: None }
    }

    #[test]
    fn every_column_type_maps_to_its_delta_type() {
        let cases = [
            (ColumnType::Bool, "boolean"),
            (ColumnType::Int8, "long"),
            (ColumnType::Int16, "long"),
            (ColumnType::Int32, "long"),
            (ColumnType::Int64, "long"),
            (ColumnType::UInt64, "decimal(20,0)"),
            (ColumnType::Float32, "float"),
            (ColumnType::Float64, "double"),
            (ColumnType::Decimal { precision: 10, scale: 2 }, "decimal(10,2)"),
            (ColumnType::Decimal { precision: 65, scale: 30 }, "string"),
            (ColumnType::Date, "date"),
            (ColumnType::Time { fsp: 3 }, "string"),
            (ColumnType::Timestamp, "timestamp"),
            (ColumnType::TimestampNtz, "timestamp_ntz"),
            (ColumnType::Text, "string"),
            (ColumnType::Bytes, "binary"),
            (ColumnType::Json, "string"),
        ];
        for (ty, want) in cases {
            assert_eq!(delta_type(&ty).to_string(), want, "{ty:?}");
        }
        let arr = delta_type(&ColumnType::Array { element: Box::new(ColumnType::Int32) });
        assert!(matches!(arr, DataType::Array(ref a) if a.element_type() == &DataType::LONG));
    }

    #[test]
    fn layout_appends_metadata_columns_and_records_the_key() {
        let schema = TableSchema {
            id: TableId::new("shop", "orders"),
            columns: vec![col("id", ColumnType::Int64), col("note", ColumnType::Text)],
            primary_key: vec![0],
        };
        let layout = TableLayout::new(Arc::new(schema));
        let names: Vec<_> = layout.arrow.fields().iter().map(|f| f.name().clone()).collect();
        assert_eq!(
            names,
            ["id", "note", OP_COLUMN, POSITION_COLUMN, SOURCE_VERSION_COLUMN, COMMIT_TS_COLUMN, CHANGE_SEQ_COLUMN]
        );
        assert_eq!(layout.cdc_arrow.fields().last().unwrap().name(), CHANGE_TYPE_COLUMN);
        let props = layout.tributary_properties();
        assert_eq!(props[PROP_SOURCE_TABLE], "shop.orders");
        assert_eq!(props[PROP_PRIMARY_KEY], r#"["id"]"#);
        assert_eq!(layout.delta_fields().len(), 7);
    }
}
