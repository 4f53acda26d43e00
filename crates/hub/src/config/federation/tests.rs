use std::collections::BTreeMap;
use std::path::PathBuf;

use truc_core::routing::{HubId, Route};

use crate::config::{Config, ConfigError};

/// A directory with two real CAs (`national/ca.pem`, `g12/ca.pem`), removed
/// on drop.
struct Cas(PathBuf);

impl Cas {
    fn new(tag: &str) -> Cas {
        let dir = std::env::temp_dir().join(format!("truc-peers-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for hub in ["national", "g12"] {
            truc_pki::Pki::init(&dir.join(hub), hub, &[]).unwrap();
        }
        Cas(dir)
    }

    fn ca(&self, hub: &str) -> String {
        self.0.join(hub).join("ca.pem").display().to_string()
    }

    fn crl(&self, hub: &str) -> String {
        self.0.join(hub).join("crl.pem").display().to_string()
    }
}

impl Drop for Cas {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn load(text: &str) -> Result<Config, ConfigError> {
    Config::load(Some(("t.toml", text)), &BTreeMap::new())
}

fn error(text: &str) -> String {
    load(text).unwrap_err().to_string()
}

fn id(s: &str) -> HubId {
    HubId::parse(s).unwrap()
}

/// The province hub's configuration of the docs.
fn h49(cas: &Cas) -> String {
    format!(
        r#"
[federation]
serves = ["*.H49", "H49.*"]
default_peer = "national"

[[peers]]
id = "national"
address = "national.truc.gov.vn:7443"
ca = "{}"
crl = "{}"
serves = ["*.G22", "G22.*"]

[[peers]]
id = "g12"
address = "https://10.0.0.12:7443"
ca = "{}"
serves = ["*.G12", "G12.*", "000.00.00.G22"]
"#,
        cas.ca("national"),
        cas.crl("national"),
        cas.ca("g12")
    )
}

#[test]
fn peers_and_routes_load_from_the_file() {
    let cas = Cas::new("load");
    let cfg = load(&h49(&cas)).unwrap();
    assert_eq!(cfg.peers.len(), 2);
    assert_eq!(cfg.federation.max_hops, 8);
    assert_eq!(cfg.peers[0].url().unwrap(), "https://national.truc.gov.vn:7443");
    assert_eq!(cfg.peers[1].url().unwrap(), "https://10.0.0.12:7443");
    let t = cfg.routing_table(Some(&id("h49"))).unwrap();
    let code = |s: &str| truc_core::AgencyCode::parse(s).unwrap();
    assert_eq!(t.route(&code("000.00.00.G22"), false), Route::Peer(id("g12")));
    assert_eq!(t.route(&code("000.00.01.G22"), false), Route::Peer(id("national")));
    assert_eq!(t.route(&code("000.00.00.H29"), false), Route::Peer(id("national")));
    assert!(matches!(t.route(&code("000.00.01.H49"), false), Route::Unroutable(_)));
    // This hub's own id among the peers: found once the id is known.
    let e = cfg.routing_table(Some(&id("g12"))).unwrap_err().to_string();
    assert_eq!(e, "routing: peer g12 has this hub's own id");
    // No federation at all: the default.
    let cfg = load("").unwrap();
    assert!(cfg.peers.is_empty() && cfg.federation.default_peer.is_none());
}

#[test]
fn errors_name_the_peer_the_key_and_the_value() {
    let cas = Cas::new("errors");
    let good = h49(&cas);
    let cases: Vec<(String, &str)> = vec![
        (
            good.replace(r#"serves = ["*.G12","#, r#"serves = ["*.g12","#),
            r#"peers[1].serves[0] (peer g12) = "*.g12": agency codes are upper-case"#,
        ),
        (
            good.replace(r#"id = "g12""#, r#"id = "G12""#),
            r#"peers[1].id = "G12": hub id "G12": expected lower-case"#,
        ),
        (
            good.replace("national.truc.gov.vn:7443", "http://national.truc.gov.vn:7443"),
            r#"peers[0].address (peer national) = "http://national.truc.gov.vn:7443": scheme http:// is not allowed"#,
        ),
        (
            good.replace("national.truc.gov.vn:7443", "national.truc.gov.vn"),
            "peers[0].address (peer national) = \"national.truc.gov.vn\": no port",
        ),
        (
            good.replace(&cas.ca("g12"), "/nonexistent/g12-ca.pem"),
            "peers[1].ca (peer g12) = /nonexistent/g12-ca.pem:",
        ),
        (
            good.replace(&cas.crl("national"), &cas.ca("national")),
            "peers[0].crl (peer national) =",
        ),
        (
            good.replace(r#""000.00.00.G22"]"#, r#""*.G22"]"#),
            "routing: *.G22 is served by both peer national and peer g12",
        ),
        (
            good.replace(r#"serves = ["*.H49", "H49.*"]"#, r#"serves = ["*.H49", "G22.*"]"#),
            "routing: G22.* is served by both this hub and peer national",
        ),
        (
            good.replace(r#"default_peer = "national""#, r#"default_peer = "nationl""#),
            r#"federation.default_peer = "nationl": default_peer nationl is not one of the configured peers"#,
        ),
        (
            good.replace(r#"id = "g12""#, r#"id = "national""#),
            "routing: peer national is configured twice",
        ),
        (
            good.replace("default_peer", "max_hops = 0\ndefault_peer"),
            "federation.max_hops = 0: must be in 1..=64",
        ),
        (good.replace("crl =", "crls ="), "unknown field `crls`"),
    ];
    for (text, want) in cases {
        let e = error(&text);
        assert!(e.contains(want), "expected {want:?} in:\n{e}");
    }
}

#[test]
fn peer_addresses() {
    use super::peer_url;
    for (ok, url) in [
        ("hub:7443", "https://hub:7443"),
        ("https://hub.example.vn:443/", "https://hub.example.vn:443"),
        ("[::1]:7443", "https://[::1]:7443"),
        ("127.0.0.1:1", "https://127.0.0.1:1"),
    ] {
        assert_eq!(peer_url(ok).unwrap(), url);
    }
    for bad in [
        "hub",
        "hub:0",
        "hub:99999",
        "::1:7443",
        "grpc://hub:1",
        "https://hub:1/x",
        "u@hub:1",
        ":7443",
    ] {
        assert!(peer_url(bad).is_err(), "{bad}");
    }
}

#[test]
fn origins_load_and_their_errors_name_the_origin_and_the_key() {
    let cas = Cas::new("origins");
    let origin =
        |id: &str, ca: &str, serves: &str| format!("\n[[origins]]\nid = \"{id}\"\nca = \"{ca}\"\nserves = {serves}\n");
    // g12 (not a peer here) as an origin: loads, with its patterns.
    let base = h49(&cas).replace(
        &format!(
            "\n[[peers]]\nid = \"g12\"\naddress = \"https://10.0.0.12:7443\"\nca = \"{}\"\nserves = [\"*.G12\", \"G12.*\", \"000.00.00.G22\"]\n",
            cas.ca("g12")
        ),
        "",
    );
    let good = base.clone() + &origin("g12", &cas.ca("g12"), r#"["*.G12", "G12.*"]"#);
    let config = load(&good).unwrap();
    let origins = config.origin_patterns().unwrap();
    assert_eq!(origins.len(), 1);
    assert_eq!(origins[0].0, id("g12"));
    assert_eq!(origins[0].1.len(), 2);
    for (text, want) in [
        (
            base.clone() + &origin("national", &cas.ca("national"), r#"["*.G01"]"#),
            r#"origins[0].id = "national": is a peer or another origin already"#,
        ),
        (
            base.clone() + &origin("G12", &cas.ca("g12"), r#"["*.G12"]"#),
            r#"origins[0].id = "G12": hub id "G12": expected lower-case"#,
        ),
        (
            base.clone() + &origin("g12", "/nonexistent/g12-ca.pem", r#"["*.G12"]"#),
            "origins[0].ca (origin g12) = /nonexistent/g12-ca.pem:",
        ),
        (
            base.clone() + &origin("g12", &cas.ca("g12"), "[]"),
            "origins[0].serves (origin g12) = []: an origin must serve some codes",
        ),
        (
            base.clone() + &origin("g12", &cas.ca("g12"), r#"["*.g12"]"#),
            r#"origins[0].serves[0] (origin g12) = "*.g12": agency codes are upper-case"#,
        ),
    ] {
        let e = error(&text);
        assert!(e.contains(want), "want {want:?} in {e:?}");
    }
}
