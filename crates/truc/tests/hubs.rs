//! Hub identities and peers with the real `truc` and `trucd`: `truc pki
//! init --hub` (and the old `--hub-name`), `truc pki issue --hub` for
//! another hub of a CA, an identity `trucd check-config` accepts as it is
//! (its receipt key, the CA's CRL found), the hint when a hub exists, and
//! `[[peers]]` errors naming the peer (exit 64).

mod support;

use std::path::Path;
use std::process::Command;

use support::{text, truc_command};

fn truc(dir: &Path, args: &[&str]) -> std::process::Output {
    truc_command(dir, args).output().unwrap()
}

/// `truc pki issue --dir PKI --hub ID --san SANS`.
fn issue_hub(dir: &Path, pki: &str, id: &str, sans: &str) -> std::process::Output {
    truc(dir, &["pki", "issue", "--dir", pki, "--hub", id, "--san", sans])
}

fn check_config(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_trucd"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("TRUC_")) {
        c.env_remove(k);
    }
    c.args(args).arg("check-config").current_dir(dir).output().unwrap()
}

fn principal(cert: &Path) -> String {
    let ders = truc_pki::read_cert_ders(cert).unwrap();
    truc_core::Principal::from_cert_der(&ders[0]).unwrap().uri()
}

#[test]
fn hub_identities_from_init_and_issue() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    // --hub names the hub; --hub-name, the old spelling, still works.
    let o = truc(
        t,
        &[
            "pki",
            "init",
            "--dir",
            "national",
            "--hub",
            "national",
            "--san",
            "national.example.vn",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(principal(&t.join("national/hub/cert.pem")), "urn:truc:hub:national");
    let o = truc(t, &["pki", "init", "--dir", "h49", "--hub-name", "h49"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(principal(&t.join("h49/hub/cert.pem")), "urn:truc:hub:h49");

    // Another hub of the national CA: an identity trucd runs with.
    let o = issue_hub(t, "national", "g12", "g12.example.vn,10.0.0.12");
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("run it with: trucd --identity national/hubs/g12"), "{out}");
    for f in ["cert.pem", "key.pem", "ca.pem", "receipts.key", "receipts.pub"] {
        assert!(t.join("national/hubs/g12").join(f).is_file(), "{f}");
    }
    assert_eq!(principal(&t.join("national/hubs/g12/cert.pem")), "urn:truc:hub:g12");
    let o = check_config(t, &["--identity", "national/hubs/g12", "--data-dir", "g12-data"]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("hub: urn:truc:hub:g12; checkpoints g12.truc/receipts+"),
        "{out}"
    );
    assert!(
        out.contains("national/crl.pem"),
        "the CA's CRL is found from hubs/g12: {out}"
    );

    // Issued again: refused, with the command that adds names instead.
    let o = issue_hub(t, "national", "g12", "g12-b.example.vn");
    let out = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(out.contains("already has an identity"), "{out}");
    assert!(out.contains("truc pki renew --dir national --hub g12 --san"), "{out}");

    let o = truc(t, &["pki", "issue", "--help"]);
    assert!(text(&o).contains("truc pki issue --dir pki --hub h49 --san h49.truc.gov.vn,10.49.0.1"));
}

#[test]
fn peers_in_the_config_file() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    for (dir, hub) in [("h49", "h49"), ("national", "national")] {
        let o = truc(t, &["pki", "init", "--dir", dir, "--hub", hub]);
        assert!(o.status.success(), "{}", text(&o));
    }
    let config = |serves: &str| {
        format!(
            "identity = \"h49/hub\"\ndata_dir = \"data\"\n[federation]\nserves = [\"*.H49\", \"H49.*\"]\n\
             default_peer = \"national\"\n[[peers]]\nid = \"national\"\naddress = \"127.0.0.1:7443\"\n\
             ca = \"national/ca.pem\"\nserves = {serves}\n"
        )
    };
    std::fs::write(t.join("good.toml"), config("[\"*.G22\", \"G22.*\"]")).unwrap();
    let o = check_config(t, &["--config", "good.toml"]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("peer national: https://127.0.0.1:7443 (CA national/ca.pem), serves *.G22 G22.*; default route"),
        "{out}"
    );
    std::fs::write(t.join("bad.toml"), config("[\"*.G22\", \"g22.*\"]")).unwrap();
    let o = check_config(t, &["--config", "bad.toml"]);
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
    assert!(
        text(&o).contains(r#"peers[0].serves[1] (peer national) = "g22.*": agency codes are upper-case"#),
        "{}",
        text(&o)
    );
    // A peer with this hub's own id: found at start, once the certificate is read.
    std::fs::write(
        t.join("self.toml"),
        config("[]")
            .replace("id = \"national\"", "id = \"h49\"")
            .replace("\"national\"\n[[", "\"h49\"\n[["),
    )
    .unwrap();
    let o = check_config(t, &["--config", "self.toml"]);
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
    assert!(text(&o).contains("peer h49 has this hub's own id"), "{}", text(&o));
}
