//! One canonical rendering for both sides: every value goes through
//! [`tributary_delta::value_to_json`] (the renderer of `tributary changes`), so
//! a source value and the value decoded back from Delta compare equal exactly
//! when the mirror holds what the source holds. Decimals stored as text in
//! Delta (precision > 38) render like exact decimals, as strings.

use tributary_core::Value;

/// A value's canonical JSON. BIGINT UNSIGNED is a core `UInt` at the source
/// but a `DECIMAL(20,0)` in Delta (docs/types.md): both render as exact decimals.
fn canonical_json(value: &Value) -> serde_json::Value {
    match value {
        Value::UInt(u) => tributary_delta::value_to_json(&Value::Decimal { unscaled: *u as i128, scale: 0 }),
        other => tributary_delta::value_to_json(other),
    }
}

/// A value's canonical text.
pub fn canonical(value: &Value) -> String {
    canonical_json(value).to_string()
}

/// The key of a row: the canonical texts of its key columns as a JSON array.
pub fn key_text(key: &[&Value]) -> String {
    let parts: Vec<serde_json::Value> = key.iter().map(|v| canonical_json(v)).collect();
    serde_json::Value::Array(parts).to_string()
}

/// A 64-bit hash of a key text: what the mirror index stores instead of the key.
pub fn key_hash(key_text: &str) -> u64 {
    let mut hash = Fnv::new();
    hash.write(key_text.as_bytes());
    hash.finish()
}

/// FNV-1a (64 bit) over the canonical texts of all columns (key included), unit-separated.
pub fn row_checksum<'a>(values: impl IntoIterator<Item = &'a Value>) -> u64 {
    let mut hash = Fnv::new();
    for value in values {
        hash.write(canonical(value).as_bytes());
        hash.write(&[0x1f]);
    }
    hash.finish()
}

struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_have_equal_checksums_and_a_change_shows() {
        let a = [Value::Int(1), Value::Text("x".into()), Value::Decimal { unscaled: 150, scale: 2 }];
        let b = [Value::Int(1), Value::Text("x".into()), Value::Text("1.50".into())];
        assert_eq!(row_checksum(&a), row_checksum(&b), "a decimal stored as text matches");
        let c = [Value::Int(1), Value::Text("y".into()), Value::Decimal { unscaled: 150, scale: 2 }];
        assert_ne!(row_checksum(&a), row_checksum(&c));
        assert_ne!(row_checksum(&[Value::Null]), row_checksum(&[Value::Text("null".into())]));
        assert_eq!(key_text(&[&Value::Int(3), &Value::Text("a".into())]), r#"[3,"a"]"#);
        let unsigned = Value::UInt(u64::MAX);
        let as_decimal = Value::Decimal { unscaled: u64::MAX as i128, scale: 0 };
        assert_eq!(row_checksum([&unsigned]), row_checksum([&as_decimal]), "BIGINT UNSIGNED is DECIMAL(20,0) in Delta");
        assert_eq!(key_text(&[&unsigned]), key_text(&[&as_decimal]));
    }
}
