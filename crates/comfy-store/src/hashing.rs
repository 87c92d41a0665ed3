//! Canonical JSON and SHA-256 digests. Content addressing of preset versions and argument digests in
//! the audit log both need a byte-exact form of a JSON value that does not depend on key order or
//! formatting, so two equal documents always get the same hash.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Serializes `value` with object keys sorted by their UTF-8 bytes and no whitespace.
pub fn canonical_json(value: &Value) -> String {
    let mut output = String::new();
    write_canonical(value, &mut output);
    output
}

fn write_canonical(value: &Value, output: &mut String) {
    match value {
        Value::Object(map) => {
            // Sorted explicitly: serde_json keeps insertion order when any crate in the build enables
            // its `preserve_order` feature.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|left, right| left.0.as_bytes().cmp(right.0.as_bytes()));
            output.push('{');
            for (index, (key, item)) in entries.into_iter().enumerate() {
                if index > 0 {
                    output.push(',');
                }
                write_string(key, output);
                output.push(':');
                write_canonical(item, output);
            }
            output.push('}');
        }
        Value::Array(items) => {
            output.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    output.push(',');
                }
                write_canonical(item, output);
            }
            output.push(']');
        }
        Value::String(text) => write_string(text, output),
        // Null, booleans and numbers have one compact form in serde_json already.
        scalar => output.push_str(&scalar.to_string()),
    }
}

fn write_string(text: &str, output: &mut String) {
    output.push_str(&Value::String(text.to_owned()).to_string());
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut hex = String::with_capacity(digest.len() * 2);
    for byte in digest {
        hex.push(char::from(HEX_DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(HEX_DIGITS[usize::from(byte & 0x0f)]));
    }
    hex
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// SHA-256 hex of the canonical JSON of `value`: the content address of a preset version, and the
/// argument digest of an audit entry.
pub fn content_hash(value: &Value) -> String {
    sha256_hex(canonical_json(value).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_form_sorts_keys_at_every_depth_and_drops_whitespace() {
        let value: Value =
            serde_json::from_str(r#"{ "b": 1, "a": { "z": [1, 2, {"y": null, "x": true}], "m": "é\"" } }"#)
                .unwrap();
        assert_eq!(
            canonical_json(&value),
            r#"{"a":{"m":"é\"","z":[1,2,{"x":true,"y":null}]},"b":1}"#
        );
    }

    #[test]
    fn equal_documents_hash_equal_and_different_ones_do_not() {
        let first = json!({"seed": 5, "steps": 20});
        let second: Value = serde_json::from_str("{\"steps\":20,\n \"seed\":5}").unwrap();
        assert_eq!(content_hash(&first), content_hash(&second));
        assert_ne!(
            content_hash(&first),
            content_hash(&json!({"seed": 6, "steps": 20}))
        );
    }

    #[test]
    fn sha256_matches_the_published_test_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
