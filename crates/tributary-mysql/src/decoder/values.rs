//! One binlog cell (`mysql_common`'s [`BinlogValue`]) to a typed core
//! [`Value`] for its column's [`ColumnType`], as docs/types.md specifies.
//!
//! [`decode_cell`] reads everything it needs from the [`Column`] (its
//! `source_type` spells e.g. `int unsigned`, `enum('a','b')`, `binary(16)`);
//! the decoder prepares a [`CellPlan`] per column once per TABLE_MAP instead,
//! so the per-row path does no parsing.

use std::fmt::Write as _;

use mysql_common::binlog::value::BinlogValue;
use mysql_common::constants::ColumnType as BinlogType;
use mysql_common::value::Value as MyValue;
use tributary_core::{Column, ColumnType, TableId, Value};

use super::json::jsonb_to_text;
use super::DecodeError;

/// Decodes one binlog cell for `column` of `table`.
pub fn decode_cell(value: &BinlogValue<'_>, column: &Column, table: &TableId) -> Result<Value, DecodeError> {
    CellPlan::from_column(column).decode(value.clone(), column, table)
}

/// What a column's source type means for decoding its cells.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum SourceKind {
    #[default]
    Other,
    Int,
    Year,
    Enum,
    Set,
    Geometry,
    /// BINARY(n): the binlog drops trailing zero bytes, the server returns them.
    Binary,
    Bit,
    /// MariaDB UUID / INET4 / INET6: logged in the binlog as BINARY(16) /
    /// BINARY(4) / BINARY(16) (trailing zero bytes dropped), mirrored as the
    /// text the server prints.
    Uuid,
    Inet4,
    Inet6,
}

/// Everything needed to decode the cells of one column, prepared once.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct CellPlan {
    pub(crate) kind: SourceKind,
    /// Width of an integer column in the binlog (8, 16, 24, 32, 64); 0 = unknown.
    pub(crate) int_bits: u8,
    pub(crate) unsigned: bool,
    /// Collation id of a character column (from the TABLE_MAP), if known.
    pub(crate) collation: Option<u16>,
    /// ENUM / SET labels in definition order; `None` when unknown.
    pub(crate) labels: Option<Vec<String>>,
    /// BINARY(n): the byte length values are padded to.
    pub(crate) pad_to: usize,
}

impl CellPlan {
    /// A plan from the column's `source_type` (information_schema COLUMN_TYPE form).
    pub(crate) fn from_column(column: &Column) -> Self {
        let source = column.source_type.trim();
        let lower = source.to_ascii_lowercase();
        let word = lower.split(|c: char| c == '(' || c.is_whitespace()).next().unwrap_or("");
        let unsigned = lower.split(|c: char| c == ')' || c.is_whitespace()).any(|w| w == "unsigned" || w == "zerofill");
        let mut plan = CellPlan { unsigned, ..CellPlan::default() };
        match word {
            "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" => {
                plan.kind = SourceKind::Int;
                plan.int_bits = int_bits_of(word);
            }
            "year" => plan.kind = SourceKind::Year,
            "enum" => {
                plan.kind = SourceKind::Enum;
                plan.labels = parse_labels(source);
            }
            "set" => {
                plan.kind = SourceKind::Set;
                plan.labels = parse_labels(source);
            }
            "binary" => {
                plan.kind = SourceKind::Binary;
                plan.pad_to = first_argument(&lower).unwrap_or(1);
            }
            "bit" => plan.kind = SourceKind::Bit,
            "uuid" => plan.kind = SourceKind::Uuid,
            "inet4" => plan.kind = SourceKind::Inet4,
            "inet6" => plan.kind = SourceKind::Inet6,
            w if is_spatial(w) => plan.kind = SourceKind::Geometry,
            _ => {}
        }
        plan
    }

    /// Refines the plan with what the TABLE_MAP says about the column.
    pub(crate) fn with_binlog_type(mut self, ty: BinlogType, collation: Option<u16>) -> Self {
        let bits = match ty {
            BinlogType::MYSQL_TYPE_TINY => 8,
            BinlogType::MYSQL_TYPE_SHORT => 16,
            BinlogType::MYSQL_TYPE_INT24 => 24,
            BinlogType::MYSQL_TYPE_LONG => 32,
            BinlogType::MYSQL_TYPE_LONGLONG => 64,
            _ => 0,
        };
        if bits != 0 {
            self.int_bits = bits;
            if self.kind == SourceKind::Other {
                self.kind = SourceKind::Int;
            }
        }
        match ty {
            BinlogType::MYSQL_TYPE_GEOMETRY => self.kind = SourceKind::Geometry,
            BinlogType::MYSQL_TYPE_YEAR => self.kind = SourceKind::Year,
            BinlogType::MYSQL_TYPE_BIT => self.kind = SourceKind::Bit,
            _ => {}
        }
        self.collation = collation.or(self.collation);
        self
    }

    /// Decodes one cell (taking it by value so strings and bytes are moved, not copied).
    pub(crate) fn decode(
        &self,
        value: BinlogValue<'_>,
        column: &Column,
        table: &TableId,
    ) -> Result<Value, DecodeError> {
        let result = match value {
            BinlogValue::Value(v) => self.convert(v, &column.data_type),
            BinlogValue::Jsonb(j) => match &column.data_type {
                ColumnType::Json => jsonb_to_text(&j).map(Value::Json),
                ColumnType::Text => jsonb_to_text(&j).map(Value::Text),
                other => Err(format!("a binary JSON value does not fit column type {other:?}")),
            },
            BinlogValue::JsonDiff(_) => Err("the cell is a partial JSON update, which needs the row's before image; \
                 run SET GLOBAL binlog_row_value_options='' on the source"
                .to_string()),
        };
        result.map_err(|reason| DecodeError::Value {
            table: table.to_string(),
            column: column.name.clone(),
            source_type: column.source_type.clone(),
            reason,
        })
    }

    fn convert(&self, v: MyValue, ty: &ColumnType) -> Result<Value, String> {
        if let MyValue::NULL = v {
            return Ok(Value::Null);
        }
        match ty {
            ColumnType::Bool => to_bool(v),
            ColumnType::Int8 | ColumnType::Int16 | ColumnType::Int32 | ColumnType::Int64 => {
                let x = self.to_integer(v)?;
                fit_signed(x, ty).map(Value::Int)
            }
            ColumnType::UInt64 => {
                let x = self.to_integer(v)?;
                u64::try_from(x).map(Value::UInt).map_err(|_| format!("{x} does not fit an unsigned 64-bit column"))
            }
            ColumnType::Float32 => match v {
                MyValue::Float(f) => Ok(Value::Float(f)),
                other => Err(mismatch(&other, ty)),
            },
            ColumnType::Float64 => match v {
                MyValue::Double(d) => Ok(Value::Double(d)),
                MyValue::Float(f) => Ok(Value::Double(f64::from(f))),
                other => Err(mismatch(&other, ty)),
            },
            ColumnType::Decimal { scale, .. } => self.to_decimal(v, *scale),
            ColumnType::Date => match v {
                MyValue::Date(y, m, d, ..) => Ok(civil_days(y, m, d).map_or(Value::Null, Value::Date)),
                other => Err(mismatch(&other, ty)),
            },
            ColumnType::TimestampNtz => match v {
                MyValue::Date(y, mo, d, h, mi, s, us) => {
                    Ok(datetime_micros(y, mo, d, h, mi, s, us).map_or(Value::Null, Value::TimestampNtz))
                }
                other => Err(mismatch(&other, ty)),
            },
            ColumnType::Timestamp => to_timestamp(v),
            ColumnType::Time { fsp } => match v {
                MyValue::Time(neg, days, h, m, s, us) => Ok(Value::Text(format_time(neg, days, h, m, s, us, *fsp))),
                other => Err(mismatch(&other, ty)),
            },
            ColumnType::Text => self.to_text(v),
            ColumnType::Json => match v {
                MyValue::Bytes(b) => decode_text(b, self.collation).map(Value::Json),
                other => Err(mismatch(&other, ty)),
            },
            ColumnType::Bytes => self.to_bytes(v),
            ColumnType::Array { element } if **element == ColumnType::Float32 => match v {
                MyValue::Bytes(b) => to_float_vector(&b),
                other => Err(mismatch(&other, ty)),
            },
            other => Err(format!("column type {other:?} has no binlog decoding")),
        }
    }

    /// An integer cell as the column's signedness reads it (exact in i128): a
    /// value read with the other signedness (no signedness metadata) is
    /// reinterpreted at the column's binlog width.
    fn to_integer(&self, v: MyValue) -> Result<i128, String> {
        let x = match v {
            MyValue::Int(i) => i128::from(i),
            MyValue::UInt(u) => i128::from(u),
            MyValue::Bytes(b) => return self.integer_from_bytes(&b),
            other => return Err(format!("{} is not an integer", describe(&other))),
        };
        let modulus = 1i128 << if self.int_bits == 0 { 64 } else { u32::from(self.int_bits) };
        Ok(if self.unsigned && x < 0 && x >= -modulus / 2 {
            x + modulus
        } else if !self.unsigned && x >= modulus / 2 && x < modulus {
            x - modulus
        } else {
            x
        })
    }

    /// YEAR (text "1900 + y"), BIT (big-endian) and SET (little-endian bitmask) cells.
    fn integer_from_bytes(&self, b: &[u8]) -> Result<i128, String> {
        match self.kind {
            SourceKind::Year => {
                let y: i128 = std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()).ok_or("YEAR is not a number")?;
                // mysql_common prints 1900 + the stored byte; 0 is MySQL's year 0000.
                Ok(if y == 1900 { 0 } else { y })
            }
            SourceKind::Bit if b.len() <= 8 => Ok(b.iter().fold(0i128, |acc, x| (acc << 8) | i128::from(*x))),
            SourceKind::Set if b.len() <= 8 => Ok(b.iter().rev().fold(0i128, |acc, x| (acc << 8) | i128::from(*x))),
            _ => Err(format!("{} bytes are not an integer", b.len())),
        }
    }

    fn to_decimal(&self, v: MyValue, scale: u8) -> Result<Value, String> {
        let unscaled = match v {
            MyValue::Bytes(b) => {
                let text = std::str::from_utf8(&b).map_err(|_| "DECIMAL is not text".to_string())?;
                parse_decimal(text, scale)?
            }
            MyValue::Int(_) | MyValue::UInt(_) => {
                let x = self.to_integer(v)?;
                x.checked_mul(10i128.pow(u32::from(scale))).ok_or("integer too large for the decimal")?
            }
            other => return Err(format!("{} is not a decimal", describe(&other))),
        };
        Ok(Value::Decimal { unscaled, scale })
    }

    fn to_text(&self, v: MyValue) -> Result<Value, String> {
        match (self.kind, v) {
            (SourceKind::Enum, MyValue::Int(i)) => self.enum_label(i).map(Value::Text),
            (SourceKind::Set, MyValue::Bytes(b)) => self.set_labels(&b).map(Value::Text),
            (SourceKind::Uuid, MyValue::Bytes(b)) => padded::<16>(&b).map(|b| Value::Text(uuid_text(&b))),
            (SourceKind::Inet4, MyValue::Bytes(b)) => padded::<4>(&b).map(|b| Value::Text(inet4_text(&b))),
            (SourceKind::Inet6, MyValue::Bytes(b)) => padded::<16>(&b).map(|b| Value::Text(inet6_text(&b))),
            (_, MyValue::Bytes(b)) => decode_text(b, self.collation).map(Value::Text),
            (_, other) => Err(mismatch(&other, &ColumnType::Text)),
        }
    }

    /// The label of ENUM index `i` (1-based; 0 is MySQL's empty error value).
    fn enum_label(&self, i: i64) -> Result<String, String> {
        let labels = self.labels.as_ref().ok_or(LABELS_UNKNOWN)?;
        match usize::try_from(i) {
            Ok(0) => Ok(String::new()),
            Ok(n) if n <= labels.len() => Ok(labels[n - 1].clone()),
            _ => Err(format!("ENUM index {i} is outside its {} labels; the schema is stale", labels.len())),
        }
    }

    /// The labels of the SET members whose bits are set, comma-joined in definition order.
    fn set_labels(&self, mask: &[u8]) -> Result<String, String> {
        let labels = self.labels.as_ref().ok_or(LABELS_UNKNOWN)?;
        let mut out = String::new();
        for (byte_idx, byte) in mask.iter().enumerate() {
            for bit in 0..8 {
                if byte & (1 << bit) == 0 {
                    continue;
                }
                let label = labels.get(byte_idx * 8 + bit).ok_or_else(|| {
                    format!(
                        "SET bit {} is outside its {} labels; the schema is stale",
                        byte_idx * 8 + bit,
                        labels.len()
                    )
                })?;
                if !out.is_empty() {
                    out.push(',');
                }
                out.push_str(label);
            }
        }
        Ok(out)
    }

    fn to_bytes(&self, v: MyValue) -> Result<Value, String> {
        let MyValue::Bytes(mut b) = v else { return Err(mismatch(&v, &ColumnType::Bytes)) };
        match self.kind {
            SourceKind::Geometry => {
                if b.len() < 4 {
                    return Err(format!("geometry value of {} bytes lacks the 4-byte SRID prefix", b.len()));
                }
                b.drain(..4);
            }
            SourceKind::Binary if b.len() < self.pad_to => b.resize(self.pad_to, 0),
            _ => {}
        }
        Ok(Value::Bytes(b))
    }
}

/// A fixed-size binary value whose trailing zero bytes the binlog dropped, padded back.
fn padded<const N: usize>(b: &[u8]) -> Result<[u8; N], String> {
    if b.len() > N {
        return Err(format!("{} bytes where the type holds {N}", b.len()));
    }
    let mut out = [0u8; N];
    out[..b.len()].copy_from_slice(b);
    Ok(out)
}

/// `123e4567-e89b-12d3-a456-426614174000`: MariaDB logs a UUID in the byte
/// order of its text form (checked on 10.11 with version 1 and 7 UUIDs).
pub(crate) fn uuid_text(b: &[u8; 16]) -> String {
    let mut out = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// `192.0.2.1`.
pub(crate) fn inet4_text(b: &[u8; 4]) -> String {
    format!("{}.{}.{}.{}", b[0], b[1], b[2], b[3])
}

/// An IPv6 address as MariaDB prints an INET6 (MySQL's `INET6_NTOA` rules,
/// not RFC 5952): the first longest run of zero groups, even a single one,
/// becomes `::`; an address of 96 zero bits (IPv4-compatible) or 80 zero bits
/// and `ffff` (IPv4-mapped) ends in dotted IPv4, so `::1.2.3.4` and
/// `::ffff:1.2.3.4`, but `::1` and `::102` (`::0.0.1.2`).
pub(crate) fn inet6_text(b: &[u8; 16]) -> String {
    let words: Vec<u16> = b.chunks(2).map(|w| u16::from_be_bytes([w[0], w[1]])).collect();
    let (mut gap, mut run) = ((0usize, 0usize), (0usize, 0usize));
    for (i, &w) in words.iter().enumerate() {
        if w == 0 {
            if run.1 == 0 {
                run.0 = i;
            }
            run.1 += 1;
            if run.1 > gap.1 {
                gap = run;
            }
        } else {
            run.1 = 0;
        }
    }
    if gap.0 == 0 && (gap.1 == 6 || (gap.1 == 5 && words[5] == 0xffff)) {
        let mapped = if gap.1 == 5 { "ffff:" } else { "" };
        return format!("::{mapped}{}", inet4_text(&[b[12], b[13], b[14], b[15]]));
    }
    let hex = |ws: &[u16]| ws.iter().map(|w| format!("{w:x}")).collect::<Vec<_>>().join(":");
    if gap.1 == 0 {
        return hex(&words);
    }
    format!("{}::{}", hex(&words[..gap.0]), hex(&words[gap.0 + gap.1..]))
}

const LABELS_UNKNOWN: &str = "ENUM / SET labels are unknown (the TABLE_MAP lacks them and the schema's source type \
     does not list them); run SET GLOBAL binlog_row_metadata='FULL' on the source";

fn int_bits_of(word: &str) -> u8 {
    match word {
        "tinyint" => 8,
        "smallint" => 16,
        "mediumint" => 24,
        "int" | "integer" => 32,
        _ => 64,
    }
}

fn fit_signed(x: i128, ty: &ColumnType) -> Result<i64, String> {
    let (lo, hi) = match ty {
        ColumnType::Int8 => (i128::from(i8::MIN), i128::from(i8::MAX)),
        ColumnType::Int16 => (i128::from(i16::MIN), i128::from(i16::MAX)),
        ColumnType::Int32 => (i128::from(i32::MIN), i128::from(i32::MAX)),
        _ => (i128::from(i64::MIN), i128::from(i64::MAX)),
    };
    if x < lo || x > hi {
        return Err(format!("{x} does not fit column type {ty:?}; the schema does not match the binlog"));
    }
    Ok(x as i64)
}

fn to_bool(v: MyValue) -> Result<Value, String> {
    match v {
        MyValue::Bytes(b) => Ok(Value::Bool(b.iter().any(|x| *x != 0))),
        MyValue::Int(i) => Ok(Value::Bool(i != 0)),
        MyValue::UInt(u) => Ok(Value::Bool(u != 0)),
        other => Err(mismatch(&other, &ColumnType::Bool)),
    }
}

/// TIMESTAMP: `mysql_common` gives TIMESTAMP2 as text `secs[.micros]`, old TIMESTAMP as seconds.
/// MySQL's zero timestamp ('0000-00-00 00:00:00', stored as 0) becomes null.
fn to_timestamp(v: MyValue) -> Result<Value, String> {
    let micros = match v {
        MyValue::Int(secs) => secs.checked_mul(1_000_000).ok_or("TIMESTAMP out of range")?,
        MyValue::Bytes(b) => parse_epoch_micros(&b)?,
        MyValue::Date(y, mo, d, h, mi, s, us) => match datetime_micros(y, mo, d, h, mi, s, us) {
            Some(m) => m,
            None => return Ok(Value::Null),
        },
        other => return Err(mismatch(&other, &ColumnType::Timestamp)),
    };
    Ok(if micros == 0 { Value::Null } else { Value::Timestamp(micros) })
}

/// `"1650493084"` or `"1650493084.000450"` → microseconds.
fn parse_epoch_micros(b: &[u8]) -> Result<i64, String> {
    let text = std::str::from_utf8(b).map_err(|_| "TIMESTAMP is not text")?;
    let bad = || format!("TIMESTAMP '{text}' is not seconds[.micros]");
    let (secs, frac) = text.split_once('.').unwrap_or((text, "0"));
    let secs: i64 = secs.parse().map_err(|_| bad())?;
    if frac.len() > 6 || !frac.bytes().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let frac: i64 = frac.parse::<i64>().map_err(|_| bad())? * 10i64.pow(6 - frac.len() as u32);
    Ok(secs * 1_000_000 + frac)
}

/// Days since 1970-01-01, or `None` for zero and invalid dates (month / day 0, 31 April, ...).
fn civil_days(y: u16, m: u8, d: u8) -> Option<i32> {
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    let (y, m, d) = (i64::from(y) - i64::from(m <= 2), i64::from(m), i64::from(d));
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some((era * 146_097 + doe - 719_468) as i32)
}

fn days_in_month(y: u16, m: u8) -> u8 {
    match m {
        2 if (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Wall-clock microseconds since 1970-01-01 00:00:00, or `None` for a zero / invalid date.
fn datetime_micros(y: u16, mo: u8, d: u8, h: u8, mi: u8, s: u8, us: u32) -> Option<i64> {
    let days = i64::from(civil_days(y, mo, d)?);
    let secs = days * 86_400 + i64::from(h) * 3_600 + i64::from(mi) * 60 + i64::from(s);
    Some(secs * 1_000_000 + i64::from(us))
}

/// TIME as the server prints it: `[-]HH:MM:SS[.f…]` with `fsp` fraction digits (hours may exceed 24).
fn format_time(neg: bool, days: u32, h: u8, m: u8, s: u8, us: u32, fsp: u8) -> String {
    let hours = u64::from(days) * 24 + u64::from(h);
    let mut out = String::with_capacity(18);
    let sign = if neg { "-" } else { "" };
    let _ = write!(out, "{sign}{hours:02}:{m:02}:{s:02}");
    if fsp > 0 {
        let fsp = fsp.min(6);
        let frac = us / 10u32.pow(6 - u32::from(fsp));
        let _ = write!(out, ".{frac:0width$}", width = usize::from(fsp));
    }
    out
}

/// `"-12.50"` at scale 2 → -1250.
fn parse_decimal(text: &str, scale: u8) -> Result<i128, String> {
    let bad = || format!("'{text}' is not a decimal of scale {scale}");
    let (neg, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let frac = frac.trim_end_matches(|c| c == '0' && frac.len() > usize::from(scale));
    if frac.len() > usize::from(scale) || (int.is_empty() && frac.is_empty()) {
        return Err(bad());
    }
    let mut unscaled: i128 = 0;
    let padding = std::iter::repeat_n(b'0', usize::from(scale) - frac.len());
    for c in int.bytes().chain(frac.bytes()).chain(padding) {
        if !c.is_ascii_digit() {
            return Err(bad());
        }
        unscaled = unscaled.checked_mul(10).and_then(|x| x.checked_add(i128::from(c - b'0'))).ok_or_else(bad)?;
    }
    Ok(if neg { -unscaled } else { unscaled })
}

/// VECTOR: little-endian float32 values.
fn to_float_vector(b: &[u8]) -> Result<Value, String> {
    if !b.len().is_multiple_of(4) {
        return Err(format!("VECTOR value of {} bytes is not a whole number of float32 values", b.len()));
    }
    Ok(Value::Array(b.chunks_exact(4).map(|c| Value::Float(f32::from_le_bytes([c[0], c[1], c[2], c[3]]))).collect()))
}

/// The character set family of a collation id (MySQL and MariaDB numbering).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Charset {
    Utf8,
    Latin1,
    Utf16Be,
    Utf16Le,
    Utf32Be,
}

fn charset_of(collation: u16) -> Charset {
    // MariaDB numbers its NO PAD variants of classic collations id + 1024.
    let base = if (1024..2048).contains(&collation) { collation - 1024 } else { collation };
    match base {
        5 | 8 | 15 | 31 | 47 | 48 | 49 | 94 => Charset::Latin1,
        35 | 90 | 128..=151 | 159 | 54 | 55 | 101..=124 | 2560..=3071 => Charset::Utf16Be,
        56 | 62 => Charset::Utf16Le,
        60 | 61 | 160..=183 | 3072..=3327 => Charset::Utf32Be,
        _ => Charset::Utf8,
    }
}

/// Column bytes to text in the column's character set.
fn decode_text(b: Vec<u8>, collation: Option<u16>) -> Result<String, String> {
    match collation.map(charset_of).unwrap_or(Charset::Utf8) {
        Charset::Utf8 => String::from_utf8(b).map_err(|e| {
            let id = collation.map_or("unknown".to_string(), |c| c.to_string());
            format!(
                "the bytes are not valid UTF-8 ({e}; column collation id {id}); Tributary reads utf8mb4, utf8, \
                 ascii, latin1, ucs2, utf16 and utf32 columns: convert the column to utf8mb4"
            )
        }),
        Charset::Latin1 if b.is_ascii() => Ok(String::from_utf8(b).unwrap_or_default()),
        Charset::Latin1 => Ok(b.iter().map(|x| cp1252(*x)).collect()),
        Charset::Utf16Be => utf16(&b, u16::from_be_bytes),
        Charset::Utf16Le => utf16(&b, u16::from_le_bytes),
        Charset::Utf32Be => utf32(&b),
    }
}

fn utf16(b: &[u8], read: fn([u8; 2]) -> u16) -> Result<String, String> {
    if !b.len().is_multiple_of(2) {
        return Err("UTF-16 text has an odd number of bytes".into());
    }
    char::decode_utf16(b.chunks_exact(2).map(|c| read([c[0], c[1]])))
        .collect::<Result<String, _>>()
        .map_err(|e| format!("invalid UTF-16 text: {e}"))
}

fn utf32(b: &[u8]) -> Result<String, String> {
    if !b.len().is_multiple_of(4) {
        return Err("UTF-32 text is not a multiple of 4 bytes".into());
    }
    b.chunks_exact(4)
        .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])).ok_or("invalid UTF-32 code point".into()))
        .collect()
}

/// MySQL's latin1 is Windows-1252 (with 0x81, 0x8D, 0x8F, 0x90, 0x9D kept as C1 controls).
fn cp1252(x: u8) -> char {
    const HIGH: [u16; 32] = [
        0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008D,
        0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A,
        0x0153, 0x009D, 0x017E, 0x0178,
    ];
    match x {
        0x80..=0x9f => char::from_u32(u32::from(HIGH[usize::from(x - 0x80)])).unwrap_or('\u{fffd}'),
        _ => char::from(x),
    }
}

/// ENUM / SET labels from `enum('a','b''c')` (quotes doubled or backslash-escaped).
pub(crate) fn parse_labels(source_type: &str) -> Option<Vec<String>> {
    let open = source_type.find('(')?;
    let close = source_type.rfind(')')?;
    let inner = source_type.get(open + 1..close)?;
    let mut labels = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        while matches!(chars.peek(), Some(c) if *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        match chars.next() {
            None => return Some(labels),
            Some('\'') => labels.push(read_quoted(&mut chars)?),
            Some(_) => return None,
        }
    }
}

fn read_quoted(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<String> {
    let mut label = String::new();
    loop {
        match chars.next()? {
            '\'' if chars.peek() == Some(&'\'') => {
                chars.next();
                label.push('\'');
            }
            '\'' => return Some(label),
            '\\' => match chars.next()? {
                'n' => label.push('\n'),
                't' => label.push('\t'),
                'r' => label.push('\r'),
                '0' => label.push('\0'),
                'Z' => label.push('\u{1a}'),
                other => label.push(other),
            },
            c => label.push(c),
        }
    }
}

/// Quotes a label the way information_schema COLUMN_TYPE does (`'it''s'`).
pub(crate) fn quote_label(label: &str) -> String {
    format!("'{}'", label.replace('\\', "\\\\").replace('\'', "''"))
}

/// The first number inside parentheses: `binary(16)` → 16.
fn first_argument(lower: &str) -> Option<usize> {
    let open = lower.find('(')?;
    let close = lower[open..].find(')')? + open;
    lower[open + 1..close].split(',').next()?.trim().parse().ok()
}

/// Spatial type names, as information_schema and the TABLE_MAP resolver spell them.
pub(crate) fn is_spatial(word: &str) -> bool {
    matches!(
        word,
        "geometry"
            | "point"
            | "linestring"
            | "polygon"
            | "multipoint"
            | "multilinestring"
            | "multipolygon"
            | "geometrycollection"
            | "geomcollection"
    )
}

fn describe(v: &MyValue) -> String {
    match v {
        MyValue::NULL => "NULL".into(),
        MyValue::Bytes(b) => format!("a {}-byte string", b.len()),
        MyValue::Int(_) | MyValue::UInt(_) => "an integer".into(),
        MyValue::Float(_) | MyValue::Double(_) => "a floating-point number".into(),
        MyValue::Date(..) => "a date-time".into(),
        MyValue::Time(..) => "a time".into(),
    }
}

fn mismatch(v: &MyValue, ty: &ColumnType) -> String {
    format!("{} from the binlog does not fit column type {ty:?}; the schema does not match the binlog", describe(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_common::io::ParseBuf;

    fn col(name: &str, data_type: ColumnType, source_type: &str) -> Column {
        Column { name: name.into(), data_type, nullable: true, source_type: source_type.into(), source_id: None }
    }

    fn table() -> TableId {
        TableId::new("db", "t")
    }

    /// Parses `bytes` as the binlog encodes a cell of `ty` with `meta`, then decodes it for `column`.
    fn cell(ty: BinlogType, meta: &[u8], unsigned: bool, bytes: &[u8], column: &Column) -> Result<Value, DecodeError> {
        let v: BinlogValue<'_> = ParseBuf(bytes).parse((ty, meta, unsigned, false)).unwrap();
        let plan = CellPlan::from_column(column).with_binlog_type(ty, None);
        plan.decode(v, column, &table())
    }

    fn ok(v: MyValue, column: &Column) -> Value {
        decode_cell(&BinlogValue::Value(v), column, &table()).unwrap()
    }

    #[test]
    fn mariadb_uuid_inet4_and_inet6_print_as_the_server_prints_them() {
        let hex = |s: &str| (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect();
        let v6 = |h: &str| {
            let b: Vec<u8> = hex(h);
            inet6_text(&b.try_into().unwrap())
        };
        // What MariaDB 10.11 printed for these addresses (SELECT of an INET6 column).
        assert_eq!(v6("00000000000000000000000000000000"), "::");
        assert_eq!(v6("00000000000000000000ffff01020304"), "::ffff:1.2.3.4");
        assert_eq!(v6("00000000000000000000000001020304"), "::1.2.3.4");
        assert_eq!(v6("00000000000000000000000000000001"), "::1");
        assert_eq!(v6("00000000000000000000000000000102"), "::102");
        assert_eq!(v6("00000000000000000000000000010000"), "::0.1.0.0");
        assert_eq!(v6("00000000000000000000000100000000"), "::1:0:0");
        assert_eq!(v6("00000000000000000000ffff00000000"), "::ffff:0.0.0.0");
        assert_eq!(v6("00000000000000000000fffe01020304"), "::fffe:102:304");
        assert_eq!(v6("00010000000100010001000100010001"), "1::1:1:1:1:1:1");
        assert_eq!(v6("00010000000000010000000000010001"), "1::1:0:0:1:1");
        assert_eq!(v6("00010000000000010000000000000001"), "1:0:0:1::1");
        assert_eq!(v6("00010000000000000000000000000000"), "1::");
        assert_eq!(v6("20010db8000000000000ff0000428329"), "2001:db8::ff00:42:8329");
        assert_eq!(v6("ffffffffffffffffffffffffffffffff"), "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
        let uuid = |h: &str| {
            let b: Vec<u8> = hex(h);
            uuid_text(&b.try_into().unwrap())
        };
        assert_eq!(uuid("123e4567e89b12d3a456426614174000"), "123e4567-e89b-12d3-a456-426614174000");
        assert_eq!(inet4_text(&[255, 0, 10, 1]), "255.0.10.1");
        // The binlog drops trailing zero bytes; longer values are refused.
        let u = col("u", ColumnType::Text, "uuid");
        let got = ok(MyValue::Bytes(hex("123e4567e89b12d3a4564266141740")), &u);
        assert_eq!(got, Value::Text("123e4567-e89b-12d3-a456-426614174000".into()));
        assert_eq!(ok(MyValue::Bytes(vec![]), &col("i", ColumnType::Text, "inet4")), Value::Text("0.0.0.0".into()));
        assert_eq!(ok(MyValue::Bytes(vec![]), &col("i", ColumnType::Text, "inet6")), Value::Text("::".into()));
        let plan = CellPlan::from_column(&col("i", ColumnType::Text, "inet4"));
        assert!(plan.convert(MyValue::Bytes(vec![1; 5]), &ColumnType::Text).is_err());
    }

    #[test]
    fn null_fits_every_column() {
        assert_eq!(ok(MyValue::NULL, &col("c", ColumnType::Int32, "int")), Value::Null);
        assert_eq!(ok(MyValue::NULL, &col("c", ColumnType::Json, "json")), Value::Null);
    }

    #[test]
    fn signed_integers_keep_their_sign() {
        let c = col("c", ColumnType::Int8, "tinyint");
        assert_eq!(cell(BinlogType::MYSQL_TYPE_TINY, &[], false, &[0xff], &c).unwrap(), Value::Int(-1));
        let c = col("c", ColumnType::Int32, "mediumint");
        assert_eq!(cell(BinlogType::MYSQL_TYPE_INT24, &[], false, &[0xff, 0xff, 0xff], &c).unwrap(), Value::Int(-1));
        let c = col("c", ColumnType::Int64, "bigint");
        assert_eq!(
            cell(BinlogType::MYSQL_TYPE_LONGLONG, &[], false, &(-5i64).to_le_bytes(), &c).unwrap(),
            Value::Int(-5)
        );
    }

    #[test]
    fn unsigned_integers_widen_even_without_signedness_metadata() {
        // An old server sends no signedness: mysql_common reads the bytes as signed.
        let c = col("c", ColumnType::Int16, "tinyint unsigned");
        assert_eq!(cell(BinlogType::MYSQL_TYPE_TINY, &[], false, &[0xff], &c).unwrap(), Value::Int(255));
        let c = col("c", ColumnType::Int64, "int(10) unsigned");
        let v = cell(BinlogType::MYSQL_TYPE_LONG, &[], false, &3_230_202_323u32.to_le_bytes(), &c).unwrap();
        assert_eq!(v, Value::Int(3_230_202_323));
        let c = col("c", ColumnType::Int32, "mediumint unsigned");
        assert_eq!(
            cell(BinlogType::MYSQL_TYPE_INT24, &[], false, &[0xff, 0xff, 0xff], &c).unwrap(),
            Value::Int(16_777_215)
        );
    }

    #[test]
    fn bigint_unsigned_does_not_overflow() {
        let c = col("c", ColumnType::UInt64, "bigint unsigned");
        for unsigned_flag in [true, false] {
            let v = cell(BinlogType::MYSQL_TYPE_LONGLONG, &[], unsigned_flag, &u64::MAX.to_le_bytes(), &c).unwrap();
            assert_eq!(v, Value::UInt(u64::MAX));
        }
        assert_eq!(ok(MyValue::UInt(18_446_744_073_709_551_000), &c), Value::UInt(18_446_744_073_709_551_000));
    }

    #[test]
    fn an_integer_too_wide_for_its_column_is_an_error_naming_the_column() {
        let err =
            decode_cell(&BinlogValue::Value(MyValue::Int(300)), &col("qty", ColumnType::Int8, "tinyint"), &table())
                .unwrap_err()
                .to_string();
        assert!(err.contains("db.t") && err.contains("qty") && err.contains("300"), "{err}");
    }

    #[test]
    fn decimals_are_exact() {
        let c = col("c", ColumnType::Decimal { precision: 10, scale: 2 }, "decimal(10,2)");
        assert_eq!(ok(MyValue::Bytes(b"250.00".to_vec()), &c), Value::Decimal { unscaled: 25000, scale: 2 });
        assert_eq!(ok(MyValue::Bytes(b"-0.50".to_vec()), &c), Value::Decimal { unscaled: -50, scale: 2 });
        assert_eq!(ok(MyValue::Bytes(b"7".to_vec()), &c), Value::Decimal { unscaled: 700, scale: 2 });
        let wide = col("c", ColumnType::Decimal { precision: 38, scale: 0 }, "decimal(38,0)");
        let digits = "9".repeat(38);
        let expected: i128 = digits.parse().unwrap();
        assert_eq!(ok(MyValue::Bytes(digits.into_bytes()), &wide), Value::Decimal { unscaled: expected, scale: 0 });
        assert!(decode_cell(&BinlogValue::Value(MyValue::Bytes(b"1.234".to_vec())), &c, &table()).is_err());
    }

    #[test]
    fn binary_decimal_from_the_binlog_is_exact() {
        // DECIMAL(10,2) 1234567.89 in MySQL's binary decimal format.
        let c = col("c", ColumnType::Decimal { precision: 10, scale: 2 }, "decimal(10,2)");
        let v = cell(BinlogType::MYSQL_TYPE_NEWDECIMAL, &[10, 2], false, &[0x80, 0x12, 0xd6, 0x87, 0x59], &c).unwrap();
        assert_eq!(v, Value::Decimal { unscaled: 123_456_789, scale: 2 });
    }

    #[test]
    fn wide_decimals_become_text_with_every_digit() {
        let c = col("c", ColumnType::Text, "decimal(65,30)");
        let digits = "12345678901234567890123456789012345.123456789012345678901234567890";
        assert_eq!(ok(MyValue::Bytes(digits.as_bytes().to_vec()), &c), Value::Text(digits.into()));
    }

    #[test]
    fn floats_keep_their_width() {
        assert_eq!(ok(MyValue::Float(1.5), &col("c", ColumnType::Float32, "float")), Value::Float(1.5));
        assert_eq!(ok(MyValue::Double(2.25), &col("c", ColumnType::Float64, "double")), Value::Double(2.25));
    }

    #[test]
    fn dates_count_days_from_the_epoch_and_zero_dates_are_null() {
        let c = col("c", ColumnType::Date, "date");
        assert_eq!(ok(MyValue::Date(1970, 1, 1, 0, 0, 0, 0), &c), Value::Date(0));
        assert_eq!(ok(MyValue::Date(2000, 3, 1, 0, 0, 0, 0), &c), Value::Date(11_017));
        assert_eq!(ok(MyValue::Date(1969, 12, 31, 0, 0, 0, 0), &c), Value::Date(-1));
        assert_eq!(ok(MyValue::Date(0, 0, 0, 0, 0, 0, 0), &c), Value::Null);
        assert_eq!(ok(MyValue::Date(2021, 4, 31, 0, 0, 0, 0), &c), Value::Null);
        // Binlog DATE: 3 bytes, day | month << 5 | year << 9.
        let packed: u32 = 18 | (3 << 5) | (2012 << 9);
        let v = cell(BinlogType::MYSQL_TYPE_NEWDATE, &[], false, &packed.to_le_bytes()[..3], &c).unwrap();
        assert_eq!(v, Value::Date(15_417));
    }

    #[test]
    fn datetime_is_wall_clock_micros_without_zone() {
        let c = col("c", ColumnType::TimestampNtz, "datetime(6)");
        let v = ok(MyValue::Date(2012, 3, 18, 11, 30, 45, 123_456), &c);
        assert_eq!(v, Value::TimestampNtz(1_332_070_245_123_456));
        assert_eq!(ok(MyValue::Date(0, 0, 0, 0, 0, 0, 0), &c), Value::Null);
    }

    #[test]
    fn datetime2_fractional_seconds_from_the_binlog() {
        // DATETIME(3) 2012-03-18 11:30:45.678: 5-byte packed value + 2-byte fraction.
        let c = col("c", ColumnType::TimestampNtz, "datetime(3)");
        let ym = 2012 * 13 + 3;
        let packed: u64 = (1 << 39) | (ym << 22) | (18 << 17) | (11 << 12) | (30 << 6) | 45;
        let mut bytes = packed.to_be_bytes()[3..].to_vec();
        bytes.extend_from_slice(&6780u16.to_be_bytes());
        let v = cell(BinlogType::MYSQL_TYPE_DATETIME2, &[3], false, &bytes, &c).unwrap();
        assert_eq!(v, Value::TimestampNtz(1_332_070_245_678_000));
    }

    #[test]
    fn timestamp_is_a_utc_instant_in_micros() {
        let c = col("c", ColumnType::Timestamp, "timestamp(6)");
        assert_eq!(ok(MyValue::Bytes(b"1650493084".to_vec()), &c), Value::Timestamp(1_650_493_084_000_000));
        assert_eq!(ok(MyValue::Bytes(b"1650493084.000450".to_vec()), &c), Value::Timestamp(1_650_493_084_000_450));
        assert_eq!(ok(MyValue::Bytes(b"0".to_vec()), &c), Value::Null);
        // TIMESTAMP2(2): 4-byte big-endian seconds + 1 byte of hundredths.
        let mut bytes = 1_650_493_084u32.to_be_bytes().to_vec();
        bytes.push(25);
        let v = cell(BinlogType::MYSQL_TYPE_TIMESTAMP2, &[2], false, &bytes, &c).unwrap();
        assert_eq!(v, Value::Timestamp(1_650_493_084_250_000));
    }

    #[test]
    fn time_prints_like_the_server_with_its_fraction_digits() {
        let t = |fsp: u8| col("c", ColumnType::Time { fsp }, "time");
        assert_eq!(ok(MyValue::Time(true, 21, 3, 48, 27, 0), &t(0)), Value::Text("-507:48:27".into()));
        assert_eq!(ok(MyValue::Time(false, 0, 1, 2, 3, 450_000), &t(3)), Value::Text("01:02:03.450".into()));
        assert_eq!(ok(MyValue::Time(false, 0, 1, 2, 3, 0), &t(6)), Value::Text("01:02:03.000000".into()));
        assert_eq!(ok(MyValue::Time(false, 34, 22, 59, 59, 0), &t(0)), Value::Text("838:59:59".into()));
    }

    #[test]
    fn time2_with_fraction_from_the_binlog() {
        // TIME(4) 12:34:56.7890: 3 bytes (hms | 1 << 23) + 2-byte fraction in 1/10000 s.
        let hms: u32 = (1 << 23) | (12 << 12) | (34 << 6) | 56;
        let mut bytes = hms.to_be_bytes()[1..].to_vec();
        bytes.extend_from_slice(&7890u16.to_be_bytes());
        let c = col("c", ColumnType::Time { fsp: 4 }, "time(4)");
        let v = cell(BinlogType::MYSQL_TYPE_TIME2, &[4], false, &bytes, &c).unwrap();
        assert_eq!(v, Value::Text("12:34:56.7890".into()));
    }

    #[test]
    fn year_is_a_small_integer() {
        let c = col("c", ColumnType::Int16, "year");
        assert_eq!(cell(BinlogType::MYSQL_TYPE_YEAR, &[], false, &[121], &c).unwrap(), Value::Int(2021));
        assert_eq!(cell(BinlogType::MYSQL_TYPE_YEAR, &[], false, &[0], &c).unwrap(), Value::Int(0));
    }

    #[test]
    fn enum_gives_its_label() {
        let c = col("c", ColumnType::Text, "enum('var1','variant2','it''s')");
        assert_eq!(ok(MyValue::Int(2), &c), Value::Text("variant2".into()));
        assert_eq!(ok(MyValue::Int(3), &c), Value::Text("it's".into()));
        assert_eq!(ok(MyValue::Int(0), &c), Value::Text(String::new()));
        assert!(decode_cell(&BinlogValue::Value(MyValue::Int(4)), &c, &table()).is_err());
        let v = cell(BinlogType::MYSQL_TYPE_ENUM, &[247, 1], false, &[1], &c).unwrap();
        assert_eq!(v, Value::Text("var1".into()));
    }

    #[test]
    fn set_gives_its_labels_in_definition_order() {
        let c = col("c", ColumnType::Text, "set('one','two','three','four')");
        assert_eq!(ok(MyValue::Bytes(vec![0b0101]), &c), Value::Text("one,three".into()));
        assert_eq!(ok(MyValue::Bytes(vec![0b1010]), &c), Value::Text("two,four".into()));
        assert_eq!(ok(MyValue::Bytes(vec![0]), &c), Value::Text(String::new()));
        assert!(decode_cell(&BinlogValue::Value(MyValue::Bytes(vec![0b1_0000])), &c, &table()).is_err());
    }

    #[test]
    fn enum_without_labels_is_an_error_with_the_fix_unless_mapped_to_an_integer() {
        let c = col("c", ColumnType::Text, "enum");
        let err = decode_cell(&BinlogValue::Value(MyValue::Int(1)), &c, &table()).unwrap_err().to_string();
        assert!(err.contains("binlog_row_metadata='FULL'"), "{err}");
        assert_eq!(ok(MyValue::Int(2), &col("c", ColumnType::Int16, "enum")), Value::Int(2));
        assert_eq!(ok(MyValue::Bytes(vec![5, 1]), &col("c", ColumnType::UInt64, "set")), Value::UInt(0x105));
    }

    #[test]
    fn bit_1_is_a_bool_and_wider_bits_are_big_endian_bytes() {
        let b1 = col("c", ColumnType::Bool, "bit(1)");
        assert_eq!(cell(BinlogType::MYSQL_TYPE_BIT, &[1, 0], false, &[1], &b1).unwrap(), Value::Bool(true));
        assert_eq!(cell(BinlogType::MYSQL_TYPE_BIT, &[1, 0], false, &[0], &b1).unwrap(), Value::Bool(false));
        let b10 = col("c", ColumnType::Bytes, "bit(10)");
        let v = cell(BinlogType::MYSQL_TYPE_BIT, &[2, 1], false, &[0x02, 0x01], &b10).unwrap();
        assert_eq!(v, Value::Bytes(vec![0x02, 0x01]));
    }

    #[test]
    fn text_is_utf8_and_latin1_and_utf16_are_transcoded() {
        let c = col("c", ColumnType::Text, "varchar(10)");
        assert_eq!(ok(MyValue::Bytes("héllo".as_bytes().to_vec()), &c), Value::Text("héllo".into()));
        let plan = |collation| CellPlan { collation: Some(collation), ..CellPlan::from_column(&c) };
        let latin1 = plan(8).decode(BinlogValue::Value(MyValue::Bytes(vec![b'h', 0xe9, 0x80])), &c, &table());
        assert_eq!(latin1.unwrap(), Value::Text("hé€".into()));
        let utf16 = plan(54).decode(BinlogValue::Value(MyValue::Bytes(vec![0, b'h', 0, 0xe9])), &c, &table());
        assert_eq!(utf16.unwrap(), Value::Text("hé".into()));
        let err = plan(255).decode(BinlogValue::Value(MyValue::Bytes(vec![0xff, 0xfe])), &c, &table()).unwrap_err();
        assert!(err.to_string().contains("utf8mb4"), "{err}");
    }

    #[test]
    fn binary_is_padded_like_the_server_returns_it_and_blobs_are_kept() {
        let c = col("c", ColumnType::Bytes, "binary(4)");
        assert_eq!(ok(MyValue::Bytes(vec![1, 2]), &c), Value::Bytes(vec![1, 2, 0, 0]));
        let c = col("c", ColumnType::Bytes, "varbinary(4)");
        assert_eq!(ok(MyValue::Bytes(vec![1, 2]), &c), Value::Bytes(vec![1, 2]));
    }

    #[test]
    fn geometry_drops_the_srid_prefix_leaving_wkb() {
        let c = col("c", ColumnType::Bytes, "point");
        let mut v = vec![0, 0, 0, 0, 1, 1, 0, 0, 0];
        v.extend_from_slice(&1.0f64.to_le_bytes());
        v.extend_from_slice(&2.0f64.to_le_bytes());
        let Value::Bytes(wkb) = ok(MyValue::Bytes(v.clone()), &c) else { panic!() };
        assert_eq!(wkb, v[4..]);
        assert!(decode_cell(&BinlogValue::Value(MyValue::Bytes(vec![0, 0])), &c, &table()).is_err());
    }

    #[test]
    fn vector_is_an_array_of_float32() {
        let c = col("c", ColumnType::Array { element: Box::new(ColumnType::Float32) }, "vector(2)");
        let mut bytes = 1.5f32.to_le_bytes().to_vec();
        bytes.extend_from_slice(&(-2.0f32).to_le_bytes());
        assert_eq!(ok(MyValue::Bytes(bytes), &c), Value::Array(vec![Value::Float(1.5), Value::Float(-2.0)]));
        assert!(decode_cell(&BinlogValue::Value(MyValue::Bytes(vec![0; 5])), &c, &table()).is_err());
    }

    #[test]
    fn binary_json_becomes_mysql_text_and_mariadb_json_text_is_kept() {
        let c = col("c", ColumnType::Json, "json");
        // JSON int16 42.
        let v = cell(BinlogType::MYSQL_TYPE_JSON, &[4], false, &[3, 0, 0, 0, 0x05, 42, 0], &c).unwrap();
        assert_eq!(v, Value::Json("42".into()));
        assert_eq!(ok(MyValue::Bytes(br#"{"foo":1}"#.to_vec()), &c), Value::Json(r#"{"foo":1}"#.into()));
    }

    #[test]
    fn a_json_diff_alone_cannot_be_decoded() {
        let c = col("c", ColumnType::Json, "json");
        let err = decode_cell(&BinlogValue::JsonDiff(vec![]), &c, &table()).unwrap_err().to_string();
        assert!(err.contains("binlog_row_value_options"), "{err}");
    }

    #[test]
    fn labels_parse_from_column_type() {
        assert_eq!(parse_labels("enum('a','b c','d''e','f\\\\g')").unwrap(), vec!["a", "b c", "d'e", "f\\g"]);
        assert_eq!(parse_labels("set()").unwrap(), Vec::<String>::new());
        assert_eq!(parse_labels("enum"), None);
        let quoted: Vec<String> = ["it's", "a\\b"].iter().map(|l| quote_label(l)).collect();
        assert_eq!(parse_labels(&format!("enum({})", quoted.join(","))).unwrap(), vec!["it's", "a\\b"]);
    }
}
