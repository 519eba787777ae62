//! A step-result entry: what a step with a given key produced, who computed it,
//! and the writer's ed25519 signature over all of it.
//!
//! On the wire an entry is an envelope around the body's exact bytes, so the
//! signature covers what was written, not a re-serialisation:
//!
//! ```json
//! {"format":"pedigree.signed/1","signer":"ed25519:HEX","signature":"HEX","body":"{…}"}
//! ```
//!
//! [`open`] accepts an entry only if it parses, is signed by the key of its
//! slot, that key is trusted, the signature verifies, the body names the
//! requested key and carries the manifest that hashes to it, and every object
//! it names is a well-formed hash. Anything else is a [`Rejected`] reason, which
//! the caller turns into a cache miss with a warning.

use serde::{Deserialize, Serialize};

use crate::engine::key::KeyManifest;
use crate::keys::{PublicKey, Signer, decode_hex, encode_hex};
use crate::store::is_object_hash;

pub const BODY_FORMAT: &str = "pedigree.ac/1";
const ENVELOPE_FORMAT: &str = "pedigree.signed/1";
/// Signatures are over this prefix and the body, so an entry signature can never
/// be replayed as a signature of anything else.
const DOMAIN: &[u8] = b"pedigree.ac/1\0";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Envelope {
    format: String,
    signer: String,
    signature: String,
    body: String,
}

/// What a step with this key produced.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Body {
    pub format: String,
    pub key: String,
    /// The key manifest's canonical JSON (hashes to `key`): the producing step's
    /// ingredients and input hashes, so a receiving workspace's lineage is whole.
    pub manifest: String,
    pub outputs: Vec<Output>,
    /// (name, JSON value)
    #[serde(default)]
    pub params: Vec<(String, String)>,
    /// (name, value, epoch)
    #[serde(default)]
    pub metrics: Vec<(String, f64, Option<i64>)>,
    /// (object the facet describes, name, JSON)
    #[serde(default)]
    pub facets: Vec<(Option<String>, String, String)>,
    pub producer: Producer,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Output {
    pub slot: String,
    pub name: String,
    pub hash: String,
    pub size: u64,
    pub content_size: u64,
    pub is_tree: bool,
    pub kind: String,
    pub media_type: String,
}

/// Where and by whom the entry's result was computed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Producer {
    pub host: String,
    pub user: String,
    pub workflow: String,
    pub step: String,
    /// The producer's run and step run ids, in the producer's own lineage.
    pub run: i64,
    pub step_run: i64,
    /// RFC 3339.
    pub at: String,
    /// The pedigree version that wrote it.
    pub pedigree: String,
}

/// An entry that passed every check.
#[derive(Debug, Clone)]
pub struct Verified {
    pub body: Body,
    pub signer: PublicKey,
    /// The trusted key's name in `pedigree.toml`.
    pub signer_name: String,
}

/// Why an entry was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejected {
    Malformed(String),
    UnknownSigner(String),
    BadSignature,
    WrongKey { found: String },
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejected::Malformed(why) => write!(f, "the entry is malformed ({why})"),
            Rejected::UnknownSigner(k) => write!(
                f,
                "the entry is signed by {k}, which `pedigree.toml` does not trust"
            ),
            Rejected::BadSignature => write!(f, "the entry's signature does not verify"),
            Rejected::WrongKey { found } => write!(
                f,
                "the entry is for another step key ({})",
                found.get(..12).unwrap_or(found)
            ),
        }
    }
}

/// Sign `body` with `signer`: the bytes to store.
pub fn seal(body: &Body, signer: &Signer) -> Vec<u8> {
    let text = serde_json::to_string(body).expect("an entry body serialises");
    let mut msg = DOMAIN.to_vec();
    msg.extend_from_slice(text.as_bytes());
    let env = Envelope {
        format: ENVELOPE_FORMAT.into(),
        signer: signer.public().to_string(),
        signature: encode_hex(&signer.sign(&msg)),
        body: text,
    };
    serde_json::to_vec(&env).expect("an envelope serialises")
}

/// Check the entry `bytes` found in `slot_signer`'s slot of step key `key`.
/// `trust` gives the trusted keys by name; `None` accepts any signer whose
/// signature verifies (to compare with an entry, never to use it).
pub fn open(
    bytes: &[u8],
    key: &str,
    slot_signer: &PublicKey,
    trust: Option<&[(String, PublicKey)]>,
) -> Result<Verified, Rejected> {
    let env: Envelope = serde_json::from_slice(bytes)
        .map_err(|e| Rejected::Malformed(format!("not a signed entry: {e}")))?;
    if env.format != ENVELOPE_FORMAT {
        return Err(Rejected::Malformed(format!("format `{}`", env.format)));
    }
    let signer = PublicKey::parse(&env.signer).map_err(Rejected::Malformed)?;
    let signer_name = match trust {
        Some(t) => t
            .iter()
            .find(|(_, k)| *k == signer)
            .map(|(n, _)| n.clone())
            .ok_or_else(|| Rejected::UnknownSigner(signer.to_string()))?,
        None => String::new(),
    };
    if signer != *slot_signer {
        // Copied into a trusted writer's slot, or signed by someone else.
        return Err(Rejected::UnknownSigner(signer.to_string()));
    }
    let sig = decode_hex(&env.signature).ok_or(Rejected::BadSignature)?;
    let mut msg = DOMAIN.to_vec();
    msg.extend_from_slice(env.body.as_bytes());
    if !signer.verifies(&msg, &sig) {
        return Err(Rejected::BadSignature);
    }
    let body: Body =
        serde_json::from_str(&env.body).map_err(|e| Rejected::Malformed(format!("body: {e}")))?;
    if body.format != BODY_FORMAT {
        return Err(Rejected::Malformed(format!(
            "body format `{}`",
            body.format
        )));
    }
    if body.key != key {
        return Err(Rejected::WrongKey { found: body.key });
    }
    let manifest: KeyManifest = serde_json::from_str(&body.manifest)
        .map_err(|e| Rejected::Malformed(format!("manifest: {e}")))?;
    if manifest.key() != key {
        return Err(Rejected::WrongKey {
            found: manifest.key(),
        });
    }
    for o in &body.outputs {
        if !is_object_hash(&o.hash) {
            return Err(Rejected::Malformed(format!(
                "output `{}` has no object hash",
                o.slot
            )));
        }
        if o.name.is_empty() || o.name.contains('/') || o.name == "." || o.name == ".." {
            return Err(Rejected::Malformed(format!(
                "output `{}` has a bad file name",
                o.slot
            )));
        }
    }
    if body.outputs.is_empty() {
        return Err(Rejected::Malformed("no outputs".into()));
    }
    Ok(Verified {
        body,
        signer,
        signer_name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(key: &str, manifest: &str) -> Body {
        Body {
            format: BODY_FORMAT.into(),
            key: key.into(),
            manifest: manifest.into(),
            outputs: vec![Output {
                slot: "table".into(),
                name: "t.parquet".into(),
                hash: "ab".repeat(32),
                size: 3,
                content_size: 3,
                is_tree: false,
                kind: "table".into(),
                media_type: "application/x-parquet".into(),
            }],
            params: vec![],
            metrics: vec![("rows".into(), 3.0, None)],
            facets: vec![],
            producer: Producer {
                host: "ci".into(),
                user: "ci".into(),
                workflow: "w".into(),
                step: "s".into(),
                run: 1,
                step_run: 2,
                at: "2026-12-06T00:00:00Z".into(),
                pedigree: "0".into(),
            },
        }
    }

    fn manifest() -> (String, String) {
        let m = KeyManifest {
            schema: crate::engine::key::KEY_SCHEMA,
            kind: crate::engine::key::KindIngredient::Builtin {
                name: "clean".into(),
                version: 1,
            },
            params: Default::default(),
            inputs: [("table".to_owned(), "cd".repeat(32))].into(),
            env: Default::default(),
        };
        (m.key(), m.canonical())
    }

    #[test]
    fn an_entry_opens_only_for_its_key_trusted_signer_and_bytes() {
        let (_, a) = Signer::generate().unwrap();
        let (_, b) = Signer::generate().unwrap();
        let (key, m) = manifest();
        let sealed = seal(&body(&key, &m), &a);
        let trust = vec![("ci".to_owned(), a.public().clone())];
        let v = open(&sealed, &key, a.public(), Some(&trust)).unwrap();
        assert_eq!(v.signer_name, "ci");
        assert_eq!(v.body.metrics, vec![("rows".into(), 3.0, None)]);

        // Another key's slot, an untrusted signer, a flipped byte.
        let other = "0".repeat(64);
        assert!(matches!(
            open(&sealed, &other, a.public(), Some(&trust)),
            Err(Rejected::WrongKey { .. })
        ));
        let by_b = seal(&body(&key, &m), &b);
        assert!(matches!(
            open(&by_b, &key, a.public(), Some(&trust)),
            Err(Rejected::UnknownSigner(_))
        ));
        let mut bad = sealed.clone();
        let at = bad.windows(4).position(|w| w == b"rows").unwrap();
        bad[at] = b'R';
        assert_eq!(
            open(&bad, &key, a.public(), Some(&trust)).unwrap_err(),
            Rejected::BadSignature
        );
        assert!(matches!(
            open(b"{", &key, a.public(), Some(&trust)),
            Err(Rejected::Malformed(_))
        ));

        // A body that names the key but carries another manifest.
        let wrong = seal(&body(&key, "{}"), &a);
        assert!(open(&wrong, &key, a.public(), Some(&trust)).is_err());
    }
}
