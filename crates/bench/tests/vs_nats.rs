//! `truc-bench --vs nats` end to end, briefly: the real trucd (built next
//! to truc-bench) and a real nats-server with mTLS. CI installs nats-server
//! (.ci/run), so there this test always runs; elsewhere it says loudly that
//! it did not.

#[path = "../../../tests/skip.rs"]
mod skip;

use std::path::Path;
use std::process::Command;

/// Run truc-bench with `args`; its stdout and stderr, once it has
/// succeeded.
fn bench(args: &mut Command) -> (String, String) {
    let out = args.output().expect("run truc-bench");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "truc-bench failed\n{stdout}\n{stderr}");
    (stdout, stderr)
}

/// A second of load, small: what each test runs.
const SHORT: [&str; 16] = [
    "--duration",
    "1",
    "--agencies",
    "2",
    "--size",
    "1024",
    "--window",
    "8",
    "--credit",
    "16",
    "--warmup",
    "50",
    "--presign-mib",
    "64",
    "--ceiling-seconds",
    "0.3",
];

#[test]
fn truc_bench_vs_nats_prints_the_ratio_last() {
    let found = truc_store_jetstream::find_nats_server();
    if !skip::require(found.is_some(), "TRUC_SKIP_NATS_TESTS", skip::NO_NATS) {
        return;
    }
    let nats = found.expect("nats-server");
    let bench_bin = Path::new(env!("CARGO_BIN_EXE_truc-bench"));
    let trucd = bench_bin.with_file_name("trucd");
    assert!(
        trucd.is_file(),
        "{} is missing: build it first (cargo build -p truc)",
        trucd.display()
    );
    let (stdout, stderr) = bench(
        Command::new(bench_bin)
            .args(["--vs", "nats"])
            .args(SHORT)
            .arg("--nats-server")
            .arg(&nats),
    );
    for label in [
        "truc (fjall, every Send flushed before acceptance)",
        "NATS JetStream (sync_interval: always)",
        "NATS default (fsync every 2 min: NOT equal durability)",
    ] {
        assert!(stdout.contains(label), "no row {label:?}\n{stdout}");
    }
    assert!(!stdout.contains("INCOMPLETE"), "{stdout}\n{stderr}");
    // truc/ceiling: X.XX (truc A docs/s; verification alone B docs/s on N cores, KEY, S B)
    let ceiling = stdout
        .lines()
        .find_map(|l| l.strip_prefix("truc/ceiling: "))
        .unwrap_or_else(|| panic!("no ceiling line\n{stdout}"));
    let (fraction, rest) = ceiling.split_once(" (truc ").expect("truc figure");
    let (truc, rest) = rest.split_once(" docs/s; verification alone ").expect("ceiling figure");
    let (alone, rest) = rest.split_once(" docs/s on ").expect("cores");
    assert!(rest.ends_with(", ecdsa-p256, 1024 B)"), "{ceiling}");
    let (fraction, truc, alone): (f64, f64, f64) =
        (fraction.parse().unwrap(), truc.parse().unwrap(), alone.parse().unwrap());
    assert!(alone > 0.0 && (fraction - truc / alone).abs() < 0.01, "{ceiling}");
    let last = stdout.lines().last().unwrap_or_default();
    // ratio truc/nats: X.XX (truc A docs/s, nats B msgs/s, size S)
    let rest = last
        .strip_prefix("ratio truc/nats: ")
        .unwrap_or_else(|| panic!("last line {last:?}"));
    let (ratio, rest) = rest.split_once(" (truc ").expect("truc figure");
    let (truc, rest) = rest.split_once(" docs/s, nats ").expect("nats figure");
    let (nats_rate, size) = rest.split_once(" msgs/s, size ").expect("size");
    let ratio: f64 = ratio.parse().expect("ratio");
    let truc: f64 = truc.parse().expect("truc rate");
    let nats_rate: f64 = nats_rate.parse().expect("nats rate");
    assert_eq!(size, "1024)");
    assert!(truc > 0.0 && nats_rate > 0.0, "{last}");
    assert!((ratio - truc / nats_rate).abs() < 0.02, "{last}");
}

#[test]
fn truc_bench_on_the_jetstream_store_compares_with_r3_streams_on_its_cluster() {
    let found = truc_store_jetstream::find_nats_server();
    if !skip::require(found.is_some(), "TRUC_SKIP_NATS_TESTS", skip::NO_NATS) {
        return;
    }
    let bench_bin = Path::new(env!("CARGO_BIN_EXE_truc-bench"));
    let keep = tempfile::tempdir().expect("tempdir");
    let (stdout, stderr) = bench(
        Command::new(bench_bin)
            .arg("--keep")
            .arg(keep.path())
            .args(["--store", "jetstream", "--vs", "nats", "--resources"])
            .args(SHORT)
            .arg("--nats-server")
            .arg(found.expect("nats-server")),
    );
    for label in [
        "truc (JetStream R3 store, sync_interval: always)",
        "NATS JetStream R3 (sync_interval: always)",
    ] {
        assert!(stdout.contains(label), "no row {label:?}\n{stdout}");
    }
    assert!(!stdout.contains("NATS default"), "{stdout}");
    assert!(!stdout.contains("INCOMPLETE"), "{stdout}\n{stderr}");
    assert!(stdout.contains("its NATS cluster (3 nodes together)"), "{stdout}");
    assert!(stderr.contains("3-node NATS cluster"), "{stderr}");
    assert!(
        stdout
            .lines()
            .last()
            .unwrap_or_default()
            .starts_with("ratio truc/nats: "),
        "{stdout}"
    );
    // trucd kept its state on the cluster, three replicas.
    let log = std::fs::read_to_string(keep.path().join("run1/trucd.log")).expect("trucd.log");
    let open = log
        .lines()
        .find(|l| l.contains("JetStream store open"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        open.contains("replicas=3") && open.matches("tls://127.0.0.1:").count() == 3,
        "{open}"
    );
}
