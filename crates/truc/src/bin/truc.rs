//! `truc`: one CLI for agencies, operators and auditors. See `truc --help`.
fn main() -> std::process::ExitCode {
    truc::cli::main()
}
