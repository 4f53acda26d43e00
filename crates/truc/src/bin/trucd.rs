//! `trucd`: the Truc hub daemon. See `trucd --help`.

/// jemalloc rather than the system allocator: the store's writer allocates
/// and frees a copy of a tree node for every key it writes, which glibc's
/// malloc served at a fifth of the hub's CPU. mimalloc was as fast but held
/// 60 % more memory (BENCHMARKS.md, issue 18).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    truc::daemon::main()
}
