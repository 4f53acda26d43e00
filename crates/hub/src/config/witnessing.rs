//! Witnessing between peers: which peers' logs this hub witnesses, and
//! which peers' witnesses it submits its own checkpoints to.
//!
//! ```toml
//! [federation]
//! witness_interval_ms = 10000        # submit at least this often (default 10 s)
//!
//! [[peers]]
//! id = "h49"
//! # ... address, ca, serves ...
//! # Witness h49's log: its checkpoint key, as h49's `trucd check-config` prints it.
//! checkpoint_key = "h49.truc/receipts+1c2f8a9e+AR3m..."
//! # Have h49 witness this hub's log: h49's admin listener and witness key.
//! witness_url = "http://10.49.0.1:7444"
//! witness_key = "h49.truc/witness+77d0c4b1+BKq1..."
//! ```
//!
//! Checked when the configuration loads: each key parses as a
//! c2sp.org/signed-note verifier key of the right type (Ed25519 `0x01` for
//! a log, cosignature `0x04` for a witness) and is named for that peer
//! (`<id>.truc/receipts`, `<id>.truc/witness`), so a key pasted into the
//! wrong entry is refused naming both; `witness_url` is an `http://` URL
//! without a query, given with `witness_key` (a cosignature nobody can
//! check is worth nothing).

use truc_core::c2sp::note::{TYPE_COSIGNATURE_V1, TYPE_ED25519};
use truc_core::c2sp::NoteVerifier;

use super::{ConfigError, FederationConfig, PeerConfig};

/// `federation.witness_interval_ms` by default.
pub const DEFAULT_WITNESS_INTERVAL_MS: u64 = 10_000;

/// The key name of hub `id`'s witness key.
pub fn witness_key_name(id: &str) -> String {
    format!("{id}.truc/witness")
}

fn err(key: String, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Federation {
        key,
        value: format!("{value:?}"),
        reason: reason.into(),
    }
}

/// A verifier key of `signature_type` named `name`, or why not.
pub(crate) fn verifier(vkey: &str, signature_type: u8, name: &str) -> Result<NoteVerifier, String> {
    let v = NoteVerifier::from_vkey(vkey).map_err(|e| e.to_string())?;
    if v.signature_type() != signature_type {
        return Err(match signature_type {
            TYPE_ED25519 => "this is a witness (cosignature) key; checkpoint_key is the peer's checkpoint key, \
                             <id>.truc/receipts+..."
                .into(),
            _ => "this is a checkpoint key; witness_key is the peer's witness key, <id>.truc/witness+...".into(),
        });
    }
    if v.name() != name {
        return Err(format!(
            "the key is named {:?} but this peer's must be named {name:?}: is it another hub's key?",
            v.name()
        ));
    }
    Ok(v)
}

/// The URL `witness_url` submits to: `<prefix>/add-checkpoint`.
pub(crate) fn add_checkpoint_url(prefix: &str) -> Result<hyper::Uri, String> {
    let uri: hyper::Uri = prefix
        .parse()
        .map_err(|_| "not a URL: write http://host:port, the peer's admin listener".to_string())?;
    if uri.scheme_str() != Some("http") {
        return Err(
            "only http:// is supported: the witness listens on the peer's admin listener, plain HTTP (put a \
             TLS-terminating proxy in front of it if the network between hubs needs one)"
                .into(),
        );
    }
    if uri.authority().is_none_or(|a| a.port_u16().is_none()) {
        return Err("no port: write http://host:port".into());
    }
    if uri.query().is_some() {
        return Err("a submission prefix has no query".into());
    }
    let path = uri.path().trim_end_matches('/');
    format!(
        "http://{}{path}{}",
        uri.authority().map(|a| a.as_str()).unwrap_or_default(),
        truc_core::c2sp::witness::ADD_CHECKPOINT_PATH
    )
    .parse()
    .map_err(|_| "not a URL once /add-checkpoint is added".into())
}

/// Checks `federation.witness_interval_ms` and every peer's witnessing
/// keys.
pub(crate) fn check(federation: &FederationConfig, peers: &[PeerConfig]) -> Result<(), ConfigError> {
    let interval = federation.witness_interval_ms;
    if !(100..=86_400_000).contains(&interval) {
        return Err(err(
            "federation.witness_interval_ms".into(),
            &interval.to_string(),
            "must be in 100..=86400000 (a day)",
        ));
    }
    for (i, p) in peers.iter().enumerate() {
        let at = |k: &str| format!("peers[{i}].{k} (peer {})", p.id);
        if let Some(k) = &p.checkpoint_key {
            verifier(k, TYPE_ED25519, &format!("{}.truc/receipts", p.id))
                .map_err(|why| err(at("checkpoint_key"), k, why))?;
        }
        match (&p.witness_url, &p.witness_key) {
            (Some(url), Some(key)) => {
                add_checkpoint_url(url).map_err(|why| err(at("witness_url"), url, why))?;
                verifier(key, TYPE_COSIGNATURE_V1, &witness_key_name(&p.id))
                    .map_err(|why| err(at("witness_key"), key, why))?;
            }
            (Some(url), None) => {
                return Err(err(
                    at("witness_url"),
                    url,
                    "witness_key must be set too: the peer's witness key (its PKI/hub/witness.pub as \
                     <id>.truc/witness+..., which its trucd check-config prints), to check its cosignatures",
                ))
            }
            (None, Some(key)) => {
                return Err(err(
                    at("witness_key"),
                    key,
                    "witness_url must be set too: where the peer's witness listens (http://host:port of its admin \
                     listener)",
                ))
            }
            (None, None) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use truc_core::c2sp::cosignature::Cosigner;
    use truc_core::c2sp::NoteSigner;

    fn peer(id: &str) -> PeerConfig {
        PeerConfig {
            id: id.into(),
            ..PeerConfig::default()
        }
    }

    fn msg(f: &FederationConfig, peers: &[PeerConfig]) -> String {
        check(f, peers).unwrap_err().to_string()
    }

    #[test]
    fn keys_are_checked_for_type_and_name() {
        let f = FederationConfig::default();
        let log = NoteSigner::from_seed("h49.truc/receipts", &[1; 32])
            .unwrap()
            .verifier()
            .vkey();
        let witness = Cosigner::from_seed("h49.truc/witness", &[2; 32])
            .unwrap()
            .verifier()
            .vkey();
        let mut p = peer("h49");
        p.checkpoint_key = Some(log.clone());
        p.witness_url = Some("http://10.49.0.1:7444".into());
        p.witness_key = Some(witness.clone());
        check(&f, &[p.clone()]).unwrap();

        let mut swapped = p.clone();
        swapped.checkpoint_key = Some(witness.clone());
        let m = msg(&f, &[swapped]);
        assert!(m.starts_with("peers[0].checkpoint_key (peer h49) = "), "{m}");
        assert!(m.contains("this is a witness (cosignature) key"), "{m}");
        let mut other = p.clone();
        other.id = "g12".into();
        let m = msg(&f, &[other]);
        assert!(
            m.contains("named \"h49.truc/receipts\" but this peer's must be named \"g12.truc/receipts\""),
            "{m}"
        );
        let mut bad = p.clone();
        bad.witness_key = Some("h49.truc/witness+00000000+AAAA".into());
        assert!(msg(&f, &[bad]).starts_with("peers[0].witness_key (peer h49)"));
        let mut no_key = p.clone();
        no_key.witness_key = None;
        assert!(msg(&f, &[no_key]).contains("witness_key must be set too"));
        let mut no_url = p.clone();
        no_url.witness_url = None;
        assert!(msg(&f, &[no_url]).contains("witness_url must be set too"));
        for url in [
            "https://10.49.0.1:7444",
            "10.49.0.1:7444",
            "http://10.49.0.1",
            "http://h:1/?a=b",
        ] {
            let mut u = p.clone();
            u.witness_url = Some(url.into());
            assert!(msg(&f, &[u]).starts_with("peers[0].witness_url (peer h49)"), "{url}");
        }
        let f = FederationConfig {
            witness_interval_ms: 10,
            ..FederationConfig::default()
        };
        assert!(msg(&f, &[]).starts_with("federation.witness_interval_ms = \"10\": must be in 100..="));
    }

    #[test]
    fn the_submission_url_is_the_prefix_and_add_checkpoint() {
        assert_eq!(
            add_checkpoint_url("http://10.49.0.1:7444").unwrap().to_string(),
            "http://10.49.0.1:7444/add-checkpoint"
        );
        assert_eq!(
            add_checkpoint_url("http://witness.example:80/w1/").unwrap().to_string(),
            "http://witness.example:80/w1/add-checkpoint"
        );
    }
}
