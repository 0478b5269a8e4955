//! Primary-key values: hashable and ordered, built from core [`Value`]s and from
//! arrow columns alike, plus per-file key bounds that say which data files can
//! hold a key (so an update reads only those files).

use crate::schema::decimal_as_text;
use deltalake::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Int16Array, Int32Array,
    Int64Array, Int8Array, StringArray, TimestampMicrosecondArray,
};
use deltalake::arrow::datatypes::DataType as ArrowType;
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use tributary_core::{ColumnType, Value};

/// A fast, non-cryptographic hasher for key maps (the FxHash mix with a final
/// rotation so that keys differing only in high bits spread over buckets).
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher {
    hash: u64,
}

const FX_SEED: u64 = 0xf135_7aea_2e62_a9c5;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash ^ word).wrapping_mul(FX_SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_u128(&mut self, i: u128) {
        self.add(i as u64);
        self.add((i >> 64) as u64);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.hash.rotate_left(26)
    }
}

/// A hash map keyed by primary-key values.
pub(crate) type KeyMap<V> = HashMap<Key, V, BuildHasherDefault<FxHasher>>;
/// A set of primary-key values.
pub(crate) type KeySet = HashSet<Key, BuildHasherDefault<FxHasher>>;

/// One column of a primary-key value. All parts of one column have the same
/// variant (fixed by the column type), so the derived order is the column's
/// order: integers numerically, decimals by unscaled value at the column's
/// scale, text by UTF-8 bytes (as Delta statistics compare strings).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum KeyPart {
    Null,
    Bool(bool),
    /// Signed integers, dates (days) and timestamps (microseconds).
    Int(i64),
    /// Decimals (unscaled, at the column's scale) and unsigned 64-bit integers.
    Dec(i128),
    /// Floats by their canonical bit pattern; never used for pruning.
    Float(u64),
    Str(String),
    Bytes(Vec<u8>),
}

/// A whole primary-key value. Single-column keys (the common case) need no
/// heap allocation for numeric columns.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Key {
    One(KeyPart),
    Many(Vec<KeyPart>),
}

impl Key {
    pub fn part(&self, i: usize) -> &KeyPart {
        match self {
            Key::One(p) => p,
            Key::Many(ps) => &ps[i],
        }
    }
}

impl std::fmt::Display for KeyPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyPart::Null => f.write_str("NULL"),
            KeyPart::Bool(b) => write!(f, "{b}"),
            KeyPart::Int(i) => write!(f, "{i}"),
            KeyPart::Dec(d) => write!(f, "{d}"),
            KeyPart::Float(bits) => write!(f, "{}", f64::from_bits(*bits)),
            KeyPart::Str(s) => write!(f, "{s:?}"),
            KeyPart::Bytes(b) => write!(f, "0x{}", crate::encode::hex(b)),
        }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::One(p) => write!(f, "{p}"),
            Key::Many(ps) => {
                f.write_str("(")?;
                for (i, p) in ps.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{p}")?;
                }
                f.write_str(")")
            }
        }
    }
}

fn canonical_float(f: f64) -> u64 {
    if f.is_nan() {
        f64::NAN.to_bits()
    } else if f == 0.0 {
        0.0f64.to_bits()
    } else {
        f.to_bits()
    }
}

/// The key part of a core value in a column of type `ty`, as stored (so the
/// part of a source value equals the part read back from the file).
pub(crate) fn part_of_value(value: &Value, ty: &ColumnType) -> KeyPart {
    match (value, ty) {
        (Value::Null | Value::Unchanged, _) => KeyPart::Null,
        (Value::Bool(b), _) => KeyPart::Bool(*b),
        (Value::Int(i), ColumnType::UInt64) => KeyPart::Dec(*i as i128),
        (Value::UInt(u), ColumnType::UInt64) => KeyPart::Dec(*u as i128),
        (Value::Int(i), ColumnType::Decimal { precision, scale }) if !decimal_as_text(*precision) => {
            KeyPart::Dec(crate::encode::rescale(*i as i128, 0, *scale).unwrap_or(i128::MAX))
        }
        (Value::Decimal { unscaled, scale: from }, ColumnType::Decimal { precision, scale })
            if !decimal_as_text(*precision) =>
        {
            KeyPart::Dec(crate::encode::rescale(*unscaled, *from, (*scale).min(*precision)).unwrap_or(i128::MAX))
        }
        (Value::Decimal { unscaled, scale }, ColumnType::Decimal { .. }) => {
            KeyPart::Str(crate::encode::decimal_text(*unscaled, *scale))
        }
        (Value::Int(i), _) => KeyPart::Int(*i),
        (Value::UInt(u), _) => KeyPart::Int(*u as i64),
        (Value::Float(f), _) => KeyPart::Float(canonical_float(*f as f64)),
        (Value::Double(f), _) => KeyPart::Float(canonical_float(*f)),
        (Value::Decimal { unscaled, .. }, _) => KeyPart::Dec(*unscaled),
        (Value::Date(d), _) => KeyPart::Int(*d as i64),
        (Value::Time(us), ColumnType::Time { fsp }) => KeyPart::Str(crate::encode::time_text(*us, *fsp)),
        (Value::Time(us), _) => KeyPart::Int(*us),
        (Value::Timestamp(us) | Value::TimestampNtz(us), _) => KeyPart::Int(*us),
        (Value::Text(s) | Value::Json(s), ColumnType::Bytes) => KeyPart::Bytes(s.as_bytes().to_vec()),
        (Value::Text(s) | Value::Json(s), _) => KeyPart::Str(s.clone()),
        (Value::Bytes(b), ColumnType::Text | ColumnType::Json) => KeyPart::Str(String::from_utf8_lossy(b).into_owned()),
        (Value::Bytes(b), _) => KeyPart::Bytes(b.clone()),
        (Value::Array(_), _) => KeyPart::Str(format!("{value:?}")),
    }
}

/// The key of a row (`pk` = key column indexes, `types` = their column types).
pub(crate) fn key_of_row(row: &[Value], pk: &[usize], types: &[&ColumnType]) -> Key {
    if pk.len() == 1 {
        Key::One(row.get(pk[0]).map_or(KeyPart::Null, |v| part_of_value(v, types[0])))
    } else {
        Key::Many(
            pk.iter().zip(types).map(|(&i, ty)| row.get(i).map_or(KeyPart::Null, |v| part_of_value(v, ty))).collect(),
        )
    }
}

/// Reads key parts out of one arrow column without per-row downcasts.
pub(crate) enum KeyColumn<'a> {
    Bool(&'a BooleanArray),
    I8(&'a Int8Array),
    I16(&'a Int16Array),
    I32(&'a Int32Array),
    I64(&'a Int64Array),
    Date(&'a Date32Array),
    Ts(&'a TimestampMicrosecondArray),
    Dec(&'a Decimal128Array),
    F32(&'a deltalake::arrow::array::Float32Array),
    F64(&'a deltalake::arrow::array::Float64Array),
    Str(&'a StringArray),
    Bin(&'a BinaryArray),
    Other(&'a ArrayRef),
}

impl<'a> KeyColumn<'a> {
    pub fn new(array: &'a ArrayRef) -> Self {
        match array.data_type() {
            ArrowType::Boolean => KeyColumn::Bool(array.as_boolean()),
            ArrowType::Int8 => KeyColumn::I8(array.as_primitive()),
            ArrowType::Int16 => KeyColumn::I16(array.as_primitive()),
            ArrowType::Int32 => KeyColumn::I32(array.as_primitive()),
            ArrowType::Int64 => KeyColumn::I64(array.as_primitive()),
            ArrowType::Date32 => KeyColumn::Date(array.as_primitive()),
            ArrowType::Timestamp(deltalake::arrow::datatypes::TimeUnit::Microsecond, _) => {
                KeyColumn::Ts(array.as_primitive())
            }
            ArrowType::Decimal128(_, _) => KeyColumn::Dec(array.as_primitive()),
            ArrowType::Float32 => KeyColumn::F32(array.as_primitive()),
            ArrowType::Float64 => KeyColumn::F64(array.as_primitive()),
            ArrowType::Utf8 => KeyColumn::Str(array.as_string()),
            ArrowType::Binary => KeyColumn::Bin(array.as_binary()),
            _ => KeyColumn::Other(array),
        }
    }

    pub fn part(&self, row: usize) -> KeyPart {
        let valid = match self {
            KeyColumn::Other(a) => a.is_valid(row),
            _ => self.as_array().is_valid(row),
        };
        if !valid {
            return KeyPart::Null;
        }
        match self {
            KeyColumn::Bool(a) => KeyPart::Bool(a.value(row)),
            KeyColumn::I8(a) => KeyPart::Int(a.value(row) as i64),
            KeyColumn::I16(a) => KeyPart::Int(a.value(row) as i64),
            KeyColumn::I32(a) => KeyPart::Int(a.value(row) as i64),
            KeyColumn::I64(a) => KeyPart::Int(a.value(row)),
            KeyColumn::Date(a) => KeyPart::Int(a.value(row) as i64),
            KeyColumn::Ts(a) => KeyPart::Int(a.value(row)),
            KeyColumn::Dec(a) => KeyPart::Dec(a.value(row)),
            KeyColumn::F32(a) => KeyPart::Float(canonical_float(a.value(row) as f64)),
            KeyColumn::F64(a) => KeyPart::Float(canonical_float(a.value(row))),
            KeyColumn::Str(a) => KeyPart::Str(a.value(row).to_string()),
            KeyColumn::Bin(a) => KeyPart::Bytes(a.value(row).to_vec()),
            KeyColumn::Other(a) => {
                KeyPart::Str(format!("{:?}", crate::encode::decode_cell(a.as_ref(), row).unwrap_or(Value::Null)))
            }
        }
    }

    fn as_array(&self) -> &dyn Array {
        match self {
            KeyColumn::Bool(a) => *a,
            KeyColumn::I8(a) => *a,
            KeyColumn::I16(a) => *a,
            KeyColumn::I32(a) => *a,
            KeyColumn::I64(a) => *a,
            KeyColumn::Date(a) => *a,
            KeyColumn::Ts(a) => *a,
            KeyColumn::Dec(a) => *a,
            KeyColumn::F32(a) => *a,
            KeyColumn::F64(a) => *a,
            KeyColumn::Str(a) => *a,
            KeyColumn::Bin(a) => *a,
            KeyColumn::Other(a) => a.as_ref(),
        }
    }
}

/// Key extraction over the key columns of one record batch.
pub(crate) struct KeyReader<'a> {
    columns: Vec<KeyColumn<'a>>,
}

impl<'a> KeyReader<'a> {
    pub fn new(columns: &'a [ArrayRef]) -> Self {
        KeyReader { columns: columns.iter().map(KeyColumn::new).collect() }
    }

    pub fn key(&self, row: usize) -> Key {
        if self.columns.len() == 1 {
            Key::One(self.columns[0].part(row))
        } else {
            Key::Many(self.columns.iter().map(|c| c.part(row)).collect())
        }
    }
}

/// Per key column: the smallest and largest value a file holds, when known.
/// Unknown bounds make the file a candidate for every key.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct KeyBounds {
    pub min: Vec<Option<KeyPart>>,
    pub max: Vec<Option<KeyPart>>,
}

impl KeyBounds {
    pub fn unknown(n: usize) -> Self {
        KeyBounds { min: vec![None; n], max: vec![None; n] }
    }

    /// False only when the file certainly holds no row with this key.
    pub fn may_contain(&self, key: &Key) -> bool {
        for i in 0..self.min.len() {
            let part = key.part(i);
            if matches!(part, KeyPart::Null | KeyPart::Float(_)) {
                continue;
            }
            if let Some(min) = &self.min[i] {
                if same_variant_cmp(part, min) == Some(Ordering::Less) {
                    return false;
                }
            }
            if let Some(max) = &self.max[i] {
                if same_variant_cmp(part, max) == Some(Ordering::Greater) {
                    return false;
                }
            }
        }
        true
    }

    /// The range `[min, max]` of the first key column, when both ends are known.
    pub fn first_range(&self) -> Option<(&KeyPart, &KeyPart)> {
        match (self.min.first()?, self.max.first()?) {
            (Some(lo), Some(hi)) if !matches!(lo, KeyPart::Float(_)) => Some((lo, hi)),
            _ => None,
        }
    }
}

/// Orders two parts of the same variant; `None` for different variants.
fn same_variant_cmp(a: &KeyPart, b: &KeyPart) -> Option<Ordering> {
    if std::mem::discriminant(a) == std::mem::discriminant(b) {
        Some(a.cmp(b))
    } else {
        None
    }
}

/// A set of keys to look up, sorted, so the files that may hold one of them
/// are found with a binary search per file.
pub(crate) struct KeyLookup {
    sorted: Vec<Key>,
    /// The variant of every non-NULL first key part, when they all agree.
    first_variant: Option<std::mem::Discriminant<KeyPart>>,
    /// Number of keys whose first part is NULL (they sort first).
    leading_nulls: usize,
}

impl KeyLookup {
    pub fn new(keys: impl IntoIterator<Item = Key>) -> Self {
        let mut sorted: Vec<Key> = keys.into_iter().collect();
        sorted.sort();
        sorted.dedup();
        let leading_nulls = sorted.iter().take_while(|k| matches!(k.part(0), KeyPart::Null)).count();
        let mut variants = sorted[leading_nulls..].iter().map(|k| std::mem::discriminant(k.part(0)));
        let first_variant = match variants.next() {
            Some(v) if variants.all(|w| w == v) => Some(v),
            _ => None,
        };
        KeyLookup { sorted, first_variant, leading_nulls }
    }

    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// True when a file with these bounds may hold one of the keys.
    pub fn hits(&self, bounds: &KeyBounds) -> bool {
        if self.sorted.is_empty() {
            return false;
        }
        let range = bounds.first_range().filter(|(lo, hi)| {
            let v = Some(std::mem::discriminant(*lo));
            v == self.first_variant && v == Some(std::mem::discriminant(*hi))
        });
        let Some((lo, hi)) = range else {
            return self.sorted.iter().any(|k| bounds.may_contain(k));
        };
        // Keys are sorted by their first part (then the rest); look only at the
        // keys whose first part lies within [lo, hi], plus those with a NULL one.
        let start = self.sorted.partition_point(|k| k.part(0) < lo);
        for key in &self.sorted[start..] {
            if key.part(0) > hi {
                break;
            }
            if bounds.may_contain(key) {
                return true;
            }
        }
        self.sorted[..self.leading_nulls].iter().any(|k| bounds.may_contain(k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(lo: i64, hi: i64) -> KeyBounds {
        KeyBounds { min: vec![Some(KeyPart::Int(lo))], max: vec![Some(KeyPart::Int(hi))] }
    }

    #[test]
    fn bounds_exclude_keys_outside_the_range() {
        let b = bounds(10, 20);
        assert!(b.may_contain(&Key::One(KeyPart::Int(10))));
        assert!(b.may_contain(&Key::One(KeyPart::Int(20))));
        assert!(!b.may_contain(&Key::One(KeyPart::Int(9))));
        assert!(!b.may_contain(&Key::One(KeyPart::Int(21))));
        assert!(KeyBounds::unknown(1).may_contain(&Key::One(KeyPart::Int(21))));
    }

    #[test]
    fn lookup_finds_only_files_whose_range_holds_a_key() {
        let lookup = KeyLookup::new([5, 50, 500].map(|i| Key::One(KeyPart::Int(i))));
        assert!(lookup.hits(&bounds(0, 9)));
        assert!(!lookup.hits(&bounds(6, 49)));
        assert!(lookup.hits(&bounds(40, 60)));
        assert!(!lookup.hits(&bounds(501, 900)));
        assert!(lookup.hits(&KeyBounds::unknown(1)));
    }

    #[test]
    fn composite_keys_check_every_column() {
        let b = KeyBounds {
            min: vec![Some(KeyPart::Int(1)), Some(KeyPart::Str("b".into()))],
            max: vec![Some(KeyPart::Int(3)), Some(KeyPart::Str("d".into()))],
        };
        let k = |i, s: &str| Key::Many(vec![KeyPart::Int(i), KeyPart::Str(s.into())]);
        assert!(b.may_contain(&k(2, "c")));
        assert!(!b.may_contain(&k(2, "e")));
        assert!(!KeyLookup::new([k(2, "a"), k(4, "c")]).hits(&b));
        assert!(KeyLookup::new([k(2, "a"), k(3, "d")]).hits(&b));
    }

    #[test]
    fn value_and_stored_parts_agree() {
        use tributary_core::Value;
        assert_eq!(part_of_value(&Value::UInt(u64::MAX), &ColumnType::UInt64), KeyPart::Dec(u64::MAX as i128));
        let dec = ColumnType::Decimal { precision: 10, scale: 2 };
        assert_eq!(part_of_value(&Value::Decimal { unscaled: 15, scale: 1 }, &dec), KeyPart::Dec(150));
        assert_eq!(part_of_value(&Value::Text("x".into()), &ColumnType::Text), KeyPart::Str("x".into()));
    }
}
