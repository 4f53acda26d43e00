//! Key hygiene through the real binaries: `truc` and `trucd` refuse private
//! keys that group or others may read, naming the file and the `chmod` to
//! run; `truc pki issue` does not replace an identity unless told to
//! (`--force`), and then keeps the old certificate and says how to revoke
//! it. trucd running as another user than the keys' owner (a container's
//! 65532 and keys mounted 0600 root) says whose they are and the chown.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

#[path = "../../../tests/skip.rs"]
mod skip;

fn truc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_truc"))
        .args(args)
        .output()
        .expect("run truc")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn pki_issue_refuses_to_replace_an_identity_without_force() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = tmp.path().join("pki");
    let p = pki.to_str().unwrap();
    assert!(truc(&["pki", "init", "--dir", p]).status.success());
    let issue = |force: bool| {
        let mut args = vec!["pki", "issue", "--dir", p, "--agency", "000.00.00.G22"];
        if force {
            args.push("--force");
        }
        truc(&args)
    };
    let first = issue(false);
    assert!(first.status.success(), "{}", text(&first));
    let dir = pki.join("agencies/000.00.00.G22");
    let key = fs::read(dir.join("key.pem")).unwrap();
    let cert = fs::read(dir.join("cert.pem")).unwrap();
    // The CA's own certificate is serial 01, the hub's 02, G22's 03.
    let again = issue(false);
    assert!(!again.status.success());
    let out = text(&again);
    assert!(
        out.contains("already has an identity") && out.contains("serial 03") && out.contains("--force"),
        "{out}"
    );
    assert_eq!(fs::read(dir.join("key.pem")).unwrap(), key, "the key must not change");

    let forced = issue(true);
    let out = text(&forced);
    assert!(forced.status.success(), "{out}");
    assert_ne!(fs::read(dir.join("key.pem")).unwrap(), key);
    assert_eq!(
        fs::read(dir.join("cert.pem.old-03")).unwrap(),
        cert,
        "old certificate kept"
    );
    assert!(out.contains(&format!("truc pki revoke --dir {p} --serial 03")), "{out}");
    // The old serial is still valid until revoked, then it is.
    let revoke = truc(&["pki", "revoke", "--dir", p, "--serial", "03"]);
    assert!(revoke.status.success(), "{}", text(&revoke));
    assert!(text(&revoke).contains("revoked serial 03"));
}

#[test]
fn truc_and_trucd_refuse_keys_readable_by_others() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = tmp.path().join("pki");
    let p = pki.to_str().unwrap();
    assert!(truc(&["pki", "init", "--dir", p]).status.success());
    assert!(truc(&["pki", "issue", "--dir", p, "--operator", "ops"])
        .status
        .success());

    // truc: an operator command with a world-readable key stops before
    // connecting anywhere.
    let ops = pki.join("operators/ops");
    let key = ops.join("key.pem");
    chmod(&key, 0o644);
    let o = truc(&[
        "ops",
        "agencies",
        "list",
        "--hub",
        "127.0.0.1:9",
        "--identity",
        ops.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let out = text(&o);
    assert!(out.contains(&format!("run `chmod 600 {}`", key.display())), "{out}");

    // truc pki: the CA key.
    let ca_key = pki.join("ca.key");
    chmod(&ca_key, 0o640);
    let o = truc(&["pki", "issue", "--dir", p, "--operator", "other"]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains(&format!("chmod 600 {}", ca_key.display())),
        "{}",
        text(&o)
    );

    // trucd: the hub's TLS key and its receipt key; exit 64 (configuration).
    for file in ["key.pem", "receipts.key"] {
        let path = pki.join("hub").join(file);
        chmod(&path, 0o644);
        let o = Command::new(env!("CARGO_BIN_EXE_trucd"))
            .args(["--identity", pki.join("hub").to_str().unwrap()])
            .args(["--data-dir", tmp.path().join("data").to_str().unwrap()])
            .args(["--listen", "127.0.0.1:0"])
            .output()
            .expect("run trucd");
        assert_eq!(o.status.code(), Some(64), "{file}: {}", text(&o));
        let out = text(&o);
        assert!(
            out.contains(&format!("run `chmod 600 {}`", path.display())),
            "{file}: {out}"
        );
        chmod(&path, 0o600);
    }
}

/// The container's case: trucd runs as uid 65532, the hub's keys are root's
/// and 0600. trucd stops (exit 64) naming the owner, its own uid and the
/// `chown` to run, not with a bare "permission denied". Needs root (to run
/// trucd as another user with setpriv); TRUC_SKIP_ROOT_TESTS=1 skips it.
#[test]
fn trucd_as_another_user_than_the_keys_owner_names_the_chown() {
    let root = rustix_like_is_root();
    let setpriv = Command::new("setpriv").arg("--version").output().is_ok();
    if !skip::require(
        root && setpriv,
        "TRUC_SKIP_ROOT_TESTS",
        "this test runs trucd as uid 65532 with setpriv and needs root",
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    chmod(tmp.path(), 0o755);
    let pki = tmp.path().join("pki");
    let p = pki.to_str().unwrap();
    assert!(truc(&["pki", "init", "--dir", p]).status.success());
    // What a read-only mount shows the container: directories it may
    // enter, the keys as root left them.
    chmod(&pki, 0o755);
    chmod(&pki.join("hub"), 0o755);
    let data = tmp.path().join("data");
    fs::create_dir(&data).unwrap();
    assert!(Command::new("chown")
        .arg("65532:65532")
        .arg(&data)
        .status()
        .unwrap()
        .success());
    let o = Command::new("setpriv")
        .args(["--reuid=65532", "--regid=65532", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_trucd"))
        .args(["--identity", pki.join("hub").to_str().unwrap()])
        .args(["--data-dir", data.to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .expect("run trucd");
    let out = text(&o);
    assert_eq!(o.status.code(), Some(64), "{out}");
    // The first key it reads (receipts.key, then key.pem).
    let key = ["receipts.key", "key.pem"]
        .map(|f| pki.join("hub").join(f))
        .into_iter()
        .find(|k| out.contains(&format!("{}: private key owned by uid 0 (mode 0600)", k.display())))
        .unwrap_or_else(|| panic!("no key named as root's: {out}"));
    assert!(out.contains("this process runs as uid 65532"), "{out}");
    assert!(out.contains(&format!("`chown 65532 {}`", key.display())), "{out}");
}

fn rustix_like_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false)
}
