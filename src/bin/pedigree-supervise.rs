//! The step supervisor on its own (see `pedigree::steps::supervise`): a small
//! executable, so the exec that every step pays is cheap. The module is compiled
//! in directly rather than through the library, so the binary holds only it,
//! std and libc, not the whole of pedigree.

#[allow(dead_code)] // `command()` is for the orchestrator, not for this binary.
#[path = "../steps/supervise.rs"]
mod supervise;

fn main() -> std::process::ExitCode {
    supervise::main_from_args(std::env::args_os().skip(1))
}
