//! The step supervisor on its own (see `pedigree::steps::supervise`): a small
//! executable, so the exec that every step pays is cheap.

fn main() -> std::process::ExitCode {
    pedigree::steps::supervise::main_from_args(std::env::args_os().skip(1))
}
