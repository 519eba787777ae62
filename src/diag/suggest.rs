//! Nearest-name suggestions for messages: "did you mean `x`?" or the list of what exists.

/// The nearest of `candidates` to `name`, if it is close enough to be a likely typo.
pub fn nearest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(name, c), c))
        .filter(|(d, c)| *d <= (name.len().max(c.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// "did you mean `x`?" or a list of what exists.
pub fn suggest<'a>(
    name: &str,
    what: &str,
    candidates: impl IntoIterator<Item = &'a str> + Clone,
) -> String {
    if let Some(n) = nearest(name, candidates.clone()) {
        return format!("did you mean `{n}`?");
    }
    let all: Vec<String> = candidates.into_iter().map(|c| format!("`{c}`")).collect();
    if all.is_empty() {
        format!("there are no {what}s here")
    } else {
        format!("the {what}s are {}", all.join(", "))
    }
}

/// Two hints as one help text: `first` (a question or a list from [`suggest`]) then `next`.
pub fn and_then(first: &str, next: &str) -> String {
    let first = first.trim_end();
    if first.ends_with(['?', '.', '!']) {
        format!("{first} {next}")
    } else {
        format!("{first}. {next}")
    }
}
