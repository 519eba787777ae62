//! The step supervisor on its own (see `pedigree::steps::supervise`): a small
//! executable, so the exec that every step pays is cheap. The modules are
//! compiled in directly rather than through the library, so the binary holds
//! only them, std and libc, not the whole of pedigree.

#[allow(dead_code)] // `command()` is for the orchestrator, not for this binary.
#[path = "../steps/supervise.rs"]
mod supervise;

#[allow(dead_code)] // Policy::for_step is for the orchestrator.
#[path = "../steps/sandbox.rs"]
mod sandbox;

fn main() -> std::process::ExitCode {
    supervise::main_from_args(std::env::args_os().skip(1))
}
