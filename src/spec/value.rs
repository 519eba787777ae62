//! Param values: YAML values converted to JSON values, which is what step keys
//! hash and what plugins receive. The conversion refuses what has no single JSON
//! meaning (tags, non-string keys, NaN and infinities), so two spellings that a
//! step would see differently never hash alike, and nothing hashes by accident.

use serde_json::{Map, Number, Value as Json};
use serde_yaml::Value as Yaml;

use crate::diag::YamlPath;

/// A value that cannot be a param, with the path to it.
#[derive(Debug)]
pub struct ValueError {
    pub path: YamlPath,
    pub message: String,
    pub help: String,
}

pub fn from_yaml(value: &Yaml, path: &YamlPath) -> Result<Json, ValueError> {
    Ok(match value {
        Yaml::Null => Json::Null,
        Yaml::Bool(b) => Json::Bool(*b),
        Yaml::Number(n) => {
            if let Some(i) = n.as_i64() {
                Json::Number(i.into())
            } else if let Some(u) = n.as_u64() {
                Json::Number(u.into())
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                match Number::from_f64(f) {
                    Some(num) => Json::Number(num),
                    None => {
                        return Err(ValueError {
                            path: path.clone(),
                            message: format!("`{path}` is {n}, which is not a finite number"),
                            help: "params must be finite numbers; quote it to pass a string".into(),
                        });
                    }
                }
            }
        }
        Yaml::String(s) => Json::String(s.clone()),
        Yaml::Sequence(items) => Json::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| from_yaml(v, &path.join(i)))
                .collect::<Result<_, _>>()?,
        ),
        Yaml::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let key = match k {
                    Yaml::String(s) => s.clone(),
                    Yaml::Number(n) => n.to_string(),
                    Yaml::Bool(b) => b.to_string(),
                    _ => {
                        return Err(ValueError {
                            path: path.clone(),
                            message: format!("`{path}` has a key that is not a string"),
                            help: "use plain strings as mapping keys in params".into(),
                        });
                    }
                };
                let child = path.join(key.as_str());
                if out.contains_key(&key) {
                    return Err(ValueError {
                        path: child,
                        message: format!("duplicate key `{key}` in `{path}`"),
                        help: "each key may appear once; remove one of them".into(),
                    });
                }
                let v = from_yaml(v, &child)?;
                out.insert(key, v);
            }
            Json::Object(out)
        }
        Yaml::Tagged(t) => {
            return Err(ValueError {
                path: path.clone(),
                message: format!(
                    "`{path}` has the YAML tag `{}`, which pedigree does not interpret",
                    t.tag
                ),
                help: "remove the tag; params are plain strings, numbers, booleans, lists and maps"
                    .into(),
            });
        }
    })
}

/// Parse the value of a `--set k=v` override: `[...]` and `{...}` as YAML flow
/// collections, numbers, `true`/`false` and `null` as such, and anything else as the
/// string it is (so `--set a.b=?` or `--set a.b=x: y` never turn into YAML syntax).
pub fn parse_override(text: &str) -> Result<Json, String> {
    let t = text.trim();
    if t.starts_with('[') || t.starts_with('{') {
        let yaml: Yaml =
            serde_yaml::from_str(t).map_err(|e| format!("not a valid YAML list or map: {e}"))?;
        return from_yaml(&yaml, &YamlPath::root()).map_err(|e| e.message);
    }
    match serde_yaml::from_str::<Yaml>(t) {
        Ok(y @ (Yaml::Bool(_) | Yaml::Number(_))) => {
            from_yaml(&y, &YamlPath::root()).map_err(|e| e.message)
        }
        Ok(Yaml::Null) if t.is_empty() || t == "null" || t == "~" => Ok(Json::Null),
        _ => Ok(Json::String(text.to_owned())),
    }
}

pub use crate::util::fmt::json_value as show;

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(text: &str) -> Result<Json, ValueError> {
        from_yaml(&serde_yaml::from_str(text).unwrap(), &YamlPath::root())
    }

    #[test]
    fn integers_and_floats_stay_distinct() {
        assert_eq!(conv("1").unwrap().to_string(), "1");
        assert_eq!(conv("1.0").unwrap().to_string(), "1.0");
    }

    #[test]
    fn yaml_1_1_booleans_and_octals_are_strings() {
        assert_eq!(conv("no").unwrap(), Json::String("no".into()));
        assert_eq!(conv("on").unwrap(), Json::String("on".into()));
        // Neither octal 493 nor decimal 755: a leading zero keeps it a string.
        assert_eq!(conv("0755").unwrap(), Json::String("0755".into()));
    }

    #[test]
    fn rejects_tags_and_non_finite_numbers() {
        assert!(conv("!secret x").is_err());
        assert!(conv(".nan").is_err());
        assert!(conv(".inf").is_err());
    }

    #[test]
    fn overrides_parse_as_yaml() {
        assert_eq!(parse_override("50").unwrap().to_string(), "50");
        assert_eq!(parse_override("[1, 2]").unwrap().to_string(), "[1,2]");
        assert_eq!(parse_override("fast").unwrap(), Json::String("fast".into()));
        assert_eq!(parse_override("").unwrap(), Json::Null);
        assert_eq!(parse_override("?").unwrap(), Json::String("?".into()));
        assert_eq!(parse_override("a: b").unwrap(), Json::String("a: b".into()));
        assert_eq!(parse_override("#x").unwrap(), Json::String("#x".into()));
        assert_eq!(parse_override("true").unwrap(), Json::Bool(true));
    }
}
