//! Text for people: short hashes, durations and sizes. One formatter each, so the CLI
//! and the dashboard print the same thing for the same value.

/// The first 12 hex digits of a hash, for people.
pub fn short(hash: &str) -> String {
    hash.chars().take(12).collect()
}

/// Seconds for people: `0.42s`, `12.3s`, `4m05s`.
/// The first line of an error or an answer, at most 300 characters: without the long
/// chains some stores print, or a server's whole page.
pub fn one_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or("").trim();
    let mut out: String = line.chars().take(300).collect();
    if line.chars().count() > 300 {
        out.push('…');
    }
    out
}

pub fn human_duration(secs: f64) -> String {
    if secs < 10.0 {
        format!("{secs:.2}s")
    } else if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        format!("{}m{:02}s", (secs / 60.0) as u64, (secs % 60.0) as u64)
    }
}

/// The time between two stored timestamps for people, or `-` when either is missing
/// or unreadable.
pub fn duration_between(start: &str, end: Option<&str>) -> String {
    match end.and_then(|e| super::time::seconds_between(start, e)) {
        Some(s) => human_duration(s),
        None => "-".into(),
    }
}

/// A size in bytes for people: `512 B`, `1.5 KiB`, `3.0 MiB`, `1.2 GiB`.
pub fn bytes(n: i64) -> String {
    let n = n as f64;
    if n < 1024.0 {
        format!("{n} B")
    } else if n < 1024.0 * 1024.0 {
        format!("{:.1} KiB", n / 1024.0)
    } else if n < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.1} MiB", n / 1024.0 / 1024.0)
    } else {
        format!("{:.1} GiB", n / 1024.0 / 1024.0 / 1024.0)
    }
}

/// A JSON value in one line for people, cut to 60 characters with `...`.
pub fn json_value(value: &serde_json::Value) -> String {
    let s = value.to_string();
    if s.chars().count() > 60 {
        let cut: String = s.chars().take(57).collect();
        format!("{cut}...")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_for_people() {
        assert_eq!(short(&"ab".repeat(32)), "abababababab");
        assert_eq!(human_duration(0.421), "0.42s");
        assert_eq!(human_duration(12.34), "12.3s");
        assert_eq!(human_duration(245.0), "4m05s");
        assert_eq!(
            duration_between("2024-02-28T23:59:59.000Z", Some("2024-02-29T00:00:01.500Z")),
            "2.50s"
        );
        assert_eq!(duration_between("2024-02-28T23:59:59.000Z", None), "-");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 * 1024 * 1024), "3.0 MiB");
    }
}
