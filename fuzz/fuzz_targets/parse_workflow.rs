//! Any bytes given to the workflow parser and validator give a workflow or a
//! diagnostic, never a panic, a hang or unbounded memory; diagnostics render.
#![no_main]

#[allow(dead_code)]
#[path = "../../src/diag/mod.rs"]
mod diag;
#[allow(dead_code)]
#[path = "../../src/spec/mod.rs"]
mod spec;
#[allow(dead_code)]
#[path = "../../src/util/mod.rs"]
mod util;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // Overrides are user input too: the first line, if it looks like one.
    let overrides: Vec<spec::Override> = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("# set "))
        .and_then(|o| spec::Override::parse(o).ok())
        .into_iter()
        .collect();
    let source = diag::Source::new("fuzz.yaml", text);
    match spec::validate::parse(source, std::path::PathBuf::from("/ws/workflows"), &overrides) {
        Ok(wf) => match spec::Dag::build(&wf) {
            Ok(dag) => {
                let _ = spec::dag::render(&wf, &dag, spec::DagFormat::Mermaid);
            }
            Err(d) => {
                let _ = d.to_string();
            }
        },
        Err(d) => {
            let _ = d.to_string();
        }
    }
});
