//! Phase one of reading a workflow: the YAML text deserialised into plain structs,
//! with unknown keys and duplicate keys rejected. Nothing here is validated beyond
//! shape; see [`super::validate`] for names, references and interpolation.

use std::fmt;
use std::marker::PhantomData;

use indexmap::IndexMap;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with `name:` and `steps:` (a workflow)"
)]
pub struct RawWorkflow {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "unique_map")]
    pub inputs: IndexMap<String, String>,
    #[serde(default, deserialize_with = "unique_map")]
    pub params: IndexMap<String, serde_yaml::Value>,
    #[serde(deserialize_with = "unique_map")]
    pub steps: IndexMap<String, RawStep>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with `plugin:` or `uses:` (a step)"
)]
pub struct RawStep {
    #[serde(default)]
    pub uses: Option<String>,
    #[serde(default)]
    pub plugin: Option<String>,
    #[serde(default, deserialize_with = "unique_map")]
    pub inputs: IndexMap<String, String>,
    #[serde(default, rename = "with", deserialize_with = "unique_map")]
    pub with: IndexMap<String, serde_yaml::Value>,
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub secrets: Vec<String>,
}

/// Deserialise a mapping into an `IndexMap`, keeping file order and refusing a key
/// that appears twice (serde's map visitors would silently keep the last one).
pub fn unique_map<'de, D, V>(d: D) -> Result<IndexMap<String, V>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct UniqueMap<V>(PhantomData<V>);

    impl<'de, V: Deserialize<'de>> Visitor<'de> for UniqueMap<V> {
        type Value = IndexMap<String, V>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a mapping")
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            // `inputs:` with nothing after it is an empty mapping, not an error.
            Ok(IndexMap::new())
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = IndexMap::new();
            while let Some(key) = map.next_key::<String>()? {
                if out.contains_key(&key) {
                    return Err(de::Error::custom(format_args!("duplicate key `{key}`")));
                }
                let value = map.next_value()?;
                out.insert(key, value);
            }
            Ok(out)
        }
    }

    d.deserialize_any(UniqueMap(PhantomData))
}
