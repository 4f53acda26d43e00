//! The crash-consistency run, short: `truc-chaos --cycles 3` against the real
//! `trucd`, killed with SIGKILL under load three times.
//!
//! `trucd` is the one in the same target directory as `truc-chaos`
//! (`target/<profile>/trucd`). Cargo builds it for `cargo test --workspace`
//! (it is a binary of the `truc` package); when it is missing, as after
//! `cargo test -p truc-chaos` on a clean tree, this test builds it first
//! with `cargo build -p truc --bin trucd` (`--release` for a release test
//! run). Under `cargo test -p truc-chaos` alone an existing `trucd` is used
//! as it is: run `cargo build -p truc` first to test the current hub.
//! `TRUC_CHAOS_TRUCD=PATH` names another binary.
//!
//! The long run (50 cycles) is `target/release/truc-chaos --cycles 50` after
//! `cargo build --release -p truc -p truc-chaos`.

#[path = "../../../tests/skip.rs"]
mod skip;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// `target/<profile>/trucd`, built when missing.
fn trucd(chaos: &Path) -> PathBuf {
    if let Some(p) = std::env::var_os("TRUC_CHAOS_TRUCD") {
        return PathBuf::from(p);
    }
    let dir = chaos.parent().expect("the directory of truc-chaos");
    let trucd = dir.join("trucd");
    if !trucd.is_file() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", "truc", "--bin", "trucd"]);
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("running cargo build -p truc --bin trucd");
        assert!(status.success(), "cargo build -p truc --bin trucd: {status}");
        assert!(trucd.is_file(), "no {} after cargo build", trucd.display());
    }
    trucd
}

/// Run truc-chaos with `args` for `cycles` cycles against the `trucd` beside
/// it; check it succeeded and that its last line is the summary of a run
/// that lost nothing. Returns its stdout and the context for messages.
fn run_chaos(cycles: u32, args: &[&std::ffi::OsStr]) -> (String, String) {
    let chaos = PathBuf::from(env!("CARGO_BIN_EXE_truc-chaos"));
    let trucd = trucd(&chaos);
    let out = Command::new(&chaos)
        .arg("--cycles")
        .arg(cycles.to_string())
        .args(args)
        .arg("--trucd")
        .arg(&trucd)
        .output()
        .expect("running truc-chaos");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let context = format!("exit {}\n--- stdout\n{stdout}--- stderr\n{stderr}", out.status);
    assert!(out.status.success(), "truc-chaos failed: {context}");
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(&format!("cycles={cycles} accepted=")),
        "summary line: {context}"
    );
    // The federation topology ends on the line, phantoms on the
    // line before it.
    let federation = args.windows(2).any(|w| w[0] == "--topology" && w[1] == "federation");
    if federation {
        assert!(
            last.ends_with(" lost=0 dup_after_ack=0 log=ok"),
            "summary line: {context}"
        );
        let before = stdout.lines().rev().nth(1).unwrap_or_default();
        assert_eq!(before, "phantoms=0", "phantoms: {context}");
    } else {
        assert!(
            last.contains(" lost=0 dup_after_ack=0 log=ok phantoms=0"),
            "summary line: {context}"
        );
    }
    (stdout, context)
}

/// `accepted=X` of the summary line.
fn accepted(stdout: &str) -> u64 {
    let last = stdout.lines().last().unwrap_or_default();
    last.split_whitespace()
        .find_map(|f| f.strip_prefix("accepted="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn three_sigkill_cycles_lose_nothing_and_the_log_verifies() {
    let started = Instant::now();
    let args = [
        "--senders",
        "4",
        "--receivers",
        "4",
        "--min-kill-ms",
        "300",
        "--max-kill-ms",
        "1200",
    ];
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    let (stdout, context) = run_chaos(3, &args);
    assert!(accepted(&stdout) > 0, "nothing was accepted under load: {context}");
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("cycle ")).count(),
        3,
        "one line per cycle: {context}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "took {:?}: {context}",
        started.elapsed()
    );
}

/// The short failure run of the replicated store: a 3-node NATS JetStream
/// cluster (R3) and two hubs; each cycle SIGKILLs a NATS node and then the
/// loaded hub, and checks everything through the other hub.
#[test]
fn cluster_node_and_hub_kills_lose_nothing_and_the_log_verifies() {
    let found = truc_store_jetstream::find_nats_server();
    if !skip::require(found.is_some(), "TRUC_SKIP_NATS_TESTS", skip::NO_NATS) {
        return;
    }
    let nats = found.expect("nats-server");
    let mut args: Vec<&std::ffi::OsStr> = ["--topology", "cluster", "--senders", "3", "--receivers", "3"]
        .iter()
        .chain(&["--min-kill-ms", "400", "--max-kill-ms", "1200", "--nats-server"])
        .map(std::ffi::OsStr::new)
        .collect();
    args.push(nats.as_os_str());
    let (stdout, context) = run_chaos(2, &args);
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.starts_with("cycle ") && l.contains("SIGKILLed"))
            .count(),
        2,
        "a NATS node and a hub killed in each cycle: {context}"
    );
}

/// The short federation run: three hubs with a CA each (h49, national,
/// g12); every document is relayed through the national hub, which is
/// SIGKILLed and restarted under load in each cycle; every hub's log
/// verifies with its own key.
#[test]
fn federation_national_hub_kills_lose_nothing_and_every_log_verifies() {
    let args: Vec<&std::ffi::OsStr> = [
        "--topology",
        "federation",
        "--senders",
        "2",
        "--receivers",
        "3",
        "--min-kill-ms",
        "400",
        "--max-kill-ms",
        "900",
    ]
    .iter()
    .map(std::ffi::OsStr::new)
    .collect();
    let (stdout, context) = run_chaos(2, &args);
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.starts_with("cycle ") && l.contains("national SIGKILLed"))
            .count(),
        2,
        "the national hub killed in each cycle: {context}"
    );
    // Every document goes to agencies on other hubs: all of them relayed.
    assert!(accepted(&stdout) > 0, "nothing was accepted under load: {context}");
    let fin = stdout.lines().find(|l| l.starts_with("final: ")).unwrap_or_default();
    for hub in ["h49", "national", "g12"] {
        let size: u64 = fin
            .split(&format!("{hub} "))
            .nth(1)
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!(size > 0, "{hub}'s log was not exported and verified: {context}");
    }
}
