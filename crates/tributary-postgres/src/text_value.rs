//! PostgreSQL's text output of a value (what pgoutput sends in text mode and
//! what `SELECT col::text` returns) read into a [`Value`] of the column's
//! [`ColumnType`]. Expects the server defaults `DateStyle=ISO, MDY` and
//! `IntervalStyle=postgres` (the source preflight refuses another DateStyle);
//! any `TimeZone` works, since `timestamptz` output carries its offset.
//!
//! Dates use the proleptic Gregorian calendar with astronomical years (year 1
//! BC is year 0), as PostgreSQL does; no date library is involved.

use std::borrow::Cow;

use tributary_core::{ColumnType, Value};

/// At most this many characters of the offending text go into an error message.
const MAX_ERROR_TEXT_CHARS: usize = 60;

const MICROS_PER_SECOND: i64 = 1_000_000;
const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SECOND;

/// Why a text could not be read; internal errors are mostly static.
type Reason = Cow<'static, str>;

/// A text PostgreSQL sent that does not read as the column's type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read the PostgreSQL text {text:?} as {column_type}: {reason}")]
pub struct TextValueError {
    /// The Tributary column type, e.g. `Decimal(10,2)` or `Array<Int32>`.
    pub column_type: String,
    /// The offending text, cut to about 60 characters.
    pub text: String,
    pub reason: String,
}

/// Reads one non-null cell from its PostgreSQL text form.
///
/// Values without a Delta counterpart become [`Value::Null`]: `NaN` in a
/// `numeric(p,s)` column and `infinity` / `-infinity` dates and timestamps.
pub fn parse_text(column_type: &ColumnType, text: &str) -> Result<Value, TextValueError> {
    parse_value(column_type, text).map_err(|reason| TextValueError {
        column_type: type_label(column_type),
        text: truncate(text),
        reason: reason.into_owned(),
    })
}

fn parse_value(column_type: &ColumnType, text: &str) -> Result<Value, Reason> {
    let value = match column_type {
        ColumnType::Bool => Value::Bool(parse_bool(text)?),
        ColumnType::Int8 => Value::Int(parse_int::<i8>(text)?.into()),
        ColumnType::Int16 => Value::Int(parse_int::<i16>(text)?.into()),
        ColumnType::Int32 => Value::Int(parse_int::<i32>(text)?.into()),
        ColumnType::Int64 => Value::Int(parse_int::<i64>(text)?),
        ColumnType::UInt64 => return Err("UInt64 is not a PostgreSQL column type".into()),
        // Rust's float syntax covers PostgreSQL's output, "NaN", "Infinity" and "-Infinity" included.
        ColumnType::Float32 => Value::Float(text.parse().map_err(|_| "not a floating-point number")?),
        ColumnType::Float64 => Value::Double(text.parse().map_err(|_| "not a floating-point number")?),
        ColumnType::Decimal { precision, scale } => parse_decimal(text, *precision, *scale)?,
        ColumnType::Date => parse_date(text)?,
        ColumnType::Time { .. } => parse_time(text)?,
        ColumnType::TimestampNtz => parse_timestamp(text, false)?.map_or(Value::Null, Value::TimestampNtz),
        ColumnType::Timestamp => parse_timestamp(text, true)?.map_or(Value::Null, Value::Timestamp),
        ColumnType::Text => Value::Text(text.to_owned()),
        ColumnType::Json => Value::Json(text.to_owned()),
        ColumnType::Bytes => Value::Bytes(parse_bytea(text)?),
        ColumnType::Array { element } => parse_array(element, text)?,
    };
    Ok(value)
}

fn parse_bool(text: &str) -> Result<bool, Reason> {
    match text {
        "t" => Ok(true),
        "f" => Ok(false),
        _ if text.eq_ignore_ascii_case("true") => Ok(true),
        _ if text.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err("not a boolean (t / f)".into()),
    }
}

fn parse_int<T: std::str::FromStr<Err = std::num::ParseIntError>>(text: &str) -> Result<T, Reason> {
    text.parse::<T>().map_err(|e| match e.kind() {
        std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => "integer out of range".into(),
        _ => "not an integer".into(),
    })
}

/// `numeric(p,s)` text, rescaled exactly to the column's scale: fewer fraction
/// digits are padded, more are refused unless they are zeros (never rounded).
///
/// `NaN` fits a `numeric(p,s)` column but no Delta decimal: it becomes null.
fn parse_decimal(text: &str, precision: u8, scale: u8) -> Result<Value, Reason> {
    match text {
        "NaN" => return Ok(Value::Null),
        "Infinity" | "-Infinity" => return Err("a constrained numeric cannot hold infinity".into()),
        _ => {}
    }
    let bytes = text.as_bytes();
    let (negative, digits) = match bytes.first() {
        Some(b'-') => (true, &bytes[1..]),
        Some(b'+') => (false, &bytes[1..]),
        _ => (false, bytes),
    };
    let too_wide = || Reason::from(format!("does not fit decimal({precision},{scale})"));
    let mut unscaled: i128 = 0;
    let mut any_digit = false;
    let mut in_fraction = false;
    let mut fraction_digits: u8 = 0;
    for &c in digits {
        match c {
            b'0'..=b'9' => {
                any_digit = true;
                if in_fraction {
                    if fraction_digits == scale {
                        if c != b'0' {
                            return Err(format!("more fraction digits than the scale {scale}").into());
                        }
                        continue;
                    }
                    fraction_digits += 1;
                }
                unscaled =
                    unscaled.checked_mul(10).and_then(|u| u.checked_add(i128::from(c - b'0'))).ok_or_else(too_wide)?;
            }
            b'.' if !in_fraction => in_fraction = true,
            _ => return Err("not a decimal number".into()),
        }
    }
    if !any_digit {
        return Err("not a decimal number".into());
    }
    unscaled = 10i128
        .checked_pow(u32::from(scale - fraction_digits))
        .and_then(|factor| unscaled.checked_mul(factor))
        .ok_or_else(too_wide)?;
    // A precision above 38 has no i128 limit to check; the i128 overflow above is then the limit.
    if let Some(limit) = 10i128.checked_pow(u32::from(precision)) {
        if unscaled >= limit {
            return Err(too_wide());
        }
    }
    Ok(Value::Decimal { unscaled: if negative { -unscaled } else { unscaled }, scale })
}

/// PostgreSQL's special date / timestamp values, which Delta cannot store.
fn is_infinity(text: &str) -> bool {
    text == "infinity" || text == "-infinity"
}

/// `2024-02-29`, `0044-03-15 BC`; infinity is null.
fn parse_date(text: &str) -> Result<Value, Reason> {
    if is_infinity(text) {
        return Ok(Value::Null);
    }
    let mut cursor = Cursor::new(text);
    let (year, month, day) = cursor.date()?;
    let bc = cursor.eat_bc();
    cursor.finish()?;
    let days = civil_days(year, month, day, bc)?;
    i32::try_from(days).map(Value::Date).map_err(|_| "date out of range".into())
}

/// `13:45:06.123456`, up to `24:00:00`.
fn parse_time(text: &str) -> Result<Value, Reason> {
    let mut cursor = Cursor::new(text);
    let micros = cursor.time_of_day()?;
    cursor.finish()?;
    Ok(Value::Time(micros))
}

/// `2024-01-02 03:04:05[.ffffff][±HH[:MM[:SS]]][ BC]` as microseconds since
/// 1970-01-01 00:00:00: the wall clock as is without `zoned`, the UTC instant
/// with it (the offset subtracted). `None` for infinity.
fn parse_timestamp(text: &str, zoned: bool) -> Result<Option<i64>, Reason> {
    if is_infinity(text) {
        return Ok(None);
    }
    let mut cursor = Cursor::new(text);
    let (year, month, day) = cursor.date()?;
    if !(cursor.eat(b' ') || cursor.eat(b'T')) {
        return Err("expected a space between date and time".into());
    }
    let time = cursor.time_of_day()?;
    let offset_seconds = if zoned { cursor.utc_offset()? } else { 0 };
    let bc = cursor.eat_bc();
    cursor.finish()?;
    let days = civil_days(year, month, day, bc)?;
    days.checked_mul(MICROS_PER_DAY)
        .and_then(|us| us.checked_add(time))
        .and_then(|us| us.checked_sub(offset_seconds * MICROS_PER_SECOND))
        .map(Some)
        .ok_or_else(|| "timestamp out of range".into())
}

/// Days since 1970-01-01 of a validated date; `bc` turns the year into the
/// astronomical one (1 BC is year 0).
fn civil_days(year: u32, month: u32, day: u32, bc: bool) -> Result<i64, Reason> {
    if year == 0 {
        return Err("there is no year 0 (1 BC precedes 1 AD)".into());
    }
    let year = if bc { 1 - i64::from(year) } else { i64::from(year) };
    if !(1..=12).contains(&month) {
        return Err("month out of range".into());
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err("day out of range for the month".into());
    }
    Ok(days_from_civil(year, month, day))
}

fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date with an astronomical
/// year (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// bytea in the hex format (`\x0a0b`, PostgreSQL's default output) or the
/// legacy escape format (`a\000\\b`, `bytea_output = 'escape'`).
fn parse_bytea(text: &str) -> Result<Vec<u8>, Reason> {
    if let Some(hex) = text.strip_prefix("\\x") {
        let hex = hex.as_bytes();
        if hex.len() % 2 != 0 {
            return Err("odd number of hex digits".into());
        }
        let mut out = Vec::with_capacity(hex.len() / 2);
        for pair in hex.chunks_exact(2) {
            out.push((hex_digit(pair[0])? << 4) | hex_digit(pair[1])?);
        }
        return Ok(out);
    }
    // Escape format: a backslash starts `\\` or a three-digit octal byte; the
    // hex format's `\x` prefix cannot start it, since a backslash prints as `\\`.
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        if bytes.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
            continue;
        }
        match bytes.get(i + 1..i + 4) {
            Some(&[a @ b'0'..=b'3', b @ b'0'..=b'7', c @ b'0'..=b'7']) => {
                out.push(((a - b'0') << 6) | ((b - b'0') << 3) | (c - b'0'));
                i += 4;
            }
            _ => return Err("invalid escape in bytea".into()),
        }
    }
    Ok(out)
}

fn hex_digit(c: u8) -> Result<u8, Reason> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err("not a hex digit".into()),
    }
}

/// A one-dimensional array literal: `{1,2,NULL}`, `{"a b","q\"uote",NULL,"NULL"}`,
/// `{}`, optionally after a bounds decoration (`[0:1]={1,2}`, whose lower bound
/// is dropped). Unquoted `NULL` is null, quoted `"NULL"` the string. Elements
/// that are themselves `{...}` (a multi-dimensional value, which any PostgreSQL
/// array column can hold) are refused rather than flattened, so the shape is
/// never lost silently.
fn parse_array(element: &ColumnType, text: &str) -> Result<Value, Reason> {
    if matches!(element, ColumnType::Array { .. }) {
        return Err("nested array types are not supported".into());
    }
    let body = if text.starts_with('[') {
        let (_, after) = text.split_once('=').ok_or("array bounds without '='")?;
        after
    } else {
        text
    };
    let bytes = body.as_bytes();
    let skip_space = |mut i: usize| {
        while bytes.get(i).is_some_and(|c| c.is_ascii_whitespace()) {
            i += 1;
        }
        i
    };
    let mut i = skip_space(0);
    if bytes.get(i) != Some(&b'{') {
        return Err("an array literal starts with '{'".into());
    }
    i = skip_space(i + 1);
    let mut items = Vec::new();
    if bytes.get(i) == Some(&b'}') {
        i += 1;
    } else {
        loop {
            i = skip_space(i);
            let (raw, quoted, escaped) = match bytes.get(i) {
                Some(b'{') => return Err("multi-dimensional arrays are not supported".into()),
                Some(b'"') => {
                    let start = i + 1;
                    let mut escaped = false;
                    i = start;
                    loop {
                        match bytes.get(i) {
                            Some(b'\\') => {
                                escaped = true;
                                i += 2;
                            }
                            Some(b'"') => break,
                            Some(_) => i += 1,
                            None => return Err("unterminated quoted array element".into()),
                        }
                    }
                    let raw = &body[start..i];
                    i += 1;
                    (raw, true, escaped)
                }
                _ => {
                    let start = i;
                    let mut escaped = false;
                    while let Some(&c) = bytes.get(i) {
                        match c {
                            b',' | b'}' => break,
                            b'\\' => {
                                escaped = true;
                                i += 2;
                            }
                            b'"' | b'{' => return Err("unexpected character in an unquoted array element".into()),
                            _ => i += 1,
                        }
                    }
                    if i >= bytes.len() {
                        return Err("array literal without closing '}'".into());
                    }
                    (body[start..i].trim_ascii(), false, escaped)
                }
            };
            let item = if !quoted && !escaped && raw.eq_ignore_ascii_case("NULL") {
                Value::Null
            } else if !quoted && raw.is_empty() {
                return Err("empty unquoted array element".into());
            } else {
                let value: Cow<'_, str> = if escaped { Cow::Owned(unescape(raw)) } else { Cow::Borrowed(raw) };
                parse_element(element, value).map_err(|reason| {
                    Reason::from(format!("element {} {:?}: {reason}", items.len() + 1, truncate(raw)))
                })?
            };
            items.push(item);
            i = skip_space(i);
            match bytes.get(i) {
                Some(b',') => i += 1,
                Some(b'}') => {
                    i += 1;
                    break;
                }
                Some(_) => return Err("expected ',' or '}' after an array element".into()),
                None => return Err("array literal without closing '}'".into()),
            }
        }
    }
    if skip_space(i) != bytes.len() {
        return Err("unexpected text after the array's closing '}'".into());
    }
    Ok(Value::Array(items))
}

/// One array element's value; text elements take the unescaped string as is.
fn parse_element(element: &ColumnType, raw: Cow<'_, str>) -> Result<Value, Reason> {
    match element {
        ColumnType::Text => Ok(Value::Text(raw.into_owned())),
        ColumnType::Json => Ok(Value::Json(raw.into_owned())),
        other => parse_value(other, &raw),
    }
}

/// Removes array-literal backslash escapes: `\x` is `x`.
fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A position in an ASCII date / time text.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Self {
        Cursor { bytes: text.as_bytes(), pos: 0 }
    }

    fn eat(&mut self, c: u8) -> bool {
        let hit = self.bytes.get(self.pos) == Some(&c);
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn expect(&mut self, c: u8, reason: &'static str) -> Result<(), Reason> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(reason.into())
        }
    }

    /// An unsigned number of `min..=max` digits.
    fn number(&mut self, min: usize, max: usize, what: &'static str) -> Result<u32, Reason> {
        let start = self.pos;
        let mut value: u32 = 0;
        while let Some(&c @ b'0'..=b'9') = self.bytes.get(self.pos) {
            if self.pos - start == max {
                return Err(format!("too many digits in the {what}").into());
            }
            value = value * 10 + u32::from(c - b'0');
            self.pos += 1;
        }
        if self.pos - start < min {
            return Err(format!("expected the {what}").into());
        }
        Ok(value)
    }

    /// `YYYY-MM-DD`; years may have more than four digits.
    fn date(&mut self) -> Result<(u32, u32, u32), Reason> {
        let year = self.number(1, 7, "year")?;
        self.expect(b'-', "expected '-' after the year")?;
        let month = self.number(1, 2, "month")?;
        self.expect(b'-', "expected '-' after the month")?;
        let day = self.number(1, 2, "day")?;
        Ok((year, month, day))
    }

    /// `HH:MM:SS[.f…]` as microseconds since midnight, `24:00:00` included.
    fn time_of_day(&mut self) -> Result<i64, Reason> {
        let hour = self.number(1, 2, "hour")?;
        self.expect(b':', "expected ':' after the hour")?;
        let minute = self.number(2, 2, "minutes")?;
        self.expect(b':', "expected ':' after the minutes")?;
        let second = self.number(2, 2, "seconds")?;
        let mut fraction: i64 = 0;
        if self.eat(b'.') {
            let start = self.pos;
            let digits = self.number(1, 6, "fraction of a second")?;
            let width = self.pos - start;
            fraction = i64::from(digits) * 10i64.pow(6 - width as u32);
        }
        if minute > 59 || second > 59 || hour > 24 || (hour == 24 && (minute, second, fraction) != (0, 0, 0)) {
            return Err("time of day out of range".into());
        }
        Ok((i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second)) * MICROS_PER_SECOND + fraction)
    }

    /// `±HH[:MM[:SS]]` as seconds east of UTC.
    fn utc_offset(&mut self) -> Result<i64, Reason> {
        let sign = if self.eat(b'+') {
            1
        } else if self.eat(b'-') {
            -1
        } else {
            return Err("expected a UTC offset (+HH[:MM[:SS]])".into());
        };
        let hours = self.number(1, 2, "offset hours")?;
        let mut minutes = 0;
        let mut seconds = 0;
        if self.eat(b':') {
            minutes = self.number(2, 2, "offset minutes")?;
            if self.eat(b':') {
                seconds = self.number(2, 2, "offset seconds")?;
            }
        }
        if minutes > 59 || seconds > 59 {
            return Err("UTC offset out of range".into());
        }
        Ok(sign * (i64::from(hours) * 3600 + i64::from(minutes) * 60 + i64::from(seconds)))
    }

    /// The ` BC` era suffix.
    fn eat_bc(&mut self) -> bool {
        let hit = self.bytes[self.pos..].starts_with(b" BC");
        if hit {
            self.pos += 3;
        }
        hit
    }

    fn finish(&self) -> Result<(), Reason> {
        if self.pos == self.bytes.len() {
            Ok(())
        } else {
            Err("unexpected text at the end".into())
        }
    }
}

/// `Decimal(10,2)`, `Time(3)`, `Array<Int32>`, `Text`: for error messages.
fn type_label(column_type: &ColumnType) -> String {
    match column_type {
        ColumnType::Decimal { precision, scale } => format!("Decimal({precision},{scale})"),
        ColumnType::Time { fsp } => format!("Time({fsp})"),
        ColumnType::Array { element } => format!("Array<{}>", type_label(element)),
        other => format!("{other:?}"),
    }
}

/// At most [`MAX_ERROR_TEXT_CHARS`] characters, with `…` when cut.
fn truncate(text: &str) -> String {
    match text.char_indices().nth(MAX_ERROR_TEXT_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(column_type: &ColumnType, text: &str) -> Value {
        parse_text(column_type, text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn fails(column_type: &ColumnType, text: &str) -> String {
        match parse_text(column_type, text) {
            Ok(v) => panic!("{text:?} read as {v:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn decimal(precision: u8, scale: u8) -> ColumnType {
        ColumnType::Decimal { precision, scale }
    }

    fn array(element: ColumnType) -> ColumnType {
        ColumnType::Array { element: Box::new(element) }
    }

    fn text(s: &str) -> Value {
        Value::Text(s.to_string())
    }

    /// Microseconds since 1970-01-01 00:00:00 of a date-time on or after 1970.
    fn micros(days: i64, h: i64, m: i64, s: i64, us: i64) -> i64 {
        ((days * 24 + h) * 60 + m) * 60 * 1_000_000 + s * 1_000_000 + us
    }

    #[test]
    fn booleans() {
        assert_eq!(parse(&ColumnType::Bool, "t"), Value::Bool(true));
        assert_eq!(parse(&ColumnType::Bool, "f"), Value::Bool(false));
        assert_eq!(parse(&ColumnType::Bool, "true"), Value::Bool(true));
        assert_eq!(parse(&ColumnType::Bool, "FALSE"), Value::Bool(false));
        fails(&ColumnType::Bool, "yes please");
    }

    #[test]
    fn integers_of_each_width() {
        assert_eq!(parse(&ColumnType::Int16, "-32768"), Value::Int(-32768));
        assert_eq!(parse(&ColumnType::Int32, "2147483647"), Value::Int(2147483647));
        assert_eq!(parse(&ColumnType::Int64, "-9223372036854775808"), Value::Int(i64::MIN));
        assert_eq!(parse(&ColumnType::Int8, "-128"), Value::Int(-128));
    }

    #[test]
    fn integers_out_of_range_or_malformed_are_errors() {
        assert!(fails(&ColumnType::Int16, "32768").contains("out of range"));
        assert!(fails(&ColumnType::Int32, "1.5").contains("not an integer"));
        fails(&ColumnType::Int64, "");
    }

    #[test]
    fn uint64_is_never_produced() {
        fails(&ColumnType::UInt64, "1");
    }

    #[test]
    fn floats_with_special_values() {
        assert_eq!(parse(&ColumnType::Float32, "1.5"), Value::Float(1.5));
        assert_eq!(parse(&ColumnType::Float64, "-2.5e-10"), Value::Double(-2.5e-10));
        assert_eq!(parse(&ColumnType::Float64, "1.2345678901234567e+300"), Value::Double(1.2345678901234567e300));
        assert_eq!(parse(&ColumnType::Float64, "Infinity"), Value::Double(f64::INFINITY));
        assert_eq!(parse(&ColumnType::Float32, "-Infinity"), Value::Float(f32::NEG_INFINITY));
        assert!(matches!(parse(&ColumnType::Float64, "NaN"), Value::Double(f) if f.is_nan()));
        assert!(matches!(parse(&ColumnType::Float32, "NaN"), Value::Float(f) if f.is_nan()));
        fails(&ColumnType::Float64, "1,5");
    }

    #[test]
    fn decimals_are_rescaled_exactly_to_the_column_scale() {
        let ty = decimal(10, 2);
        assert_eq!(parse(&ty, "123.45"), Value::Decimal { unscaled: 12345, scale: 2 });
        assert_eq!(parse(&ty, "123.4"), Value::Decimal { unscaled: 12340, scale: 2 });
        assert_eq!(parse(&ty, "123"), Value::Decimal { unscaled: 12300, scale: 2 });
        assert_eq!(parse(&ty, "-0.50"), Value::Decimal { unscaled: -50, scale: 2 });
        assert_eq!(parse(&ty, "0.00"), Value::Decimal { unscaled: 0, scale: 2 });
        assert_eq!(parse(&ty, "99999999.99"), Value::Decimal { unscaled: 9999999999, scale: 2 });
        assert_eq!(parse(&decimal(5, 0), "-42"), Value::Decimal { unscaled: -42, scale: 0 });
    }

    #[test]
    fn decimal_fraction_beyond_the_scale_is_an_error_not_rounded() {
        let err = fails(&decimal(10, 2), "1.005");
        assert!(err.contains("more fraction digits than the scale 2") && err.contains("1.005"), "{err}");
        fails(&decimal(5, 0), "1.5");
        // Trailing zeros beyond the scale are exact and accepted.
        assert_eq!(parse(&decimal(10, 2), "1.500"), Value::Decimal { unscaled: 150, scale: 2 });
    }

    #[test]
    fn decimal_wider_than_the_precision_is_an_error() {
        let err = fails(&decimal(4, 2), "100.00");
        assert!(err.contains("does not fit decimal(4,2)"), "{err}");
        assert_eq!(parse(&decimal(4, 2), "-99.99"), Value::Decimal { unscaled: -9999, scale: 2 });
    }

    #[test]
    fn decimal_of_38_digits_is_exact() {
        let max = "9".repeat(38);
        assert_eq!(parse(&decimal(38, 0), &max), Value::Decimal { unscaled: 10i128.pow(38) - 1, scale: 0 });
        let tiny = format!("-0.{}1", "0".repeat(37));
        assert_eq!(parse(&decimal(38, 38), &tiny), Value::Decimal { unscaled: -1, scale: 38 });
        fails(&decimal(38, 0), &"9".repeat(39));
    }

    #[test]
    fn decimal_nan_is_null_and_infinity_is_refused() {
        assert_eq!(parse(&decimal(10, 2), "NaN"), Value::Null);
        fails(&decimal(10, 2), "Infinity");
        fails(&decimal(10, 2), "-Infinity");
    }

    #[test]
    fn malformed_decimals_are_errors() {
        for bad in ["", "-", ".", "1.2.3", "1e5", "12a", " 1"] {
            fails(&decimal(10, 2), bad);
        }
    }

    #[test]
    fn dates_around_the_epoch_and_leap_days() {
        assert_eq!(parse(&ColumnType::Date, "1970-01-01"), Value::Date(0));
        assert_eq!(parse(&ColumnType::Date, "1969-12-31"), Value::Date(-1));
        assert_eq!(parse(&ColumnType::Date, "2024-02-29"), Value::Date(19782));
        assert_eq!(parse(&ColumnType::Date, "2000-03-01"), Value::Date(11017));
        assert_eq!(parse(&ColumnType::Date, "1900-03-01"), Value::Date(-25508));
        assert_eq!(parse(&ColumnType::Date, "0001-01-01"), Value::Date(-719162));
        assert_eq!(parse(&ColumnType::Date, "9999-12-31"), Value::Date(2932896));
    }

    #[test]
    fn impossible_dates_are_errors() {
        fails(&ColumnType::Date, "2023-02-29");
        fails(&ColumnType::Date, "1900-02-29");
        fails(&ColumnType::Date, "2024-04-31");
        fails(&ColumnType::Date, "2024-13-01");
        fails(&ColumnType::Date, "2024-00-10");
        fails(&ColumnType::Date, "0000-01-01");
        fails(&ColumnType::Date, "2024-01-01x");
        fails(&ColumnType::Date, "01/02/2024");
    }

    #[test]
    fn bc_dates_use_astronomical_years() {
        // 1 BC is astronomical year 0, a leap year.
        assert_eq!(parse(&ColumnType::Date, "0001-12-31 BC"), Value::Date(-719163));
        assert_eq!(parse(&ColumnType::Date, "0001-02-29 BC"), Value::Date(-719469));
        assert_eq!(parse(&ColumnType::Date, "0044-03-15 BC"), Value::Date(-735160));
        // PostgreSQL's earliest date, Julian day 0.
        assert_eq!(parse(&ColumnType::Date, "4714-11-24 BC"), Value::Date(-2440588));
        // 2 BC (astronomical -1) is not a leap year.
        fails(&ColumnType::Date, "0002-02-29 BC");
    }

    #[test]
    fn infinite_dates_are_null() {
        assert_eq!(parse(&ColumnType::Date, "infinity"), Value::Null);
        assert_eq!(parse(&ColumnType::Date, "-infinity"), Value::Null);
    }

    #[test]
    fn postgresql_date_range_fits_and_beyond_is_an_error() {
        // PostgreSQL's last date (Julian day 2147483493).
        assert_eq!(parse(&ColumnType::Date, "5874897-12-31"), Value::Date(2147483493 - 2440588));
        assert!(fails(&ColumnType::Date, "9999999-01-01").contains("out of range"));
        assert_eq!(parse(&ColumnType::Date, "12345-01-01"), Value::Date(3789391));
    }

    #[test]
    fn times_of_day() {
        let ty = ColumnType::Time { fsp: 6 };
        assert_eq!(parse(&ty, "00:00:00"), Value::Time(0));
        assert_eq!(parse(&ty, "13:45:06.123456"), Value::Time(micros(0, 13, 45, 6, 123456)));
        assert_eq!(parse(&ty, "13:45:06.5"), Value::Time(micros(0, 13, 45, 6, 500000)));
        assert_eq!(parse(&ty, "23:59:59.999999"), Value::Time(micros(1, 0, 0, 0, 0) - 1));
        assert_eq!(parse(&ty, "24:00:00"), Value::Time(micros(1, 0, 0, 0, 0)));
    }

    #[test]
    fn impossible_times_are_errors() {
        let ty = ColumnType::Time { fsp: 6 };
        for bad in ["24:00:00.000001", "25:00:00", "12:60:00", "12:00:60", "12:00", "12:00:00.1234567", "12:00:00+02"] {
            fails(&ty, bad);
        }
    }

    #[test]
    fn timestamps_without_zone_keep_the_wall_clock() {
        let ty = ColumnType::TimestampNtz;
        assert_eq!(parse(&ty, "2024-01-02 03:04:05.123456"), Value::TimestampNtz(1704164645123456));
        assert_eq!(parse(&ty, "2024-01-02 03:04:05"), Value::TimestampNtz(1704164645000000));
        assert_eq!(parse(&ty, "1970-01-01 00:00:00"), Value::TimestampNtz(0));
        assert_eq!(parse(&ty, "1969-12-31 23:59:59.999999"), Value::TimestampNtz(-1));
        assert_eq!(parse(&ty, "1900-01-01 12:00:00"), Value::TimestampNtz(-2208945600000000));
        assert_eq!(parse(&ty, "2024-02-29T00:00:00"), Value::TimestampNtz(micros(19782, 0, 0, 0, 0)));
    }

    #[test]
    fn timestamps_without_zone_refuse_an_offset() {
        fails(&ColumnType::TimestampNtz, "2024-01-02 03:04:05+02");
    }

    #[test]
    fn bc_and_infinite_timestamps() {
        let ty = ColumnType::TimestampNtz;
        let day = -735160i64;
        assert_eq!(parse(&ty, "0044-03-15 12:30:00 BC"), Value::TimestampNtz(day * 86_400_000_000 + 45_000_000_000));
        assert_eq!(parse(&ty, "infinity"), Value::Null);
        assert_eq!(parse(&ty, "-infinity"), Value::Null);
        assert_eq!(parse(&ColumnType::Timestamp, "infinity"), Value::Null);
        assert_eq!(parse(&ColumnType::Timestamp, "-infinity"), Value::Null);
    }

    #[test]
    fn timestamps_with_zone_are_converted_to_utc() {
        let ty = ColumnType::Timestamp;
        assert_eq!(parse(&ty, "2024-01-02 03:04:05.5+02"), Value::Timestamp(1704157445500000));
        assert_eq!(parse(&ty, "2024-01-02 03:04:05+00"), Value::Timestamp(1704164645000000));
        assert_eq!(parse(&ty, "2024-01-02 05:30:00+05:30"), Value::Timestamp(micros(19724, 0, 0, 0, 0)));
        assert_eq!(parse(&ty, "2024-01-01 21:00:00-03:00"), Value::Timestamp(micros(19724, 0, 0, 0, 0)));
        assert_eq!(parse(&ty, "1970-01-01 00:53:28+00:53:28"), Value::Timestamp(0));
        assert_eq!(parse(&ty, "1969-12-31 19:00:00-05"), Value::Timestamp(0));
    }

    #[test]
    fn timestamps_with_zone_before_1970_and_bc() {
        let ty = ColumnType::Timestamp;
        assert_eq!(parse(&ty, "1969-12-31 23:00:00-01"), Value::Timestamp(0));
        assert_eq!(parse(&ty, "1969-12-31 23:59:59.999999+00"), Value::Timestamp(-1));
        // The era comes after the offset; a negative offset adds.
        let day = -735160i64;
        assert_eq!(
            parse(&ty, "0044-03-15 10:00:00-00:01:15 BC"),
            Value::Timestamp(day * 86_400_000_000 + 36_075_000_000)
        );
    }

    #[test]
    fn timestamps_with_zone_need_an_offset() {
        fails(&ColumnType::Timestamp, "2024-01-02 03:04:05");
        fails(&ColumnType::Timestamp, "2024-01-02 03:04:05 UTC");
        fails(&ColumnType::Timestamp, "2024-01-02 03:04:05+02:60");
    }

    #[test]
    fn timestamps_outside_i64_micros_are_errors() {
        assert!(fails(&ColumnType::TimestampNtz, "294276-12-31 23:59:59").contains("out of range"));
    }

    #[test]
    fn text_and_json_are_kept_as_is() {
        assert_eq!(parse(&ColumnType::Text, "  padded  "), text("  padded  "));
        assert_eq!(parse(&ColumnType::Text, ""), text(""));
        assert_eq!(parse(&ColumnType::Json, r#"{"a": [1, 2]}"#), Value::Json(r#"{"a": [1, 2]}"#.into()));
    }

    #[test]
    fn bytea_hex_format() {
        assert_eq!(parse(&ColumnType::Bytes, "\\x0a0b"), Value::Bytes(vec![0x0a, 0x0b]));
        assert_eq!(parse(&ColumnType::Bytes, "\\xDEADbeef"), Value::Bytes(vec![0xde, 0xad, 0xbe, 0xef]));
        assert_eq!(parse(&ColumnType::Bytes, "\\x"), Value::Bytes(vec![]));
        fails(&ColumnType::Bytes, "\\x0a0");
        fails(&ColumnType::Bytes, "\\x0g");
    }

    #[test]
    fn bytea_escape_format() {
        assert_eq!(
            parse(&ColumnType::Bytes, "ab\\000\\\\c\\377"),
            Value::Bytes(vec![b'a', b'b', 0, b'\\', b'c', 0xff])
        );
        assert_eq!(parse(&ColumnType::Bytes, ""), Value::Bytes(vec![]));
        fails(&ColumnType::Bytes, "a\\9");
        fails(&ColumnType::Bytes, "a\\");
    }

    #[test]
    fn integer_arrays_with_nulls() {
        let ty = array(ColumnType::Int32);
        assert_eq!(parse(&ty, "{1,2,NULL}"), Value::Array(vec![Value::Int(1), Value::Int(2), Value::Null]));
        assert_eq!(parse(&ty, "{-5}"), Value::Array(vec![Value::Int(-5)]));
        assert_eq!(parse(&ty, "{}"), Value::Array(vec![]));
        assert_eq!(parse(&ty, " { 1 , null } "), Value::Array(vec![Value::Int(1), Value::Null]));
    }

    #[test]
    fn text_arrays_with_quotes_escapes_and_the_string_null() {
        let ty = array(ColumnType::Text);
        let got = parse(&ty, r#"{"a b","with \"quote\"","back\\slash",NULL,"NULL",plain,"",é,"{x,y}"}"#);
        assert_eq!(
            got,
            Value::Array(vec![
                text("a b"),
                text("with \"quote\""),
                text("back\\slash"),
                Value::Null,
                text("NULL"),
                text("plain"),
                text(""),
                text("é"),
                text("{x,y}"),
            ])
        );
    }

    #[test]
    fn arrays_parse_elements_by_their_type() {
        assert_eq!(
            parse(&array(decimal(5, 2)), "{1.5,-0.25,NaN}"),
            Value::Array(vec![
                Value::Decimal { unscaled: 150, scale: 2 },
                Value::Decimal { unscaled: -25, scale: 2 },
                Value::Null
            ])
        );
        assert_eq!(
            parse(&array(ColumnType::Timestamp), r#"{"1970-01-01 01:00:00+01",infinity}"#),
            Value::Array(vec![Value::Timestamp(0), Value::Null])
        );
        assert_eq!(
            parse(&array(ColumnType::Bytes), r#"{"\\x0102","\\x"}"#),
            Value::Array(vec![Value::Bytes(vec![1, 2]), Value::Bytes(vec![])])
        );
        assert_eq!(
            parse(&array(ColumnType::Json), r#"{"{\"a\": 1}","[]"}"#),
            Value::Array(vec![Value::Json(r#"{"a": 1}"#.into()), Value::Json("[]".into())])
        );
        assert_eq!(parse(&array(ColumnType::Bool), "{t,f}"), Value::Array(vec![Value::Bool(true), Value::Bool(false)]));
    }

    #[test]
    fn array_bounds_decoration_is_skipped() {
        assert_eq!(parse(&array(ColumnType::Int16), "[0:1]={1,2}"), Value::Array(vec![Value::Int(1), Value::Int(2)]));
    }

    #[test]
    fn multi_dimensional_arrays_are_refused() {
        let err = fails(&array(ColumnType::Int32), "{{1,2},{3,4}}");
        assert!(err.contains("multi-dimensional arrays are not supported"), "{err}");
        fails(&array(ColumnType::Int32), "[1:2][1:2]={{1,2},{3,4}}");
    }

    #[test]
    fn a_bad_element_names_its_position() {
        let err = fails(&array(ColumnType::Int32), "{1,x,3}");
        assert!(err.contains("element 2 \"x\": not an integer"), "{err}");
    }

    #[test]
    fn malformed_array_literals_are_errors() {
        let ty = array(ColumnType::Text);
        for bad in ["", "1,2", "{1,2", "{\"a}", "{a,,b}", "{a}x", "{a\"b}", "[0:1]{1}", "{,}"] {
            fails(&ty, bad);
        }
    }

    #[test]
    fn error_names_the_type_and_cuts_long_text() {
        let long = "x".repeat(200);
        let err = parse_text(&decimal(10, 2), &long).unwrap_err();
        assert_eq!(err.column_type, "Decimal(10,2)");
        assert_eq!(err.text.chars().count(), MAX_ERROR_TEXT_CHARS + 1);
        assert!(err.text.ends_with('…'));
        let msg = err.to_string();
        assert!(msg.contains("Decimal(10,2)") && msg.len() < 200, "{msg}");
        assert_eq!(parse_text(&array(ColumnType::Int32), "x").unwrap_err().column_type, "Array<Int32>");
    }

    #[test]
    fn civil_days_match_a_day_by_day_walk() {
        // Walk from 1 BC (astronomical 0) to 2100 and compare with a running count.
        let mut expected = days_from_civil(0, 1, 1);
        for year in 0..=2100i64 {
            for month in 1..=12 {
                for day in 1..=days_in_month(year, month) {
                    assert_eq!(days_from_civil(year, month, day), expected, "{year}-{month}-{day}");
                    expected += 1;
                }
            }
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
    }
}
