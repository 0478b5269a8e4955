//! Rows ↔ arrow: encodes core rows (plus Tributary's metadata columns) into
//! record batches column by column, decodes stored rows back into core values,
//! and renders values as JSON for the readers.
//!
//! The hot path is [`encode`]: one pass per column over borrowed rows, typed
//! arrow builders, no allocation per cell beyond what a string copy needs.

use crate::schema::{arrow_type, decimal_as_text, TableLayout};
use deltalake::arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, BooleanBufferBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    Float32Builder, Float64Builder, Int64Builder, ListArray, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use deltalake::arrow::buffer::{NullBuffer, OffsetBuffer};
use deltalake::arrow::datatypes::{DataType as ArrowType, SchemaRef};
use deltalake::arrow::error::ArrowError;
use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::Arc;
use tributary_core::{ColumnType, Row, Value};

/// What the `_tributary_op` column says about a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `r`: copied by the snapshot.
    Snapshot,
    /// `c`: inserted.
    Insert,
    /// `u`: updated.
    Update,
    /// `d`: deleted (append-only changelog tables only).
    Delete,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Snapshot => "r",
            Op::Insert => "c",
            Op::Update => "u",
            Op::Delete => "d",
        }
    }

    pub fn parse(s: &str) -> Option<Op> {
        match s {
            "r" => Some(Op::Snapshot),
            "c" => Some(Op::Insert),
            "u" => Some(Op::Update),
            "d" => Some(Op::Delete),
            _ => None,
        }
    }
}

/// The metadata columns of one row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RowMeta {
    pub op: Option<Op>,
    pub position: Option<Arc<str>>,
    pub source_version: Option<i64>,
    /// Microseconds since the epoch, UTC.
    pub commit_ts: Option<i64>,
    /// The change's index within its source transaction.
    pub change_seq: Option<i64>,
}

/// A row to write: source values (borrowed from the batch when unchanged) and metadata.
#[derive(Debug, Clone)]
pub(crate) struct OutRow<'a> {
    pub values: Cow<'a, [Value]>,
    pub meta: RowMeta,
}

/// A value that does not fit its column.
#[derive(Debug)]
pub(crate) struct EncodeError {
    pub column: String,
    pub problem: String,
}

/// Encodes rows into a batch of `layout.arrow` (or `layout.cdc_arrow` when
/// `change_types` is given, one per row).
pub(crate) fn encode(
    layout: &TableLayout,
    rows: &[&OutRow<'_>],
    change_types: Option<&[&'static str]>,
) -> Result<RecordBatch, EncodeError> {
    let schema = if change_types.is_some() { &layout.cdc_arrow } else { &layout.arrow };
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    let mut cells: Vec<&Value> = Vec::with_capacity(rows.len());
    for (i, column) in layout.source.columns.iter().enumerate() {
        cells.clear();
        cells.extend(rows.iter().map(|r| r.values.get(i).unwrap_or(&Value::Null)));
        let array = if layout.as_text[i] {
            let texts: Vec<Value> = cells.iter().map(|v| text_form(&column.data_type, v)).collect();
            encode_column(&ColumnType::Text, &texts.iter().collect::<Vec<_>>())
        } else {
            encode_column(&column.data_type, &cells)
        }
        .map_err(|problem| EncodeError { column: column.name.clone(), problem })?;
        if !column.nullable && array.null_count() > 0 {
            return Err(EncodeError {
                column: column.name.clone(),
                problem: "NULL (or an unresolvable unchanged TOAST value) in a NOT NULL column".into(),
            });
        }
        columns.push(array);
    }
    let n = rows.len();
    let mut op = StringBuilder::with_capacity(n, n);
    let mut position = StringBuilder::with_capacity(n, n * 24);
    let mut version = Int64Builder::with_capacity(n);
    let mut commit_ts = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut change_seq = Int64Builder::with_capacity(n);
    for r in rows {
        op.append_option(r.meta.op.map(Op::as_str));
        position.append_option(r.meta.position.as_deref());
        version.append_option(r.meta.source_version);
        commit_ts.append_option(r.meta.commit_ts);
        change_seq.append_option(r.meta.change_seq);
    }
    columns.push(Arc::new(op.finish()));
    columns.push(Arc::new(position.finish()));
    columns.push(Arc::new(version.finish()));
    columns.push(Arc::new(commit_ts.finish()));
    columns.push(Arc::new(change_seq.finish()));
    if let Some(types) = change_types {
        let mut b = StringBuilder::with_capacity(n, n * 16);
        for t in types {
            b.append_value(t);
        }
        columns.push(Arc::new(b.finish()));
    }
    RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| EncodeError { column: "(record batch)".into(), problem: e.to_string() })
}

fn mismatch(ty: &ColumnType, v: &Value) -> String {
    format!("value {} does not fit column type {ty:?}", short(v))
}

fn short(v: &Value) -> String {
    let s = format!("{v:?}");
    if s.len() > 60 {
        let mut end = 60;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    } else {
        s
    }
}

fn int_in<T: TryFrom<i64>>(ty: &ColumnType, v: &Value) -> Result<T, String> {
    let i = match v {
        Value::Int(i) => *i,
        Value::UInt(u) => i64::try_from(*u).map_err(|_| mismatch(ty, v))?,
        Value::Bool(b) => *b as i64,
        _ => return Err(mismatch(ty, v)),
    };
    T::try_from(i).map_err(|_| format!("value {i} is out of range for column type {ty:?}"))
}

/// Encodes one column (any nesting) from its cells.
pub(crate) fn encode_column(ty: &ColumnType, cells: &[&Value]) -> Result<ArrayRef, String> {
    let n = cells.len();
    macro_rules! ints {
        // Range-checked against the source type, stored 64-bit (schema::delta_type).
        ($native:ty) => {{
            let mut b = Int64Builder::with_capacity(n);
            for v in cells {
                match v {
                    Value::Null | Value::Unchanged => b.append_null(),
                    v => b.append_value(i64::from(int_in::<$native>(ty, v)?)),
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    let array: ArrayRef = match ty {
        ColumnType::Bool => {
            let mut b = BooleanBuilder::with_capacity(n);
            for v in cells {
                match v {
                    Value::Null | Value::Unchanged => b.append_null(),
                    Value::Bool(x) => b.append_value(*x),
                    Value::Int(i) => b.append_value(*i != 0),
                    v => return Err(mismatch(ty, v)),
                }
            }
            Arc::new(b.finish())
        }
        ColumnType::Int8 => ints!(i8),
        ColumnType::Int16 => ints!(i16),
        ColumnType::Int32 => ints!(i32),
        ColumnType::Int64 => ints!(i64),
        ColumnType::UInt64 => {
            let mut b =
                Decimal128Builder::with_capacity(n).with_precision_and_scale(20, 0).map_err(|e| e.to_string())?;
            for v in cells {
                match v {
                    Value::Null | Value::Unchanged => b.append_null(),
                    Value::UInt(u) => b.append_value(*u as i128),
                    Value::Int(i) if *i >= 0 => b.append_value(*i as i128),
                    Value::Decimal { unscaled, scale: 0 } if (0..=u64::MAX as i128).contains(unscaled) => {
                        b.append_value(*unscaled)
                    }
                    v => return Err(mismatch(ty, v)),
                }
            }
            Arc::new(b.finish())
        }
        ColumnType::Float32 => {
            let mut b = Float32Builder::with_capacity(n);
            for v in cells {
                match v {
                    Value::Null | Value::Unchanged => b.append_null(),
                    Value::Float(f) => b.append_value(*f),
                    Value::Double(f) => b.append_value(*f as f32),
                    Value::Int(i) => b.append_value(*i as f32),
                    v => return Err(mismatch(ty, v)),
                }
            }
            Arc::new(b.finish())
        }
        ColumnType::Float64 => {
            let mut b = Float64Builder::with_capacity(n);
            for v in cells {
                match v {
                    Value::Null | Value::Unchanged => b.append_null(),
                    Value::Double(f) => b.append_value(*f),
                    Value::Float(f) => b.append_value(*f as f64),
                    Value::Int(i) => b.append_value(*i as f64),
                    v => return Err(mismatch(ty, v)),
                }
            }
            Arc::new(b.finish())
        }
        ColumnType::Decimal { precision, scale } if !decimal_as_text(*precision) => {
            let scale = (*scale).min(*precision);
            let limit = 10i128.pow(*precision as u32);
            let mut b = Decimal128Builder::with_capacity(n)
                .with_precision_and_scale(*precision, scale as i8)
                .map_err(|e| e.to_string())?;
            for v in cells {
                let unscaled = match v {
                    Value::Null | Value::Unchanged => {
                        b.append_null();
                        continue;
                    }
                    Value::Decimal { unscaled, scale: from } => rescale(*unscaled, *from, scale),
                    Value::Int(i) => rescale(*i as i128, 0, scale),
                    Value::UInt(u) => rescale(*u as i128, 0, scale),
                    Value::Text(t) => parse_decimal(t, scale),
                    v => return Err(mismatch(ty, v)),
                };
                match unscaled {
                    Some(u) if -limit < u && u < limit => b.append_value(u),
                    _ => return Err(format!("value {} does not fit decimal({precision},{scale})", short(v))),
                }
            }
            Arc::new(b.finish())
        }
        ColumnType::Decimal { .. } => strings(cells, |v, out| match v {
            Value::Decimal { unscaled, scale } => {
                write_decimal(out, *unscaled, *scale);
                Ok(())
            }
            Value::Int(i) => write!(out, "{i}").map_err(|e| e.to_string()),
            Value::UInt(u) => write!(out, "{u}").map_err(|e| e.to_string()),
            Value::Text(t) => out.write_str(t).map_err(|e| e.to_string()),
            v => Err(mismatch(ty, v)),
        })?,
        ColumnType::Date => {
            let mut b = Date32Builder::with_capacity(n);
            for v in cells {
                match v {
                    Value::Null | Value::Unchanged => b.append_null(),
                    Value::Date(d) => b.append_value(*d),
                    v => return Err(mismatch(ty, v)),
                }
            }
            Arc::new(b.finish())
        }
        ColumnType::Time { fsp } => strings(cells, |v, out| match v {
            Value::Time(us) => {
                write_time(out, *us, *fsp);
                Ok(())
            }
            Value::Text(t) => out.write_str(t).map_err(|e| e.to_string()),
            v => Err(mismatch(ty, v)),
        })?,
        ColumnType::Timestamp | ColumnType::TimestampNtz => {
            let mut b = TimestampMicrosecondBuilder::with_capacity(n);
            if matches!(ty, ColumnType::Timestamp) {
                b = b.with_timezone("UTC");
            }
            for v in cells {
                match v {
                    Value::Null | Value::Unchanged => b.append_null(),
                    Value::Timestamp(us) | Value::TimestampNtz(us) => b.append_value(*us),
                    v => return Err(mismatch(ty, v)),
                }
            }
            Arc::new(b.finish())
        }
        ColumnType::Text | ColumnType::Json => {
            let bytes: usize =
                cells.iter().map(|v| if let Value::Text(s) | Value::Json(s) = v { s.len() } else { 0 }).sum();
            let mut b = StringBuilder::with_capacity(n, bytes);
            for v in cells {
                match v {
                    Value::Null | Value::Unchanged => b.append_null(),
                    Value::Text(s) | Value::Json(s) => b.append_value(s),
                    Value::Bytes(bytes) => b.append_value(String::from_utf8_lossy(bytes)),
                    v => return Err(mismatch(ty, v)),
                }
            }
            Arc::new(b.finish())
        }
        ColumnType::Bytes => {
            let bytes: usize = cells.iter().map(|v| if let Value::Bytes(b) = v { b.len() } else { 0 }).sum();
            let mut b = BinaryBuilder::with_capacity(n, bytes);
            for v in cells {
                match v {
                    Value::Null | Value::Unchanged => b.append_null(),
                    Value::Bytes(x) => b.append_value(x),
                    Value::Text(s) => b.append_value(s.as_bytes()),
                    v => return Err(mismatch(ty, v)),
                }
            }
            Arc::new(b.finish())
        }
        ColumnType::Array { element } => {
            let mut offsets: Vec<i32> = Vec::with_capacity(n + 1);
            offsets.push(0);
            let mut validity = BooleanBufferBuilder::new(n);
            let mut children: Vec<&Value> = Vec::new();
            for v in cells {
                match v {
                    Value::Null | Value::Unchanged => validity.append(false),
                    Value::Array(items) => {
                        children.extend(items.iter());
                        validity.append(true);
                    }
                    v => return Err(mismatch(ty, v)),
                }
                let len =
                    i32::try_from(children.len()).map_err(|_| "array column exceeds 2^31 elements".to_string())?;
                offsets.push(len);
            }
            let child = encode_column(element, &children)?;
            let field = match arrow_type(ty) {
                ArrowType::List(f) => f,
                _ => unreachable!("arrays map to lists"),
            };
            Arc::new(
                ListArray::try_new(
                    field,
                    OffsetBuffer::new(offsets.into()),
                    child,
                    Some(NullBuffer::new(validity.finish())),
                )
                .map_err(|e| e.to_string())?,
            )
        }
    };
    Ok(array)
}

/// A string column whose cells are rendered by `render` straight into the builder.
fn strings(
    cells: &[&Value],
    mut render: impl FnMut(&Value, &mut StringBuilder) -> Result<(), String>,
) -> Result<ArrayRef, String> {
    let mut b = StringBuilder::with_capacity(cells.len(), cells.len() * 16);
    for v in cells {
        match v {
            Value::Null | Value::Unchanged => b.append_null(),
            v => {
                render(v, &mut b)?;
                b.append_value("");
            }
        }
    }
    Ok(Arc::new(b.finish()))
}

/// `unscaled * 10^-from` as an unscaled value at scale `to`; `None` when it
/// overflows or would lose digits.
pub(crate) fn rescale(unscaled: i128, from: u8, to: u8) -> Option<i128> {
    if to >= from {
        10i128.checked_pow((to - from) as u32).and_then(|f| unscaled.checked_mul(f))
    } else {
        let f = 10i128.checked_pow((from - to) as u32)?;
        (unscaled % f == 0).then(|| unscaled / f)
    }
}

fn parse_decimal(text: &str, scale: u8) -> Option<i128> {
    let t = text.trim();
    let (neg, t) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if int.is_empty() && frac.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = format!("{int}{frac}");
    let v: i128 = if digits.is_empty() { 0 } else { digits.parse().ok()? };
    let v = rescale(v, u8::try_from(frac.len()).ok()?, scale)?;
    Some(if neg { -v } else { v })
}

fn write_decimal(out: &mut impl std::fmt::Write, unscaled: i128, scale: u8) {
    let digits = unscaled.unsigned_abs().to_string();
    let sign = if unscaled < 0 { "-" } else { "" };
    let scale = scale as usize;
    let _ = if scale == 0 {
        write!(out, "{sign}{digits}")
    } else if digits.len() > scale {
        let (int, frac) = digits.split_at(digits.len() - scale);
        write!(out, "{sign}{int}.{frac}")
    } else {
        write!(out, "{sign}0.{}{digits}", "0".repeat(scale - digits.len()))
    };
}

/// A decimal as exact text (`-12.30`).
pub(crate) fn decimal_text(unscaled: i128, scale: u8) -> String {
    let mut s = String::new();
    write_decimal(&mut s, unscaled, scale);
    s
}

fn write_time(out: &mut impl std::fmt::Write, micros: i64, fsp: u8) {
    let sign = if micros < 0 { "-" } else { "" };
    let us = micros.unsigned_abs();
    let secs = us / 1_000_000;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let _ = write!(out, "{sign}{h:02}:{m:02}:{s:02}");
    let fsp = fsp.min(6) as usize;
    if fsp > 0 {
        let frac = format!("{:06}", us % 1_000_000);
        let _ = write!(out, ".{}", &frac[..fsp]);
    }
}

/// A TIME value as text `[-]HH:MM:SS[.f…]` with `fsp` fractional digits.
pub(crate) fn time_text(micros: i64, fsp: u8) -> String {
    let mut s = String::new();
    write_time(&mut s, micros, fsp);
    s
}

/// Lower-case hex of bytes.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// (year, month, day) of a day count since 1970-01-01 (proleptic Gregorian).
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `YYYY-MM-DD`.
pub(crate) fn date_text(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM-DDTHH:MM:SS.ffffff` (UTC wall clock of microseconds since the epoch).
pub(crate) fn timestamp_text(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, mo, d) = civil_from_days(days);
    format!("{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{frac:06}", sod / 3600, sod / 60 % 60, sod % 60)
}

/// Decodes one cell of any supported arrow type into a core value.
pub(crate) fn decode_cell(array: &dyn Array, row: usize) -> Result<Value, String> {
    use deltalake::arrow::datatypes::*;
    if array.is_null(row) {
        return Ok(Value::Null);
    }
    Ok(match array.data_type() {
        ArrowType::Boolean => Value::Bool(array.as_boolean().value(row)),
        ArrowType::Int8 => Value::Int(array.as_primitive::<Int8Type>().value(row) as i64),
        ArrowType::Int16 => Value::Int(array.as_primitive::<Int16Type>().value(row) as i64),
        ArrowType::Int32 => Value::Int(array.as_primitive::<Int32Type>().value(row) as i64),
        ArrowType::Int64 => Value::Int(array.as_primitive::<Int64Type>().value(row)),
        ArrowType::UInt8 => Value::Int(array.as_primitive::<UInt8Type>().value(row) as i64),
        ArrowType::UInt16 => Value::Int(array.as_primitive::<UInt16Type>().value(row) as i64),
        ArrowType::UInt32 => Value::Int(array.as_primitive::<UInt32Type>().value(row) as i64),
        ArrowType::UInt64 => Value::UInt(array.as_primitive::<UInt64Type>().value(row)),
        ArrowType::Float32 => Value::Float(array.as_primitive::<Float32Type>().value(row)),
        ArrowType::Float64 => Value::Double(array.as_primitive::<Float64Type>().value(row)),
        ArrowType::Decimal128(_, s) => Value::Decimal {
            unscaled: array.as_primitive::<Decimal128Type>().value(row),
            scale: u8::try_from(*s).map_err(|_| format!("negative decimal scale {s}"))?,
        },
        ArrowType::Date32 => Value::Date(array.as_primitive::<Date32Type>().value(row)),
        ArrowType::Timestamp(unit, tz) => {
            let raw = match unit {
                TimeUnit::Second => array.as_primitive::<TimestampSecondType>().value(row).saturating_mul(1_000_000),
                TimeUnit::Millisecond => {
                    array.as_primitive::<TimestampMillisecondType>().value(row).saturating_mul(1000)
                }
                TimeUnit::Microsecond => array.as_primitive::<TimestampMicrosecondType>().value(row),
                TimeUnit::Nanosecond => array.as_primitive::<TimestampNanosecondType>().value(row).div_euclid(1000),
            };
            if tz.is_some() {
                Value::Timestamp(raw)
            } else {
                Value::TimestampNtz(raw)
            }
        }
        ArrowType::Utf8 => Value::Text(array.as_string::<i32>().value(row).to_string()),
        ArrowType::LargeUtf8 => Value::Text(array.as_string::<i64>().value(row).to_string()),
        ArrowType::Utf8View => Value::Text(array.as_string_view().value(row).to_string()),
        ArrowType::Binary => Value::Bytes(array.as_binary::<i32>().value(row).to_vec()),
        ArrowType::LargeBinary => Value::Bytes(array.as_binary::<i64>().value(row).to_vec()),
        ArrowType::FixedSizeBinary(_) => Value::Bytes(array.as_fixed_size_binary().value(row).to_vec()),
        ArrowType::List(_) => {
            let items = array.as_list::<i32>().value(row);
            Value::Array((0..items.len()).map(|i| decode_cell(items.as_ref(), i)).collect::<Result<_, _>>()?)
        }
        ArrowType::LargeList(_) => {
            let items = array.as_list::<i64>().value(row);
            Value::Array((0..items.len()).map(|i| decode_cell(items.as_ref(), i)).collect::<Result<_, _>>()?)
        }
        other => return Err(format!("unsupported arrow type {other}")),
    })
}

/// Decodes the given rows of a batch conformed to `layout.arrow` into source
/// values and metadata.
pub(crate) fn decode_rows(
    layout: &TableLayout,
    batch: &RecordBatch,
    rows: &[usize],
) -> Result<Vec<(Row, RowMeta)>, EncodeError> {
    let n_source = layout.n_source();
    let fail = |column: &str, problem: String| EncodeError { column: column.to_string(), problem };
    let metas = decode_metas(batch, n_source, rows)?;
    let mut out = Vec::with_capacity(rows.len());
    for (&r, meta) in rows.iter().zip(metas) {
        let mut values = Vec::with_capacity(n_source);
        for (c, column) in layout.source.columns.iter().enumerate() {
            values.push(decode_cell(batch.column(c).as_ref(), r).map_err(|e| fail(&column.name, e))?);
        }
        out.push((values, meta));
    }
    Ok(out)
}

/// The metadata columns (`_tributary_op` … `_tributary_change_seq`, from
/// column `first` of `batch` on) of the given rows.
pub(crate) fn decode_metas(batch: &RecordBatch, first: usize, rows: &[usize]) -> Result<Vec<RowMeta>, EncodeError> {
    let fail = |column: &str, problem: String| EncodeError { column: column.to_string(), problem };
    let op = batch.column(first).as_string::<i32>();
    let position = batch.column(first + 1).as_string::<i32>();
    let version = batch.column(first + 2).as_primitive::<deltalake::arrow::datatypes::Int64Type>();
    let commit_ts = batch.column(first + 3).as_primitive::<deltalake::arrow::datatypes::TimestampMicrosecondType>();
    let change_seq = batch.column(first + 4).as_primitive::<deltalake::arrow::datatypes::Int64Type>();
    rows.iter()
        .map(|&r| {
            let op = if op.is_null(r) {
                None
            } else {
                let parsed = Op::parse(op.value(r));
                Some(parsed.ok_or_else(|| fail("_tributary_op", format!("unknown op {:?}", op.value(r))))?)
            };
            Ok(RowMeta {
                op,
                position: position.is_valid(r).then(|| Arc::from(position.value(r))),
                source_version: version.is_valid(r).then(|| version.value(r)),
                commit_ts: commit_ts.is_valid(r).then(|| commit_ts.value(r)),
                change_seq: change_seq.is_valid(r).then(|| change_seq.value(r)),
            })
        })
        .collect()
}

/// The value a column stored as text holds for `value` of source type `ty`:
/// its text form (numbers as written, decimals exact, dates `YYYY-MM-DD`,
/// timestamps ISO-8601, bytes hex, arrays as JSON); NULL stays NULL.
pub(crate) fn text_form(ty: &ColumnType, value: &Value) -> Value {
    match (ty, value) {
        (_, Value::Null | Value::Unchanged | Value::Text(_)) => value.clone(),
        (ColumnType::Time { fsp }, Value::Time(us)) => Value::Text(time_text(*us, *fsp)),
        (_, Value::Json(s)) => Value::Text(s.clone()),
        (_, v) => Value::Text(match value_to_json(v) {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        }),
    }
}

/// A column of any type as text (the [`text_form`] of every cell): how a
/// data file's column is rewritten when it starts to be stored as text.
fn text_array(array: &dyn Array) -> Result<ArrayRef, ArrowError> {
    let mut b = StringBuilder::with_capacity(array.len(), array.len() * 8);
    for row in 0..array.len() {
        match decode_cell(array, row).map_err(ArrowError::CastError)? {
            Value::Null => b.append_null(),
            value => match text_form(&ColumnType::Text, &value) {
                Value::Text(s) => b.append_value(s),
                _ => b.append_null(),
            },
        }
    }
    Ok(Arc::new(b.finish()))
}

/// Reshapes a batch read from any data file of the table to `target`: columns
/// by name, cast where the physical type differs (e.g. INT96 timestamps written
/// by Spark), NULL where a column is missing; a column that is not text where
/// the target wants text gets its values' text forms.
pub(crate) fn conform(batch: &RecordBatch, target: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    if batch.schema().fields() == target.fields() {
        return RecordBatch::try_new(target.clone(), batch.columns().to_vec());
    }
    let is_text = |t: &ArrowType| matches!(t, ArrowType::Utf8 | ArrowType::LargeUtf8 | ArrowType::Utf8View);
    let columns = target
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => Ok(c.clone()),
            Some(c) if is_text(f.data_type()) && !is_text(c.data_type()) => text_array(c.as_ref()),
            Some(c) => deltalake::arrow::compute::cast(c.as_ref(), f.data_type()),
            None => Ok(deltalake::arrow::array::new_null_array(f.data_type(), batch.num_rows())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(target.clone(), columns)
}

/// A core value as JSON: numbers as numbers, decimals as exact strings,
/// dates `YYYY-MM-DD`, timestamps ISO-8601 (`Z` for UTC instants), bytes hex.
pub fn value_to_json(value: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        Value::Null | Value::Unchanged => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::UInt(u) => J::from(*u),
        Value::Float(f) => float_json(*f as f64),
        Value::Double(f) => float_json(*f),
        Value::Decimal { unscaled, scale } => J::String(decimal_text(*unscaled, *scale)),
        Value::Date(d) => J::String(date_text(*d as i64)),
        Value::Time(us) => J::String(time_text(*us, 6)),
        Value::Timestamp(us) => J::String(format!("{}Z", timestamp_text(*us))),
        Value::TimestampNtz(us) => J::String(timestamp_text(*us)),
        Value::Text(s) | Value::Json(s) => J::String(s.clone()),
        Value::Bytes(b) => J::String(hex(b)),
        Value::Array(items) => J::Array(items.iter().map(value_to_json).collect()),
    }
}

fn float_json(f: f64) -> serde_json::Value {
    serde_json::Number::from_f64(f).map(serde_json::Value::Number).unwrap_or_else(|| {
        serde_json::Value::String(if f.is_nan() {
            "NaN".into()
        } else if f > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        })
    })
}

/// Every row of a batch as a JSON object (column name → [`value_to_json`]).
pub(crate) fn batch_to_json(batch: &RecordBatch) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, String> {
    let schema = batch.schema();
    let mut out = Vec::with_capacity(batch.num_rows());
    for r in 0..batch.num_rows() {
        let mut obj = serde_json::Map::with_capacity(schema.fields().len());
        for (c, field) in schema.fields().iter().enumerate() {
            let v = decode_cell(batch.column(c).as_ref(), r).map_err(|e| format!("column {}: {e}", field.name()))?;
            obj.insert(field.name().clone(), value_to_json(&v));
        }
        out.push(obj);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_render_exactly() {
        assert_eq!(decimal_text(12345, 2), "123.45");
        assert_eq!(decimal_text(-5, 3), "-0.005");
        assert_eq!(decimal_text(7, 0), "7");
        assert_eq!(rescale(15, 1, 2), Some(150));
        assert_eq!(rescale(155, 2, 1), None);
        assert_eq!(parse_decimal("-1.5", 2), Some(-150));
    }

    #[test]
    fn times_and_dates_render_as_text() {
        assert_eq!(time_text(-(838 * 3600 + 59 * 60 + 59) * 1_000_000, 0), "-838:59:59");
        assert_eq!(time_text(3_723_450_000, 3), "01:02:03.450");
        assert_eq!(date_text(0), "1970-01-01");
        assert_eq!(date_text(19_723), "2024-01-01");
        assert_eq!(date_text(-1), "1969-12-31");
        assert_eq!(timestamp_text(1_704_067_200_000_001), "2024-01-01T00:00:00.000001");
        assert_eq!(timestamp_text(-1), "1969-12-31T23:59:59.999999");
    }
}
