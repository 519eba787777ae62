//! Signing keys for the remote cache: ed25519 (ring's), one key pair per writer.
//!
//! - A public key is written `ed25519:` and 64 hex digits; `pedigree.toml` lists the
//!   ones a workspace trusts.
//! - A private key lives outside the repository: in the file named by
//!   `PEDIGREE_SIGNING_KEY_FILE`, or the text itself in `PEDIGREE_SIGNING_KEY` (a CI
//!   secret), else `~/.config/pedigree/signing-key`. Its text is
//!   `pedigree-ed25519-secret-v1:` and the 64 hex digits of the seed. It is never
//!   printed: [`Signer`]'s `Debug` shows only the public half.

use std::fmt;
use std::path::{Path, PathBuf};

use ring::signature::{self, Ed25519KeyPair, KeyPair};

/// The environment variable holding a private key's text (for CI secrets).
pub const KEY_ENV: &str = "PEDIGREE_SIGNING_KEY";
/// The environment variable naming the private key's file.
pub const KEY_FILE_ENV: &str = "PEDIGREE_SIGNING_KEY_FILE";

const SECRET_PREFIX: &str = "pedigree-ed25519-secret-v1:";
const PUBLIC_PREFIX: &str = "ed25519:";

/// A public key that may be trusted to write.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// Parse `ed25519:HEX`.
    pub fn parse(text: &str) -> Result<PublicKey, String> {
        let hex = text
            .trim()
            .strip_prefix(PUBLIC_PREFIX)
            .ok_or_else(|| format!("`{}` does not start with `{PUBLIC_PREFIX}`", clip(text)))?;
        let bytes = decode_hex(hex)
            .filter(|b| b.len() == 32)
            .ok_or_else(|| "an ed25519 public key is 64 hex digits".to_owned())?;
        let mut k = [0u8; 32];
        k.copy_from_slice(&bytes);
        Ok(PublicKey(k))
    }

    /// Does `sig` sign `msg` with this key?
    pub fn verifies(&self, msg: &[u8], sig: &[u8]) -> bool {
        signature::UnparsedPublicKey::new(&signature::ED25519, &self.0)
            .verify(msg, sig)
            .is_ok()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PUBLIC_PREFIX}{}", encode_hex(&self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// A private key, ready to sign.
pub struct Signer {
    pair: Ed25519KeyPair,
    public: PublicKey,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signer({})", self.public)
    }
}

impl Signer {
    /// Parse a private key's text.
    pub fn parse(text: &str) -> Result<Signer, String> {
        let hex = text
            .trim()
            .strip_prefix(SECRET_PREFIX)
            .ok_or_else(|| format!("a signing key starts with `{SECRET_PREFIX}`"))?;
        let seed = decode_hex(hex)
            .filter(|b| b.len() == 32)
            .ok_or_else(|| "a signing key's seed is 64 hex digits".to_owned())?;
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|_| "the signing key is not a valid ed25519 seed".to_owned())?;
        let mut public = [0u8; 32];
        public.copy_from_slice(pair.public_key().as_ref());
        Ok(Signer {
            pair,
            public: PublicKey(public),
        })
    }

    /// A new random key pair: its private text and the signer.
    pub fn generate() -> Result<(String, Signer), String> {
        use ring::rand::SecureRandom;
        let mut seed = [0u8; 32];
        ring::rand::SystemRandom::new()
            .fill(&mut seed)
            .map_err(|_| "the system's random source failed".to_owned())?;
        let text = format!("{SECRET_PREFIX}{}\n", encode_hex(&seed));
        let signer = Signer::parse(&text)?;
        Ok((text, signer))
    }

    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        self.pair.sign(msg).as_ref().to_vec()
    }
}

/// Where a signing key comes from, for messages (never the key itself).
#[derive(Debug, Clone)]
pub enum KeySource {
    Env,
    File(PathBuf),
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Env => write!(f, "${KEY_ENV}"),
            KeySource::File(p) => write!(f, "`{}`", p.display()),
        }
    }
}

/// The default private key file: `$XDG_CONFIG_HOME/pedigree/signing-key`, else
/// `~/.config/pedigree/signing-key`.
pub fn default_key_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".config")))?;
    Some(base.join("pedigree").join("signing-key"))
}

/// This user's signing key, if one is configured: `$PEDIGREE_SIGNING_KEY`, the file
/// `$PEDIGREE_SIGNING_KEY_FILE`, or the default file. `Ok(None)` when none exists;
/// an error when one is named but unreadable or malformed.
pub fn load_signer() -> Result<Option<(Signer, KeySource)>, String> {
    if let Ok(text) = std::env::var(KEY_ENV)
        && !text.trim().is_empty()
    {
        let s = Signer::parse(&text).map_err(|e| format!("${KEY_ENV}: {e}"))?;
        return Ok(Some((s, KeySource::Env)));
    }
    let (path, named) = match std::env::var_os(KEY_FILE_ENV).filter(|v| !v.is_empty()) {
        Some(p) => (PathBuf::from(p), true),
        None => match default_key_path() {
            Some(p) => (p, false),
            None => return Ok(None),
        },
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let s = Signer::parse(&text).map_err(|e| format!("`{}`: {e}", path.display()))?;
            Ok(Some((s, KeySource::File(path))))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !named => Ok(None),
        Err(e) => Err(format!(
            "cannot read the signing key `{}`: {e}",
            path.display()
        )),
    }
}

fn clip(s: &str) -> String {
    s.chars().take(16).collect()
}

pub fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

pub fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_with_its_key_and_message() {
        let (text, a) = Signer::generate().unwrap();
        let (_, b) = Signer::generate().unwrap();
        let sig = a.sign(b"entry");
        assert!(a.public().verifies(b"entry", &sig));
        assert!(!a.public().verifies(b"entrY", &sig));
        assert!(!b.public().verifies(b"entry", &sig));
        // The text round-trips to the same key.
        assert_eq!(Signer::parse(&text).unwrap().public(), a.public());
        // Debug never shows the private half.
        assert!(!format!("{a:?}").contains(&text.trim()[SECRET_PREFIX.len()..]));
    }

    #[test]
    fn public_keys_parse_and_print() {
        let (_, a) = Signer::generate().unwrap();
        let shown = a.public().to_string();
        assert_eq!(PublicKey::parse(&shown).unwrap(), *a.public());
        assert!(PublicKey::parse("ed25519:00").is_err());
        assert!(PublicKey::parse(&shown.replace("ed25519:", "rsa:")).is_err());
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(
            decode_hex(&encode_hex(&[0, 255, 16])).unwrap(),
            vec![0, 255, 16]
        );
        assert!(decode_hex("0g").is_none());
        assert!(decode_hex("abc").is_none());
    }
}
