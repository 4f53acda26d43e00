//! Fail-safe revocation through the real `trucd`: started as `trucd --help`
//! shows, without `--crl`, it uses the CA directory's `crl.pem` and a
//! revocation takes effect; with no CRL anywhere it exits 64 saying what
//! to set; `--crl none` starts, with a warning.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use support::text;

use tonic::Code;
use truc_core::{AgencyCode, Principal};
use truc_pki::{IssueOptions, Pki};

const G22: &str = "000.00.00.G22";
const H26: &str = "000.00.00.H26";

fn trucd(pki: &Path, data: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_trucd"));
    c.args(["--identity", pki.join("hub").to_str().unwrap()])
        .args(["--data-dir", data.to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
        .args(extra)
        .env_remove("RUST_LOG");
    c
}

/// A running trucd (SIGKILLed on drop) and the log lines it wrote so far.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(mut cmd: Command) -> Running {
        let mut child = cmd.stderr(Stdio::piped()).spawn().expect("start trucd");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Wait (60 s at most) for the log line whose message is `message`.
    fn wait_for(&mut self, message: &str) -> serde_json::Value {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("no {message:?} in trucd's log:\n{}", self.seen.join("\n")));
            self.seen.push(line.clone());
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                if v["fields"]["message"] == message {
                    return v;
                }
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agency(code: &str) -> Principal {
    Principal::Agency(AgencyCode::parse(code).unwrap())
}

#[test]
fn trucd_without_crl_flag_uses_the_ca_crl_and_a_revocation_takes_effect() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    let pki = Pki::init(&dir, "axis", &[]).unwrap();
    for p in [agency(G22), agency(H26), Principal::Operator("ops".into())] {
        pki.issue(&p, "x", &IssueOptions::default()).unwrap();
    }
    // As `trucd --help` shows it, minus --crl.
    let mut hub = Running::start(trucd(&dir, &tmp.path().join("data"), &[]));
    let loaded = hub.wait_for("trust material loaded");
    assert_eq!(loaded["fields"]["crl"], dir.join("crl.pem").display().to_string());
    let addr = hub.wait_for("hub listening")["fields"]["addr"]
        .as_str()
        .unwrap()
        .to_string();

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let connect = |who: &str| {
            let (addr, path) = (addr.clone(), dir.join(who));
            async move { truc_client::Client::connect_dir(&addr, &path).await }
        };
        let op = connect("operators/ops").await.unwrap();
        op.add_agency(G22, "G22").await.unwrap();
        op.add_agency(H26, "H26").await.unwrap();
        let g22 = connect("agencies/000.00.00.G22").await.unwrap();
        let doc = |id: &str| {
            let h = truc_proto::v1::DocumentHeader {
                to: vec![H26.into()],
                document_id: id.into(),
                subject: id.into(),
                ..Default::default()
            };
            truc_client::sign_document(g22.identity(), h, b"x".to_vec()).unwrap()
        };
        g22.send(doc("before")).await.unwrap();

        pki.revoke_principal(&agency(G22)).unwrap();
        let r = op.reload().await.unwrap();
        assert_eq!((r.revoked_certificates, r.no_crl), (1, false));
        let fresh = connect("agencies/000.00.00.G22").await.unwrap();
        let err = fresh.send(doc("after")).await.unwrap_err();
        assert_eq!(err.code(), Some(Code::Unauthenticated), "{err:?}");
        assert!(err.to_string().contains("revoked"), "{err:?}");
        let err = g22.send(doc("after")).await.unwrap_err();
        assert_eq!(err.code(), Some(Code::Unauthenticated), "{err:?}");
    });
}

#[test]
fn trucd_with_no_crl_anywhere_exits_64_and_crl_none_starts_with_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    let pki = Pki::init(&dir, "axis", &[]).unwrap();
    std::fs::remove_file(pki.crl_path()).unwrap();
    let o = trucd(&dir, &tmp.path().join("data"), &[]).output().unwrap();
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
    let out = text(&o);
    for words in [
        format!("{} does not exist", pki.crl_path().display()),
        "--crl".into(),
        "tls.crl = \"none\"".into(),
    ] {
        assert!(out.contains(&words), "{out:?} should say {words:?}");
    }

    let mut hub = Running::start(trucd(&dir, &tmp.path().join("data"), &["--crl", "none"]));
    hub.wait_for("hub listening");
    let warned = hub
        .seen
        .iter()
        .any(|l| l.contains("\"WARN\"") && l.contains("revocations are NOT checked"));
    assert!(warned, "no warning in:\n{}", hub.seen.join("\n"));
}
