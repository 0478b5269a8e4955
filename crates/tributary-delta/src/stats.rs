//! Per-file statistics in Delta's JSON form (`numRecords`, `minValues`,
//! `maxValues`, `nullCount`) so every reader can skip files, and the exact
//! primary-key bounds the writer keeps in memory to find the files an update
//! can touch.
//!
//! Bounds in the JSON are conservative the way Spark writes them: strings
//! longer than 32 characters are cut (the max gets a U+10FFFF tie-breaker),
//! timestamps are rounded to milliseconds outwards (min down, max up).

use crate::encode::{date_text, decimal_text, timestamp_text};
use crate::key::{KeyBounds, KeyPart};
use crate::schema::TableLayout;
use deltalake::arrow::array::{Array, AsArray, RecordBatch};
use deltalake::arrow::compute;
use deltalake::arrow::datatypes::*;
use std::fmt::Write as _;

/// 0001-01-01 and 9999-12-31 as days since the epoch, and microseconds per day.
const MIN_DAY: i64 = -719_162;
const MAX_DAY: i64 = 2_932_896;
const DAY_MICROS: i64 = 86_400_000_000;

/// Longest string prefix kept in JSON statistics (as Spark does).
const STRING_PREFIX: usize = 32;

#[derive(Debug, Clone, Copy)]
enum IntKind {
    Number,
    Date,
    Timestamp { utc: bool },
}

#[derive(Debug, Clone)]
enum Acc {
    /// No min/max for this column (boolean, binary, arrays).
    NoBounds,
    Int {
        kind: IntKind,
        min: Option<i64>,
        max: Option<i64>,
    },
    Dec {
        scale: i8,
        min: Option<i128>,
        max: Option<i128>,
    },
    Float {
        min: Option<f64>,
        max: Option<f64>,
        unbounded: bool,
    },
    Str {
        min: Option<String>,
        max: Option<String>,
    },
}

#[derive(Debug, Clone)]
struct ColumnStats {
    name: String,
    nulls: i64,
    acc: Acc,
}

/// What one data file holds, summarised.
#[derive(Debug, Clone)]
pub(crate) struct FileStats {
    pub num_records: i64,
    /// The `stats` field of the file's Add action.
    pub json: String,
    /// Exact bounds of the primary-key columns.
    pub key_bounds: KeyBounds,
}

/// Accumulates statistics over the batches of one file.
#[derive(Debug, Clone)]
pub(crate) struct StatsBuilder {
    rows: i64,
    columns: Vec<ColumnStats>,
    pk: Vec<usize>,
}

impl StatsBuilder {
    /// For files of `layout.arrow` (data files).
    pub fn new(layout: &TableLayout) -> Self {
        let columns = layout
            .arrow
            .fields()
            .iter()
            .map(|f| ColumnStats { name: f.name().clone(), nulls: 0, acc: acc_for(f.data_type()) })
            .collect();
        StatsBuilder { rows: 0, columns, pk: layout.pk.clone() }
    }

    pub fn rows(&self) -> i64 {
        self.rows
    }

    /// Adds a batch with the schema the builder was made for.
    pub fn update(&mut self, batch: &RecordBatch) {
        self.rows += batch.num_rows() as i64;
        for (col, array) in self.columns.iter_mut().zip(batch.columns()) {
            col.nulls += array.null_count() as i64;
            update_acc(&mut col.acc, array.as_ref());
        }
    }

    pub fn finish(&self) -> FileStats {
        let mut json = String::with_capacity(64 + self.columns.len() * 48);
        let _ = write!(json, "{{\"numRecords\":{}", self.rows);
        let section = |json: &mut String, title: &str, pick: &dyn Fn(&ColumnStats) -> Option<String>| {
            let entries: Vec<String> =
                self.columns.iter().filter_map(|c| pick(c).map(|v| format!("{}:{v}", json_string(&c.name)))).collect();
            if !entries.is_empty() {
                let _ = write!(json, ",\"{title}\":{{{}}}", entries.join(","));
            }
        };
        section(&mut json, "minValues", &|c| render(&c.acc, false));
        section(&mut json, "maxValues", &|c| render(&c.acc, true));
        section(&mut json, "nullCount", &|c| Some(c.nulls.to_string()));
        json.push('}');
        let mut key_bounds = KeyBounds::unknown(self.pk.len());
        for (i, &c) in self.pk.iter().enumerate() {
            let (lo, hi) = key_range(&self.columns[c].acc);
            key_bounds.min[i] = lo;
            key_bounds.max[i] = hi;
        }
        FileStats { num_records: self.rows, json, key_bounds }
    }
}

fn acc_for(ty: &DataType) -> Acc {
    match ty {
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
            Acc::Int { kind: IntKind::Number, min: None, max: None }
        }
        DataType::Date32 => Acc::Int { kind: IntKind::Date, min: None, max: None },
        DataType::Timestamp(TimeUnit::Microsecond, tz) => {
            Acc::Int { kind: IntKind::Timestamp { utc: tz.is_some() }, min: None, max: None }
        }
        DataType::Decimal128(_, s) => Acc::Dec { scale: *s, min: None, max: None },
        DataType::Float32 | DataType::Float64 => Acc::Float { min: None, max: None, unbounded: false },
        DataType::Utf8 => Acc::Str { min: None, max: None },
        _ => Acc::NoBounds,
    }
}

fn merge<T: PartialOrd + Copy>(slot_min: &mut Option<T>, slot_max: &mut Option<T>, lo: Option<T>, hi: Option<T>) {
    if let Some(lo) = lo {
        if slot_min.is_none_or(|m| lo < m) {
            *slot_min = Some(lo);
        }
    }
    if let Some(hi) = hi {
        if slot_max.is_none_or(|m| hi > m) {
            *slot_max = Some(hi);
        }
    }
}

fn update_acc(acc: &mut Acc, array: &dyn Array) {
    match acc {
        Acc::NoBounds => {}
        Acc::Int { min, max, .. } => {
            let (lo, hi) = match array.data_type() {
                DataType::Int8 => minmax(array.as_primitive::<Int8Type>()),
                DataType::Int16 => minmax(array.as_primitive::<Int16Type>()),
                DataType::Int32 => minmax(array.as_primitive::<Int32Type>()),
                DataType::Int64 => minmax(array.as_primitive::<Int64Type>()),
                DataType::Date32 => minmax(array.as_primitive::<Date32Type>()),
                DataType::Timestamp(TimeUnit::Microsecond, _) => {
                    minmax(array.as_primitive::<TimestampMicrosecondType>())
                }
                _ => (None, None),
            };
            merge(min, max, lo, hi);
        }
        Acc::Dec { min, max, .. } => {
            let a = array.as_primitive::<Decimal128Type>();
            merge(min, max, compute::min(a), compute::max(a));
        }
        Acc::Float { min, max, unbounded } => {
            let mut visit = |f: f64| {
                if f.is_nan() {
                    return;
                }
                if f.is_infinite() {
                    *unbounded = true;
                }
                merge(min, max, Some(f), Some(f));
            };
            match array.data_type() {
                DataType::Float32 => array.as_primitive::<Float32Type>().iter().flatten().for_each(|f| visit(f as f64)),
                _ => array.as_primitive::<Float64Type>().iter().flatten().for_each(visit),
            }
        }
        Acc::Str { min, max } => {
            let a = array.as_string::<i32>();
            if let Some(lo) = compute::min_string(a) {
                if min.as_deref().is_none_or(|m| lo < m) {
                    *min = Some(lo.to_string());
                }
            }
            if let Some(hi) = compute::max_string(a) {
                if max.as_deref().is_none_or(|m| hi > m) {
                    *max = Some(hi.to_string());
                }
            }
        }
    }
}

fn minmax<T: ArrowPrimitiveType>(a: &deltalake::arrow::array::PrimitiveArray<T>) -> (Option<i64>, Option<i64>)
where
    T::Native: Into<i64>,
{
    (compute::min(a).map(Into::into), compute::max(a).map(Into::into))
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

/// The JSON literal of a column's min (`upper = false`) or max.
fn render(acc: &Acc, upper: bool) -> Option<String> {
    match acc {
        Acc::NoBounds => None,
        Acc::Int { kind, min, max } => {
            let v = if upper { (*max)? } else { (*min)? };
            Some(match kind {
                IntKind::Number => v.to_string(),
                // Years outside 0001..=9999 have no ISO-8601 form every reader parses: no bound.
                IntKind::Date if !(MIN_DAY..=MAX_DAY).contains(&v) => return None,
                IntKind::Timestamp { .. } if !(MIN_DAY * DAY_MICROS..(MAX_DAY + 1) * DAY_MICROS).contains(&v) => {
                    return None
                }
                IntKind::Date => json_string(&date_text(v)),
                IntKind::Timestamp { utc } => {
                    let ms =
                        if upper { v.div_euclid(1000) + (v.rem_euclid(1000) != 0) as i64 } else { v.div_euclid(1000) };
                    let text = timestamp_text(ms * 1000);
                    let text = &text[..text.len() - 3]; // milliseconds
                    json_string(&if *utc { format!("{text}Z") } else { text.to_string() })
                }
            })
        }
        Acc::Dec { scale, min, max } => {
            let v = if upper { (*max)? } else { (*min)? };
            Some(decimal_text(v, u8::try_from(*scale).ok()?))
        }
        Acc::Float { min, max, unbounded } => {
            if *unbounded {
                return None;
            }
            let v = if upper { (*max)? } else { (*min)? };
            serde_json::Number::from_f64(v).map(|n| n.to_string())
        }
        Acc::Str { min, max } => {
            let v = if upper { max.as_deref()? } else { min.as_deref()? };
            match v.char_indices().nth(STRING_PREFIX) {
                None => Some(json_string(v)),
                Some((cut, _)) if upper => Some(json_string(&format!("{}\u{10FFFF}", &v[..cut]))),
                Some((cut, _)) => Some(json_string(&v[..cut])),
            }
        }
    }
}

fn key_range(acc: &Acc) -> (Option<KeyPart>, Option<KeyPart>) {
    match acc {
        Acc::Int { min, max, .. } => (min.map(KeyPart::Int), max.map(KeyPart::Int)),
        Acc::Dec { min, max, .. } => (min.map(KeyPart::Dec), max.map(KeyPart::Dec)),
        Acc::Str { min, max } => (min.clone().map(KeyPart::Str), max.clone().map(KeyPart::Str)),
        Acc::NoBounds | Acc::Float { .. } => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::{encode, OutRow, RowMeta};
    use std::borrow::Cow;
    use std::sync::Arc;
    use tributary_core::{Column, ColumnType, TableId, TableSchema, Value};

    #[test]
    fn stats_json_has_counts_and_conservative_bounds() {
        let cols = [
            ("id", ColumnType::Int64),
            ("name", ColumnType::Text),
            ("ts", ColumnType::Timestamp),
            ("amount", ColumnType::Decimal { precision: 10, scale: 2 }),
        ];
        let schema = TableSchema {
            id: TableId::new("s", "t"),
            columns: cols
                .iter()
                .map(|(n, t)| Column {
                    name: n.to_string(),
                    data_type: t.clone(),
                    nullable: true,
                    source_type: String::new(),
                    source_id: None,
                })
                .collect(),
            primary_key: vec![0],
        };
        let layout = TableLayout::new(Arc::new(schema));
        let long = "x".repeat(40);
        let rows = [
            vec![
                Value::Int(5),
                Value::Text(long.clone()),
                Value::Timestamp(1_500),
                Value::Decimal { unscaled: -5, scale: 2 },
            ],
            vec![Value::Int(2), Value::Null, Value::Timestamp(2_500), Value::Decimal { unscaled: 12345, scale: 2 }],
        ];
        let meta = RowMeta { op: None, position: None, source_version: None, commit_ts: None, change_seq: None };
        let out: Vec<OutRow> = rows.iter().map(|r| OutRow { values: Cow::Borrowed(r), meta: meta.clone() }).collect();
        let refs: Vec<&OutRow> = out.iter().collect();
        let batch = encode(&layout, &refs, None).unwrap();
        let mut b = StatsBuilder::new(&layout);
        b.update(&batch);
        let stats = b.finish();
        let v: serde_json::Value = serde_json::from_str(&stats.json).unwrap();
        assert_eq!(v["numRecords"], 2);
        assert_eq!(v["minValues"]["id"], 2);
        assert_eq!(v["maxValues"]["id"], 5);
        assert_eq!(v["nullCount"]["name"], 1);
        assert_eq!(v["minValues"]["name"].as_str().unwrap().chars().count(), 32);
        assert!(v["maxValues"]["name"].as_str().unwrap().ends_with('\u{10FFFF}'));
        assert_eq!(v["minValues"]["ts"], "1970-01-01T00:00:00.001Z");
        assert_eq!(v["maxValues"]["ts"], "1970-01-01T00:00:00.003Z");
        assert!(stats.json.contains("\"amount\":-0.05"), "{}", stats.json);
        assert_eq!(stats.key_bounds.min[0], Some(KeyPart::Int(2)));
        assert_eq!(stats.key_bounds.max[0], Some(KeyPart::Int(5)));
    }

    #[test]
    fn dates_beyond_year_9999_get_no_bounds() {
        assert_eq!(crate::encode::date_text(MIN_DAY), "0001-01-01");
        assert_eq!(crate::encode::date_text(MAX_DAY), "9999-12-31");
        let acc = Acc::Int { kind: IntKind::Date, min: Some(MIN_DAY - 1), max: Some(MAX_DAY) };
        assert_eq!(render(&acc, false), None);
        assert_eq!(render(&acc, true).as_deref(), Some("\"9999-12-31\""));
        let ts =
            Acc::Int { kind: IntKind::Timestamp { utc: true }, min: Some(0), max: Some((MAX_DAY + 1) * DAY_MICROS) };
        assert_eq!(render(&ts, true), None);
    }
}
