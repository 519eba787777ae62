//! Canonical JSON: the one serialisation that is hashed, for step keys
//! (`engine::key`) and folder manifests (`store`). Both must agree byte for byte, which
//! is why it lives below both.

use std::fmt::Write;

use serde_json::Value as Json;

/// Serialise JSON canonically: object keys sorted by their UTF-8 bytes, no
/// whitespace, numbers as serde_json prints them (integers as integers, floats in
/// their shortest round-trip form, so `1` and `1.0` differ), strings escaped as
/// serde_json escapes them. Does not depend on the map type serde_json was built
/// with.
pub fn canonical_json(v: &Json) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Json, out: &mut String) {
    match v {
        Json::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{}", Json::String(k.clone()));
                out.push(':');
                write_canonical(&m[k], out);
            }
            out.push('}');
        }
        Json::Array(items) => {
            out.push('[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_keys_at_every_level_and_keeps_number_kinds() {
        let v: Json =
            serde_json::from_str(r#"{"b":[1,1.0,"é\n"],"a":{"z":null,"y":true}}"#).unwrap();
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"y":true,"z":null},"b":[1,1.0,"é\n"]}"#
        );
    }
}
