//! `trucd`: the Truc hub daemon. See `trucd --help`.
fn main() -> std::process::ExitCode {
    truc::daemon::main()
}
