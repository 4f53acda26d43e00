//! What the tests of the real `truc` binary share.
// Each test file uses part of it.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output};

/// stdout then stderr, for assertion messages.
pub(crate) fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `truc args` run in `dir`, with nothing of the caller's environment that
/// would change what it does (no hub, identity, context, UTC offset or
/// colour from the shell); its saved contexts live in `dir`.
pub(crate) fn truc_command(dir: &Path, args: &[impl AsRef<OsStr>]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_truc"));
    c.args(args)
        .current_dir(dir)
        .env_remove("TRUC_HUB")
        .env_remove("TRUC_IDENTITY")
        .env_remove("TRUC_CONTEXT")
        .env_remove("TRUC_UTC_OFFSET")
        .env("TRUC_CONTEXTS", dir.join("contexts.json"))
        .env("NO_COLOR", "1");
    c
}

/// A port on 127.0.0.1 that was free a moment ago (for a `trucd` child).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}
