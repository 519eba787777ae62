fn main() -> std::process::ExitCode {
    pedigree::cli::main()
}
