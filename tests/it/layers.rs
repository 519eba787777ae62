//! The layer rule of ARCHITECTURE.md, checked: every `crate::X` path in `src/` must
//! point down the table below, so no module reaches up (no import cycles), `spec`
//! stays free of clap, and nothing depends on `cli`. In the spirit of
//! rust-analyzer's `xtask/src/tidy.rs`: the rule lives in one place and the build
//! fails when the code drifts from it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Who may name whom. A node is a top-level module of `src/`, except that
/// `steps/builtin` (the built-in kinds, which run in their own process) is a node of
/// its own above `steps` (the kind model, protocol and process control).
const RULES: &[(&str, &[&str])] = &[
    ("util", &[]),
    ("failpoint", &[]),
    ("alloc", &[]),
    ("keys", &[]),
    ("openlineage", &[]),
    ("diag", &["util"]),
    ("config", &["diag", "keys", "util"]),
    ("spec", &["diag", "util"]),
    ("store", &["util", "failpoint"]),
    ("lineage", &["store", "openlineage", "util", "failpoint"]),
    ("table", &["util", "failpoint"]),
    ("gnn", &["table", "util"]),
    ("sample", &["table", "util"]),
    ("steps", &["diag", "spec", "store", "util", "failpoint"]),
    (
        "steps/builtin",
        &[
            "steps",
            "diag",
            "spec",
            "store",
            "table",
            "gnn",
            "lineage",
            "registry",
            "util",
            "failpoint",
        ],
    ),
    ("registry", &["store", "lineage", "diag", "util"]),
    ("workspace", &["lineage", "store", "util"]),
    (
        "engine",
        &[
            "diag",
            "spec",
            "steps",
            "steps/builtin",
            "store",
            "lineage",
            "workspace",
            "util",
            "failpoint",
        ],
    ),
    (
        "remote",
        &[
            "engine",
            "store",
            "lineage",
            "workspace",
            "config",
            "keys",
            "diag",
            "util",
        ],
    ),
    (
        "maintenance",
        &[
            "remote",
            "keys",
            "engine",
            "store",
            "lineage",
            "registry",
            "workspace",
            "util",
            "failpoint",
        ],
    ),
    ("catalogue", &["openlineage", "lineage", "config", "util"]),
    ("tui", &["lineage", "util"]),
    (
        "cli",
        &[
            "util",
            "failpoint",
            "diag",
            "spec",
            "store",
            "lineage",
            "table",
            "gnn",
            "sample",
            "steps",
            "steps/builtin",
            "registry",
            "workspace",
            "engine",
            "maintenance",
            "tui",
            "config",
            "keys",
            "remote",
            "openlineage",
            "catalogue",
        ],
    ),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The node a file belongs to, or `None` for the crate root and the binaries.
fn node_of(rel: &Path) -> Option<String> {
    let parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    match parts.first().map(String::as_str) {
        None | Some("lib" | "main" | "bin") => None,
        Some("steps") if parts.get(1).is_some_and(|p| p == "builtin") => {
            Some("steps/builtin".into())
        }
        Some(top) => Some(top.to_owned()),
    }
}

/// The nodes a line of code names through `crate::…` (comments left out).
fn named_nodes(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        let word: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if word == "steps" && after["steps".len()..].starts_with("::builtin") {
            out.insert("steps/builtin".to_owned());
        } else if !word.is_empty() {
            out.insert(word);
        }
        // `use crate::{a, b::c}`: every name at the top of the braces.
        if let Some(braced) = after.strip_prefix('{') {
            let inner: String = braced.chars().take_while(|c| *c != '}').collect();
            for item in inner.split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        }
        rest = after;
    }
    out
}

fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.split("//").next().unwrap_or("")))
}

#[test]
fn every_import_follows_the_layer_rule() {
    let rules: BTreeMap<&str, BTreeSet<&str>> = RULES
        .iter()
        .map(|(n, deps)| (*n, deps.iter().copied().collect()))
        .collect();
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut broken = Vec::new();
    for path in &files {
        let rel = path.strip_prefix(src()).unwrap();
        let Some(node) = node_of(rel) else { continue };
        let Some(allowed) = rules.get(node.as_str()) else {
            broken.push(format!(
                "src/{}: module `{node}` is not in the layer table of tests/it/layers.rs (and ARCHITECTURE.md)",
                rel.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(path).unwrap();
        for (n, line) in code_lines(&text) {
            for target in named_nodes(line) {
                if target != node && !allowed.contains(target.as_str()) {
                    broken.push(format!(
                        "src/{}:{n}: `{node}` may not use `crate::{target}` ({})",
                        rel.display(),
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "layer rule broken:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_layer_table_has_no_cycle_and_nothing_uses_cli() {
    let mut deps: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (n, ds) in RULES {
        assert!(
            !ds.contains(&"cli") || *n == "cli",
            "`{n}` may not depend on cli"
        );
        deps.insert(n, ds.to_vec());
    }
    // Depth-first search for a back edge.
    fn visit<'a>(
        n: &'a str,
        deps: &BTreeMap<&'a str, Vec<&'a str>>,
        stack: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if done.contains(n) {
            return;
        }
        assert!(
            !stack.contains(&n),
            "cycle in the layer table: {stack:?} -> {n}"
        );
        stack.push(n);
        for d in deps.get(n).into_iter().flatten() {
            visit(d, deps, stack, done);
        }
        stack.pop();
        done.insert(n);
    }
    let mut done = BTreeSet::new();
    for n in deps.keys() {
        visit(n, &deps, &mut Vec::new(), &mut done);
    }
}

#[test]
fn spec_diag_and_util_know_nothing_of_clap() {
    let mut files = Vec::new();
    for d in ["spec", "util", "diag"] {
        rust_files(&src().join(d), &mut files);
    }
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in code_lines(&text) {
            assert!(
                !line.contains("clap"),
                "{}:{n} names clap: the spec layer must build without the CLI crate",
                path.display()
            );
        }
    }
}

#[test]
fn the_scanner_sees_every_form_of_crate_path() {
    assert_eq!(
        named_nodes("use crate::{lineage::Db, util, steps::builtin::x};"),
        ["lineage", "steps", "util"].map(String::from).into()
    );
    assert_eq!(
        named_nodes("let x = crate::steps::builtin::main(k) + crate::cli::y;"),
        ["cli", "steps/builtin"].map(String::from).into()
    );
    assert_eq!(
        node_of(Path::new("steps/builtin/clean.rs")),
        Some("steps/builtin".into())
    );
    assert_eq!(node_of(Path::new("engine/run.rs")), Some("engine".into()));
    assert_eq!(node_of(Path::new("main.rs")), None);
}

/// The code map in ARCHITECTURE.md names every source file (a `mod.rs` by its folder),
/// as rust-analyzer's tidy pairs docs with code: a new file without a line in the map
/// fails the build, and so does a line for a file that is gone.
#[test]
fn the_code_map_names_every_source_file() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md"))
            .unwrap();
    let map = doc
        .split("\n## Code map")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("ARCHITECTURE.md has a `## Code map` section");
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut missing = Vec::new();
    for path in &files {
        let rel = path
            .strip_prefix(src())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let named = if let Some(dir) = rel.strip_suffix("/mod.rs") {
            map.contains(&format!("`src/{dir}/`")) || map.contains(&format!("`{dir}/`"))
        } else {
            let stem = rel.trim_end_matches(".rs");
            map.contains(&format!("`src/{rel}`"))
                || map.contains(&format!("`{rel}`"))
                || map.contains(&format!("`{stem}`"))
        };
        if !named {
            missing.push(format!("src/{rel}"));
        }
    }
    assert!(
        missing.is_empty(),
        "the code map in ARCHITECTURE.md does not name: {}",
        missing.join(", ")
    );
    // And every `src/…` path the map names exists.
    let mut stale = Vec::new();
    for piece in map.split('`').skip(1).step_by(2) {
        if let Some(rel) = piece.strip_prefix("src/")
            && !src().join(rel).exists()
        {
            stale.push(piece.to_owned());
        }
    }
    assert!(
        stale.is_empty(),
        "the code map names files that are gone: {stale:?}"
    );
}
