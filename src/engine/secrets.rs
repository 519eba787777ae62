//! Secrets a step declares (`secrets:` in the workflow) reach the step's
//! environment and nothing else: not its key, not its request, not the lineage
//! database. [`Redactor`] replaces their values in every byte of captured output
//! (the log, the stderr tail, progress lines, facets) before it is kept or shown.

/// Replaces the values of a step's secrets in captured output with `[secret NAME]`.
#[derive(Debug, Default, Clone)]
pub struct Redactor {
    secrets: Vec<(String, Vec<u8>)>,
}

impl Redactor {
    pub fn add(&mut self, name: &str, value: &str) {
        // An empty value cannot be found in text; a one-character one would redact noise.
        if value.len() >= 2 {
            self.secrets
                .push((name.to_owned(), value.as_bytes().to_vec()));
            // Longest first, so a secret containing another is replaced whole.
            self.secrets
                .sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    pub fn redact(&self, bytes: &[u8]) -> Vec<u8> {
        let mut out = bytes.to_vec();
        for (name, value) in &self.secrets {
            let mask = format!("[secret {name}]").into_bytes();
            let mut next = Vec::with_capacity(out.len());
            let mut i = 0;
            while i < out.len() {
                if out[i..].starts_with(value) {
                    next.extend_from_slice(&mask);
                    i += value.len();
                } else {
                    next.push(out[i]);
                    i += 1;
                }
            }
            out = next;
        }
        out
    }

    pub fn redact_str(&self, s: &str) -> String {
        if self.is_empty() {
            return s.to_owned();
        }
        String::from_utf8_lossy(&self.redact(s.as_bytes())).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::Redactor;

    #[test]
    fn redacts_every_occurrence_longest_first() {
        let mut r = Redactor::default();
        r.add("TOKEN", "abc123");
        r.add("PART", "abc");
        r.add("EMPTY", "");
        assert_eq!(
            r.redact_str("x abc123 y abc z"),
            "x [secret TOKEN] y [secret PART] z"
        );
        assert_eq!(r.redact(b"\xffabc123"), b"\xff[secret TOKEN]".to_vec());
    }
}
