//! The large-document baselines end to end on a small file: `tls-copy
//! --verified` (three processes, both hops checked) and `nats-object-copy`
//! (a real nats-server; skipped loudly without one, as in vs_nats.rs).

#[path = "../../../tests/skip.rs"]
mod skip;

use std::path::Path;
use std::process::Command;

const FROM: &str = "000.00.00.G22";
const TO: &str = "000.00.00.H26";

/// A PKI with the two agencies, and a 3 MiB file.
fn setup(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let pki = dir.join("pki");
    let ca = truc_pki::Pki::init(&pki, "bench", &[]).expect("pki init");
    for code in [FROM, TO] {
        let p = truc_core::Principal::Agency(truc_core::AgencyCode::parse(code).unwrap());
        ca.issue(&p, code, &truc_pki::IssueOptions::default()).expect("issue");
    }
    let file = dir.join("file.bin");
    std::fs::write(&file, truc_load::random_bytes(3 << 20, 42)).unwrap();
    (pki, file)
}

/// Run `cmd`; its last line of output, once it has succeeded.
fn last_line(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.lines().last().unwrap_or_default().to_string()
}

/// `<what>: N bytes in T s (R MiB/s); <first> U s, <second> D s` → (N, T, U, D).
fn times(line: &str, first: &str, second: &str) -> (u64, f64, f64, f64) {
    let n = line
        .split(": ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .expect("bytes");
    let field = |after: &str| -> f64 {
        let rest = line
            .split(after)
            .nth(1)
            .unwrap_or_else(|| panic!("no {after:?} in {line:?}"));
        rest.split(' ').next().unwrap().parse().expect("seconds")
    };
    (
        n.parse().expect("bytes"),
        field(" in "),
        field(&format!("{first} ")),
        field(&format!("{second} ")),
    )
}

#[test]
fn tls_copy_verified_times_both_legs_of_a_checked_store_and_forward() {
    let dir = tempfile::tempdir().unwrap();
    let (pki, file) = setup(dir.path());
    for direct in [false, true] {
        let work = dir.path().join(format!("work-{direct}"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tls-copy"));
        cmd.args(["--verified", "--pki"])
            .arg(&pki)
            .args(["--from", FROM, "--to", TO, "--work"])
            .arg(&work);
        if direct {
            cmd.arg("--direct");
        }
        let line = last_line(cmd.arg(&file));
        assert!(line.starts_with("verified store-and-forward"), "{line}");
        let (n, total, up, down) = times(&line, "upload", "download");
        assert_eq!(n, 3 << 20, "{line}");
        assert!(up > 0.0 && down > 0.0 && (total - up - down).abs() < 0.002, "{line}");
        // Each process says what it checked; the digests agree end to end.
        let sent = std::fs::read_to_string(work.join("send.out")).unwrap();
        let got = std::fs::read_to_string(work.join("fetch.out")).unwrap();
        let digest = |s: &str| s.rsplit("sha256 ").next().unwrap().trim().to_string();
        assert_eq!(digest(&sent), digest(&got));
        assert_eq!(digest(&sent).len(), 64, "{sent}");
        // Nothing large is left behind.
        assert!(!work.join("relay.bin").exists() && !work.join("received.bin").exists());
    }
}

#[test]
fn nats_object_copy_puts_then_gets_the_file() {
    let found = truc_store_jetstream::find_nats_server();
    if !skip::require(found.is_some(), "TRUC_SKIP_NATS_TESTS", skip::NO_NATS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (pki, file) = setup(dir.path());
    let line = last_line(
        Command::new(env!("CARGO_BIN_EXE_nats-object-copy"))
            .arg("--pki")
            .arg(&pki)
            .args(["--from", FROM, "--to", TO, "--work"])
            .arg(dir.path().join("work"))
            .arg("--nats-server")
            .arg(found.unwrap())
            .arg(&file),
    );
    assert!(line.starts_with("nats object store"), "{line}");
    let (n, total, put, get) = times(&line, "put", "get");
    assert_eq!(n, 3 << 20, "{line}");
    assert!(put > 0.0 && get > 0.0 && (total - put - get).abs() < 0.002, "{line}");
    assert!(line.contains("131072 B chunks"), "{line}");
}
