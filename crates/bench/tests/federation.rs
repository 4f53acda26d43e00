//! `truc-bench --topology federation`, briefly: three real trucd with a CA
//! each (h49 → national → g12) beside one hub with the same load; both
//! rows complete and the last line is their ratio.

use std::path::Path;
use std::process::Command;

#[test]
fn truc_bench_relay_through_the_national_hub_prints_its_ratio_to_one_hub_last() {
    let bench_bin = Path::new(env!("CARGO_BIN_EXE_truc-bench"));
    let trucd = bench_bin.with_file_name("trucd");
    assert!(
        trucd.is_file(),
        "{} is missing: build it first (cargo build -p truc)",
        trucd.display()
    );
    let keep = tempfile::tempdir().expect("tempdir");
    let out = Command::new(bench_bin)
        .args([
            "--topology",
            "federation",
            "--duration",
            "1",
            "--agencies",
            "2",
            "--size",
            "1024",
        ])
        .args([
            "--window",
            "4",
            "--credit",
            "16",
            "--warmup",
            "20",
            "--presign-mib",
            "16",
        ])
        .args(["--ceiling-seconds", "0.3", "--keep"])
        .arg(keep.path())
        .output()
        .expect("run truc-bench");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "truc-bench failed\n{stdout}\n{stderr}");
    for label in ["truc, one hub (sled)", "truc, relay h49 → national → g12 (3 hubs)"] {
        assert!(stdout.contains(label), "no row {label:?}\n{stdout}");
    }
    assert!(!stdout.contains("INCOMPLETE"), "{stdout}\n{stderr}");
    // The relay's receivers were at g12, its senders at h49.
    let g12 = std::fs::read_dir(keep.path().join("run1/federation/g12/pki/agencies"))
        .expect("g12's agencies")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect::<Vec<_>>();
    assert!(g12.iter().any(|c| c == "G12.R001"), "{g12:?}");
    // ratio relay/one hub: X.XX (relay A docs/s end to end, one hub B docs/s, size S)
    let last = stdout.lines().last().unwrap_or_default();
    let rest = last
        .strip_prefix("ratio relay/one hub: ")
        .unwrap_or_else(|| panic!("last line {last:?}\n{stdout}"));
    let (ratio, rest) = rest.split_once(" (relay ").expect("relay figure");
    let (relay, rest) = rest.split_once(" docs/s end to end, one hub ").expect("one-hub figure");
    let (one, size) = rest.split_once(" docs/s, size ").expect("size");
    let (ratio, relay, one): (f64, f64, f64) = (
        ratio.parse().expect("ratio"),
        relay.parse().expect("relay rate"),
        one.parse().expect("one-hub rate"),
    );
    assert_eq!(size, "1024)");
    assert!(relay > 0.0 && one > 0.0, "{last}");
    assert!((ratio - relay / one).abs() < 0.02, "{last}");
}
