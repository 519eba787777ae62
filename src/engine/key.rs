//! Step keys: the cache. A step's key is the blake3 hash of one struct,
//! [`KeyManifest`], serialised canonically. Equal keys mean the recorded outputs
//! are reused, so everything that decides a step's outputs must be in the manifest
//! and nothing else may be (no step name, no paths, no times).
//!
//! Architecture invariant: a step key depends only on its `KeyManifest`; the
//! golden tests below pin the derivation, and changing it bumps [`KEY_SCHEMA`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// Version of the key derivation. Bump it whenever the manifest's meaning or its
/// serialisation changes, so no old key can ever equal a new one by accident.
pub const KEY_SCHEMA: u32 = 1;

/// Domain separation for key hashes, so a key can never equal an object hash.
const KEY_DOMAIN: &str = "pedigree step key";

/// Everything that determines a step's outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyManifest {
    pub schema: u32,
    pub kind: KindIngredient,
    /// Params after defaults, overrides, interpolation and type coercion.
    pub params: BTreeMap<String, Json>,
    /// Input slot → content hash of the artifact that fills it.
    pub inputs: BTreeMap<String, String>,
    /// Declared environment variables; `None` (unset) hashes differently from `""`.
    pub env: BTreeMap<String, Option<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KindIngredient {
    /// A built-in step kind and its implementation version.
    Builtin { name: String, version: u32 },
    /// A plugin: the content hash of every file of its folder (plugin.yaml included),
    /// by relative path. The folder's name is not part of it.
    Plugin { files: BTreeMap<String, String> },
}

impl KeyManifest {
    /// The canonical serialisation that is hashed.
    pub fn canonical(&self) -> String {
        let value = serde_json::to_value(self).expect("a key manifest is plain data");
        canonical_json(&value)
    }

    /// The step key: hex blake3 of the canonical serialisation.
    pub fn key(&self) -> String {
        let mut h = blake3::Hasher::new_derive_key(KEY_DOMAIN);
        h.update(self.canonical().as_bytes());
        h.finalize().to_hex().to_string()
    }

    /// What changed from `old` to `self`, one line per ingredient, for `pedigree why`.
    pub fn diff(&self, old: &KeyManifest) -> Vec<Change> {
        let mut out = Vec::new();
        if self.schema != old.schema {
            out.push(Change::new(
                "key schema",
                old.schema.to_string(),
                self.schema.to_string(),
            ));
        }
        match (&old.kind, &self.kind) {
            (
                KindIngredient::Builtin {
                    name: on,
                    version: ov,
                },
                KindIngredient::Builtin {
                    name: nn,
                    version: nv,
                },
            ) => {
                if on != nn {
                    out.push(Change::new("kind", on.clone(), nn.clone()));
                } else if ov != nv {
                    out.push(Change::new(
                        format!("kind `{nn}` version"),
                        ov.to_string(),
                        nv.to_string(),
                    ));
                }
            }
            (KindIngredient::Plugin { files: of }, KindIngredient::Plugin { files: nf }) => {
                diff_maps(&mut out, "plugin file", of, nf, |h| short(h));
            }
            (o, n) => out.push(Change::new("kind", kind_label(o), kind_label(n))),
        }
        diff_maps(
            &mut out,
            "params",
            &old.params,
            &self.params,
            crate::spec::value::show,
        );
        diff_maps(&mut out, "input", &old.inputs, &self.inputs, |h| short(h));
        diff_maps(&mut out, "env", &old.env, &self.env, |v| match v {
            Some(s) => format!("{s:?}"),
            None => "(unset)".into(),
        });
        out
    }
}

fn kind_label(k: &KindIngredient) -> String {
    match k {
        KindIngredient::Builtin { name, version } => format!("{name} v{version}"),
        KindIngredient::Plugin { .. } => "plugin".into(),
    }
}

pub use crate::util::fmt::short;

/// One ingredient that differs between two manifests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub ingredient: String,
    /// `None` when the ingredient is new.
    pub old: Option<String>,
    /// `None` when the ingredient was removed.
    pub new: Option<String>,
}

impl Change {
    fn new(ingredient: impl Into<String>, old: String, new: String) -> Self {
        Change {
            ingredient: ingredient.into(),
            old: Some(old),
            new: Some(new),
        }
    }
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.old, &self.new) {
            (Some(o), Some(n)) => write!(f, "{}: {o} → {n}", self.ingredient),
            (None, Some(n)) => write!(f, "{}: added ({n})", self.ingredient),
            (Some(o), None) => write!(f, "{}: removed (was {o})", self.ingredient),
            (None, None) => write!(f, "{}", self.ingredient),
        }
    }
}

fn diff_maps<V: PartialEq>(
    out: &mut Vec<Change>,
    what: &str,
    old: &BTreeMap<String, V>,
    new: &BTreeMap<String, V>,
    show: impl Fn(&V) -> String,
) {
    let label = |k: &str| match what {
        "params" => format!("params.{k}"),
        _ => format!("{what} `{k}`"),
    };
    for (k, ov) in old {
        match new.get(k) {
            None => out.push(Change {
                ingredient: label(k),
                old: Some(show(ov)),
                new: None,
            }),
            Some(nv) if nv != ov => out.push(Change::new(label(k), show(ov), show(nv))),
            _ => {}
        }
    }
    for (k, nv) in new {
        if !old.contains_key(k) {
            out.push(Change {
                ingredient: label(k),
                old: None,
                new: Some(show(nv)),
            });
        }
    }
}

pub use crate::util::canonical::canonical_json;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> KeyManifest {
        KeyManifest {
            schema: KEY_SCHEMA,
            kind: KindIngredient::Plugin {
                files: BTreeMap::from([
                    ("main.py".into(), "aa".repeat(32)),
                    ("plugin.yaml".into(), "bb".repeat(32)),
                ]),
            },
            params: BTreeMap::from([
                ("epochs".into(), json!(30)),
                ("lr".into(), json!(0.001)),
                ("cols".into(), json!({"b": 1, "a": [1, 2.5, "x"]})),
            ]),
            inputs: BTreeMap::from([("table".into(), "cc".repeat(32))]),
            env: BTreeMap::from([("A".into(), Some(String::new())), ("B".into(), None)]),
        }
    }

    /// Golden: if this changes, the key derivation changed and `KEY_SCHEMA` must be bumped.
    #[test]
    fn golden_canonical_form_and_key() {
        let m = sample();
        let aa = "aa".repeat(32);
        let bb = "bb".repeat(32);
        let cc = "cc".repeat(32);
        assert_eq!(
            m.canonical(),
            format!(
                "{{\"env\":{{\"A\":\"\",\"B\":null}},\"inputs\":{{\"table\":\"{cc}\"}},\"kind\":{{\"plugin\":{{\"files\":{{\"main.py\":\"{aa}\",\"plugin.yaml\":\"{bb}\"}}}}}},\"params\":{{\"cols\":{{\"a\":[1,2.5,\"x\"],\"b\":1}},\"epochs\":30,\"lr\":0.001}},\"schema\":1}}"
            )
        );
        assert_eq!(
            m.key(),
            "934eda4a3e9941f35c0db6e110ab05a6e329b92c64cb79358e9ec947f1df11a5"
        );
    }

    #[test]
    fn golden_builtin_key() {
        let m = KeyManifest {
            schema: KEY_SCHEMA,
            kind: KindIngredient::Builtin {
                name: "clean".into(),
                version: 1,
            },
            params: BTreeMap::new(),
            inputs: BTreeMap::new(),
            env: BTreeMap::new(),
        };
        assert_eq!(
            m.canonical(),
            "{\"env\":{},\"inputs\":{},\"kind\":{\"builtin\":{\"name\":\"clean\",\"version\":1}},\"params\":{},\"schema\":1}"
        );
        assert_eq!(
            m.key(),
            "79a9d3bf6f0cd2951cfa2ac2414d3e503f579768b399c0211c33fbd5da510b79"
        );
    }

    #[test]
    fn every_ingredient_changes_the_key() {
        let base = sample();
        let k = base.key();
        let mut m = base.clone();
        m.params.insert("epochs".into(), json!(31));
        assert_ne!(m.key(), k);
        let mut m = base.clone();
        m.params.insert("epochs".into(), json!(30.0));
        assert_ne!(m.key(), k, "1 and 1.0 are different values to a plugin");
        let mut m = base.clone();
        m.inputs.insert("table".into(), "dd".repeat(32));
        assert_ne!(m.key(), k);
        let mut m = base.clone();
        m.env.insert("B".into(), Some(String::new()));
        assert_ne!(m.key(), k, "unset and empty differ");
        let mut m = base.clone();
        if let KindIngredient::Plugin { files } = &mut m.kind {
            files.insert("main.py".into(), "ee".repeat(32));
        }
        assert_ne!(m.key(), k);
        let mut m = base.clone();
        m.schema += 1;
        assert_ne!(m.key(), k);
    }

    #[test]
    fn key_ignores_map_insertion_order() {
        let a: Json = serde_json::from_str(r#"{"x":1,"y":{"b":2,"a":3}}"#).unwrap();
        let b: Json = serde_json::from_str(r#"{"y":{"a":3,"b":2},"x":1}"#).unwrap();
        assert_eq!(canonical_json(&a), canonical_json(&b));
    }

    #[test]
    fn diff_names_each_changed_ingredient() {
        let old = sample();
        let mut new = sample();
        new.params.insert("epochs".into(), json!(50));
        new.inputs.insert("table".into(), "dd".repeat(32));
        new.env.insert("B".into(), Some("1".into()));
        let lines: Vec<String> = new.diff(&old).iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "params.epochs: 30 → 50".to_string(),
                format!("input `table`: {} → {}", "c".repeat(12), "d".repeat(12)),
                "env `B`: (unset) → \"1\"".to_string(),
            ]
        );
    }
}
