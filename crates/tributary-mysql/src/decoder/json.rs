//! MySQL binary JSON (`mysql_common`'s jsonb) to JSON text as MySQL prints it
//! (`{"a": 1, "b": [1, 2]}`, object keys in MySQL's order: by length, then
//! bytes), and partial JSON updates (JSON diffs) applied to a document.

use std::cmp::Ordering;
use std::fmt::Write as _;

use mysql_common::binlog::jsonb::{self, JsonDom, JsonNumber, JsonScalar};
use mysql_common::binlog::jsondiff::{JsonDiff, JsonDiffOperation};

/// A JSON document that can be edited by JSON diffs and printed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Double(f64),
    /// A DECIMAL inside JSON, as its exact digits.
    Decimal(String),
    Str(String),
    Array(Vec<Json>),
    /// Members sorted the way MySQL stores them (see [`key_order`]).
    Object(Vec<(String, Json)>),
}

/// MySQL's order of object keys: shorter first, then byte-wise.
fn key_order(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.as_bytes().cmp(b.as_bytes()))
}

/// The text MySQL prints for a binary JSON value.
pub(crate) fn jsonb_to_text(value: &jsonb::Value<'_>) -> Result<String, String> {
    let doc = from_jsonb(value)?;
    Ok(to_text(&doc))
}

/// Reads a binary JSON value into an editable document.
pub(crate) fn from_jsonb(value: &jsonb::Value<'_>) -> Result<Json, String> {
    use jsonb::Value as V;
    Ok(match value {
        V::Null => Json::Null,
        V::Bool(b) => Json::Bool(*b),
        V::I16(x) => Json::Int(i64::from(*x)),
        V::U16(x) => Json::UInt(u64::from(*x)),
        V::I32(x) => Json::Int(i64::from(*x)),
        V::U32(x) => Json::UInt(u64::from(*x)),
        V::I64(x) => Json::Int(*x),
        V::U64(x) => Json::UInt(*x),
        V::F64(x) => Json::Double(*x),
        V::String(s) => Json::Str(utf8(s.str_raw())?),
        V::SmallArray(a) => Json::Array(a.iter().map(|v| from_jsonb(&v.map_err(bad)?)).collect::<Result<_, _>>()?),
        V::LargeArray(a) => Json::Array(a.iter().map(|v| from_jsonb(&v.map_err(bad)?)).collect::<Result<_, _>>()?),
        V::SmallObject(o) => object(o.iter().map(|kv| kv.map_err(bad)))?,
        V::LargeObject(o) => object(o.iter().map(|kv| kv.map_err(bad)))?,
        V::Opaque(_) => opaque(value.clone())?,
    })
}

/// An object from its stored entries (already in MySQL's key order).
fn object<'a>(
    entries: impl Iterator<Item = Result<(jsonb::ObjectKey<'a>, jsonb::Value<'a>), String>>,
) -> Result<Json, String> {
    let mut members = Vec::new();
    for entry in entries {
        let (key, value) = entry?;
        members.push((utf8(key.value_raw())?, from_jsonb(&value)?));
    }
    members.sort_by(|a, b| key_order(&a.0, &b.0));
    Ok(Json::Object(members))
}

/// Opaque values (DECIMAL, DATE, TIME, DATETIME, other column types) as MySQL prints them.
fn opaque(value: jsonb::Value<'_>) -> Result<Json, String> {
    let dom = value.parse().map_err(bad)?;
    Ok(match dom {
        JsonDom::Scalar(JsonScalar::Number(JsonNumber::Decimal(d))) => Json::Decimal(d.to_string()),
        JsonDom::Scalar(JsonScalar::DateTime(t)) => Json::Str(format!("{t:.6}")),
        JsonDom::Scalar(JsonScalar::Opaque(o)) => Json::Str(o.to_string()),
        other => return Err(format!("unexpected opaque JSON value {other:?}")),
    })
}

fn utf8(bytes: &[u8]) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|e| format!("JSON text is not UTF-8: {e}"))
}

fn bad(e: std::io::Error) -> String {
    format!("malformed binary JSON: {e}")
}

/// Prints a document as MySQL does.
pub(crate) fn to_text(doc: &Json) -> String {
    let mut out = String::with_capacity(64);
    write_json(doc, &mut out);
    out
}

fn write_json(doc: &Json, out: &mut String) {
    match doc {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Int(x) => {
            let _ = write!(out, "{x}");
        }
        Json::UInt(x) => {
            let _ = write!(out, "{x}");
        }
        Json::Double(x) => write_double(*x, out),
        Json::Decimal(d) => out.push_str(d),
        Json::Str(s) => write_string(s, out),
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_json(item, out);
            }
            out.push(']');
        }
        Json::Object(members) => {
            out.push('{');
            for (i, (key, value)) in members.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_string(key, out);
                out.push_str(": ");
                write_json(value, out);
            }
            out.push('}');
        }
    }
}

/// Shortest round-trip form (`1.5`, `3.0`, `1e20`); JSON has no NaN / infinity.
fn write_double(x: f64, out: &mut String) {
    match serde_json::Number::from_f64(x) {
        Some(n) => {
            let _ = write!(out, "{n}");
        }
        None => out.push_str("null"),
    }
}

fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// One step of a JSON path.
#[derive(Debug, Clone, PartialEq)]
enum Leg {
    Member(String),
    /// Array position; `from_end` counts back from the last element (`last-N`).
    Index {
        n: usize,
        from_end: bool,
    },
}

/// Parses the path of a JSON diff: `$`, `$.a`, `$."a b"`, `$[2]`, `$[last]`, `$[last-1]`, chained.
fn parse_path(path: &str) -> Result<Vec<Leg>, String> {
    let rest = path.trim().strip_prefix('$').ok_or_else(|| format!("JSON path '{path}' does not start with '$'"))?;
    let mut legs = Vec::new();
    let mut rest = rest.trim_start();
    while !rest.is_empty() {
        let (leg, tail) = if let Some(r) = rest.strip_prefix('.') {
            parse_member(r.trim_start(), path)?
        } else if let Some(r) = rest.strip_prefix('[') {
            parse_index(r, path)?
        } else {
            return Err(format!("cannot read JSON path '{path}' at '{rest}'"));
        };
        legs.push(leg);
        rest = tail.trim_start();
    }
    Ok(legs)
}

fn parse_member<'a>(s: &'a str, path: &str) -> Result<(Leg, &'a str), String> {
    if s.starts_with('"') {
        let end = closing_quote(s).ok_or_else(|| format!("unterminated quoted key in JSON path '{path}'"))?;
        let key: String =
            serde_json::from_str(&s[..=end]).map_err(|e| format!("bad quoted key in JSON path '{path}': {e}"))?;
        return Ok((Leg::Member(key), &s[end + 1..]));
    }
    let end = s.find(['.', '[']).unwrap_or(s.len());
    let key = s[..end].trim();
    if key.is_empty() || key.contains('*') {
        return Err(format!("unsupported member in JSON path '{path}'"));
    }
    Ok((Leg::Member(key.to_string()), &s[end..]))
}

/// Index of the quote closing the string that starts at `s[0]`.
fn closing_quote(s: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => return Some(i),
            _ => escaped = false,
        }
    }
    None
}

fn parse_index<'a>(s: &'a str, path: &str) -> Result<(Leg, &'a str), String> {
    let close = s.find(']').ok_or_else(|| format!("unterminated '[' in JSON path '{path}'"))?;
    let inner = s[..close].trim();
    let bad = || format!("unsupported array index '{inner}' in JSON path '{path}'");
    let leg = if let Some(back) = inner.strip_prefix("last") {
        let back = back.trim();
        let n = match back.strip_prefix('-') {
            Some(n) => n.trim().parse().map_err(|_| bad())?,
            None if back.is_empty() => 0,
            None => return Err(bad()),
        };
        Leg::Index { n, from_end: true }
    } else {
        Leg::Index { n: inner.parse().map_err(|_| bad())?, from_end: false }
    };
    Ok((leg, &s[close + 1..]))
}

/// The concrete position of an index leg in an array of `len` elements (may be `>= len`).
fn position(n: usize, from_end: bool, len: usize) -> Option<usize> {
    if from_end {
        (len.checked_sub(1)?).checked_sub(n)
    } else {
        Some(n)
    }
}

/// Applies one JSON diff to `doc` the way MySQL's `apply_json_diffs` does.
pub(crate) fn apply_diff(doc: &mut Json, diff: &JsonDiff<'_>) -> Result<(), String> {
    let path = diff.path_str().into_owned();
    let legs = parse_path(&path)?;
    let value = match diff.value() {
        Some(v) => Some(from_jsonb(v)?),
        None => None,
    };
    let op = diff.operation();
    let Some((last, parents)) = legs.split_last() else {
        return match (op, value) {
            (JsonDiffOperation::REPLACE, Some(v)) => {
                *doc = v;
                Ok(())
            }
            _ => Err(format!("{op:?} of the whole document '$' is not a valid JSON diff")),
        };
    };
    let parent = seek(doc, parents).ok_or_else(|| format!("path '{path}' does not exist in the before image"))?;
    match op {
        JsonDiffOperation::REPLACE => replace(parent, last, need(value, &path)?, &path),
        JsonDiffOperation::INSERT => insert(parent, last, need(value, &path)?, &path),
        JsonDiffOperation::REMOVE => remove(parent, last, &path),
    }
}

fn need(value: Option<Json>, path: &str) -> Result<Json, String> {
    value.ok_or_else(|| format!("JSON diff at '{path}' carries no value"))
}

/// The value at `legs` below `doc`, if it exists.
fn seek<'a>(doc: &'a mut Json, legs: &[Leg]) -> Option<&'a mut Json> {
    let Some((first, rest)) = legs.split_first() else { return Some(doc) };
    let next = match (doc, first) {
        (Json::Object(members), Leg::Member(key)) => {
            let i = members.binary_search_by(|(k, _)| key_order(k, key)).ok()?;
            &mut members[i].1
        }
        (Json::Array(items), Leg::Index { n, from_end }) => {
            let i = position(*n, *from_end, items.len())?;
            items.get_mut(i)?
        }
        // MySQL: `$[0]` / `$[last]` of a non-array is the value itself.
        (scalar, Leg::Index { n: 0, .. }) => scalar,
        _ => return None,
    };
    seek(next, rest)
}

fn replace(parent: &mut Json, leg: &Leg, value: Json, path: &str) -> Result<(), String> {
    let missing = || format!("path '{path}' does not exist in the before image");
    match (parent, leg) {
        (Json::Object(members), Leg::Member(key)) => {
            let i = members.binary_search_by(|(k, _)| key_order(k, key)).map_err(|_| missing())?;
            members[i].1 = value;
        }
        (Json::Array(items), Leg::Index { n, from_end }) => {
            let i = position(*n, *from_end, items.len()).filter(|i| *i < items.len()).ok_or_else(missing)?;
            items[i] = value;
        }
        (scalar, Leg::Index { n: 0, .. }) => *scalar = value,
        _ => return Err(missing()),
    }
    Ok(())
}

fn insert(parent: &mut Json, leg: &Leg, value: Json, path: &str) -> Result<(), String> {
    match (parent, leg) {
        (Json::Object(members), Leg::Member(key)) => match members.binary_search_by(|(k, _)| key_order(k, key)) {
            Ok(i) => members[i].1 = value,
            Err(i) => members.insert(i, (key.clone(), value)),
        },
        (Json::Array(items), Leg::Index { n, from_end }) => {
            let i = position(*n, *from_end, items.len()).unwrap_or(0).min(items.len());
            items.insert(i, value);
        }
        _ => return Err(format!("cannot insert at '{path}': its parent is not an object or array of that kind")),
    }
    Ok(())
}

fn remove(parent: &mut Json, leg: &Leg, path: &str) -> Result<(), String> {
    let missing = || format!("path '{path}' to remove does not exist in the before image");
    match (parent, leg) {
        (Json::Object(members), Leg::Member(key)) => {
            let i = members.binary_search_by(|(k, _)| key_order(k, key)).map_err(|_| missing())?;
            members.remove(i);
        }
        (Json::Array(items), Leg::Index { n, from_end }) => {
            let i = position(*n, *from_end, items.len()).filter(|i| *i < items.len()).ok_or_else(missing)?;
            items.remove(i);
        }
        _ => return Err(missing()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_common::io::ParseBuf;

    /// A JSON diff as the binlog encodes it: operation, path, value (binary JSON).
    fn diff(op: u8, path: &str, value: Option<&[u8]>) -> JsonDiff<'static> {
        let mut bytes = vec![op, path.len() as u8];
        bytes.extend_from_slice(path.as_bytes());
        if let Some(v) = value {
            bytes.push(v.len() as u8);
            bytes.extend_from_slice(v);
        }
        let d: JsonDiff<'_> = ParseBuf(&bytes).parse(()).unwrap();
        d.into_owned()
    }

    /// Binary JSON int16.
    fn int(x: i16) -> Vec<u8> {
        let mut v = vec![0x05];
        v.extend_from_slice(&x.to_le_bytes());
        v
    }

    /// Binary JSON string (short).
    fn string(s: &str) -> Vec<u8> {
        let mut v = vec![0x0c, s.len() as u8];
        v.extend_from_slice(s.as_bytes());
        v
    }

    fn doc() -> Json {
        Json::Object(vec![
            ("age".into(), Json::Int(24)),
            ("data".into(), Json::Array(vec![Json::Int(1), Json::Int(2)])),
            ("name".into(), Json::Str("Joe".into())),
        ])
    }

    #[test]
    fn prints_like_mysql_with_spaces_after_separators() {
        assert_eq!(to_text(&doc()), r#"{"age": 24, "data": [1, 2], "name": "Joe"}"#);
        assert_eq!(to_text(&Json::Array(vec![])), "[]");
        assert_eq!(to_text(&Json::Object(vec![])), "{}");
        assert_eq!(to_text(&Json::Double(3.0)), "3.0");
        assert_eq!(to_text(&Json::Decimal("123.456".into())), "123.456");
        assert_eq!(to_text(&Json::Str("a\"b\\c\nd\u{1}é".into())), r#""a\"b\\c\nd\u0001é""#);
    }

    #[test]
    fn reads_a_binary_small_object_in_stored_order() {
        // {"b": 1, "aa": "x"}: MySQL stores keys by length, so "b" comes first.
        let bytes = [
            0x00, // small object
            2, 0, 23, 0, // count 2, size 23
            18, 0, 1, 0, // key "b" at 18
            19, 0, 2, 0, // key "aa" at 19
            0x05, 1, 0, // int16 1 inline
            0x0c, 21, 0, // string at 21
            b'b', b'a', b'a', 1, b'x',
        ];
        let v: jsonb::Value<'_> = ParseBuf(&bytes).parse(()).unwrap();
        assert_eq!(jsonb_to_text(&v).unwrap(), r#"{"b": 1, "aa": "x"}"#);
    }

    #[test]
    fn replace_diff_changes_a_member() {
        let mut d = doc();
        apply_diff(&mut d, &diff(0, "$.age", Some(&int(26)))).unwrap();
        assert_eq!(to_text(&d), r#"{"age": 26, "data": [1, 2], "name": "Joe"}"#);
    }

    #[test]
    fn insert_diff_adds_members_in_mysql_key_order_and_array_elements() {
        let mut d = doc();
        apply_diff(&mut d, &diff(1, "$.zz", Some(&string("new")))).unwrap();
        apply_diff(&mut d, &diff(1, "$.data[1]", Some(&int(9)))).unwrap();
        apply_diff(&mut d, &diff(1, "$.data[99]", Some(&int(7)))).unwrap();
        assert_eq!(to_text(&d), r#"{"zz": "new", "age": 24, "data": [1, 9, 2, 7], "name": "Joe"}"#);
    }

    #[test]
    fn remove_diff_deletes_members_and_elements() {
        let mut d = doc();
        apply_diff(&mut d, &diff(2, "$.name", None)).unwrap();
        apply_diff(&mut d, &diff(2, "$.data[last]", None)).unwrap();
        assert_eq!(to_text(&d), r#"{"age": 24, "data": [1]}"#);
    }

    #[test]
    fn quoted_keys_and_whole_document_replace_work() {
        let mut d = Json::Object(vec![("a b".into(), Json::Int(1))]);
        apply_diff(&mut d, &diff(0, r#"$."a b""#, Some(&int(2)))).unwrap();
        assert_eq!(to_text(&d), r#"{"a b": 2}"#);
        apply_diff(&mut d, &diff(0, "$", Some(&string("s")))).unwrap();
        assert_eq!(to_text(&d), r#""s""#);
    }

    #[test]
    fn a_diff_on_a_missing_path_is_an_error() {
        let mut d = doc();
        let err = apply_diff(&mut d, &diff(0, "$.nope.x", Some(&int(1)))).unwrap_err();
        assert!(err.contains("$.nope.x"), "{err}");
        assert!(apply_diff(&mut d, &diff(2, "$.data[5]", None)).is_err());
        assert!(parse_path("$.a[x]").is_err());
        assert!(parse_path("a.b").is_err());
    }

    #[test]
    fn paths_parse_into_legs() {
        assert_eq!(
            parse_path(r#"$.a[3]."x.y"[last-1]"#).unwrap(),
            vec![
                Leg::Member("a".into()),
                Leg::Index { n: 3, from_end: false },
                Leg::Member("x.y".into()),
                Leg::Index { n: 1, from_end: true },
            ]
        );
    }
}
