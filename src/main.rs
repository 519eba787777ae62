#[global_allocator]
static ALLOCATOR: pedigree::alloc::LineAligned = pedigree::alloc::LineAligned;

fn main() -> std::process::ExitCode {
    pedigree::cli::main()
}
