//! Hubs witness each other in the transparency-log community's formats.
//!
//! - **As a witness** (`server.rs`): `POST /add-checkpoint` on the admin
//!   listener speaks c2sp.org/tlog-witness for the peers whose
//!   `checkpoint_key` is configured. It cosigns (c2sp.org/tlog-cosignature
//!   v1) with the hub's witness key (`witness.key`, named
//!   `<id>.truc/witness`) a checkpoint that extends the one it cosigned
//!   before, which it keeps in `<data_dir>/witness.json` (`state.rs`). A
//!   checkpoint of a size it cosigned with another root, or one it cannot
//!   prove extends it, is a **conflict**: refused, logged at error level,
//!   counted (`truc_witness_conflicts_total{origin}`) and recorded once as
//!   an operator-action receipt in this hub's own log.
//! - **As a log** (`submit.rs`): a task per peer with `witness_url`
//!   submits this hub's latest checkpoint at least every
//!   `federation.witness_interval_ms` and soon after its log grows, answers
//!   a 409 with a proof from the size it is told, and keeps the
//!   cosignatures that verify with the peer's `witness_key`
//!   (`cosigned.rs`). `GET /checkpoint` serves the latest checkpoint with
//!   them; `Audit.GetCheckpoints` serves the recent cosigned ones, for
//!   `truc audit receipts --out`.
//!
//! docs/federation.md, "Witnessing", says how to set it up.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use truc_core::c2sp::cosignature::Cosigner;
use truc_core::c2sp::note::{TYPE_COSIGNATURE_V1, TYPE_ED25519};
use truc_core::c2sp::NoteVerifier;
use truc_core::routing::HubId;
use truc_core::sync::Locked;

use crate::config::witnessing::{add_checkpoint_url, verifier, witness_key_name};
use crate::config::Config;
use crate::metrics::{counter, gauge, labels};
use crate::HubError;

mod cosigned;
mod server;
mod state;
mod submit;

pub(crate) use cosigned::Cosigned;
pub(crate) use submit::run as submit_task;

/// A peer whose log this hub witnesses.
struct WitnessedLog {
    peer: String,
    key: NoteVerifier,
}

/// A peer's witness this hub submits its checkpoints to.
pub(crate) struct PeerWitness {
    /// The peer's id.
    pub(crate) peer: String,
    /// `<prefix>/add-checkpoint`.
    pub(crate) url: hyper::Uri,
    /// Its cosignatures must verify with this key.
    pub(crate) key: NoteVerifier,
    /// The size it last cosigned (0: none yet), for the gauge.
    cosigned_size: AtomicU64,
    /// Submissions that got no cosignature.
    failures: AtomicU64,
}

/// This hub as a witness of its peers and as a log they witness.
pub(crate) struct Witnessing {
    /// `urn:truc:hub:<id>`: the actor of conflict receipts.
    actor: String,
    /// The witness, when some peer's log is witnessed.
    server: Option<server::Server>,
    /// The peers' witnesses this hub submits to.
    pub(crate) peers: Vec<PeerWitness>,
    /// The cosignatures gathered for this hub's checkpoints.
    pub(crate) cosigned: Cosigned,
    /// `federation.witness_interval_ms`.
    pub(crate) interval: Duration,
    /// origin → (cosigned, conflicts).
    counts: Mutex<BTreeMap<String, (u64, u64)>>,
}

impl Witnessing {
    /// What the configuration asks for. The witness key is read from
    /// `<identity>/witness.key`; when some peer is witnessed and there is
    /// none, one is made there (`witness.key`, 0600, and `witness.pub`),
    /// as `truc pki init` and `issue --hub` make it for new hubs.
    pub(crate) fn load(config: &Config, own: Option<&HubId>) -> Result<Witnessing, HubError> {
        let conf = |e: String| HubError::Config(e);
        let logs: BTreeMap<String, WitnessedLog> = config
            .peers
            .iter()
            .filter_map(|p| p.checkpoint_key.as_ref().map(|k| (p, k)))
            .map(|(p, k)| {
                let origin = format!("{}.truc/receipts", p.id);
                let key = verifier(k, TYPE_ED25519, &origin).map_err(conf)?;
                Ok((
                    origin,
                    WitnessedLog {
                        peer: p.id.clone(),
                        key,
                    },
                ))
            })
            .collect::<Result<_, HubError>>()?;
        let peers = config
            .peers
            .iter()
            .filter_map(|p| Some((p, p.witness_url.as_ref()?, p.witness_key.as_ref()?)))
            .map(|(p, url, key)| {
                Ok(PeerWitness {
                    peer: p.id.clone(),
                    url: add_checkpoint_url(url).map_err(conf)?,
                    key: verifier(key, TYPE_COSIGNATURE_V1, &witness_key_name(&p.id)).map_err(conf)?,
                    cosigned_size: AtomicU64::new(0),
                    failures: AtomicU64::new(0),
                })
            })
            .collect::<Result<Vec<_>, HubError>>()?;
        let server = match (own, logs.is_empty()) {
            (Some(own), false) => Some(server::Server::new(
                load_witness_key(&config.identity, own)?,
                logs,
                state::WitnessState::load(&config.data_dir).map_err(HubError::Config)?,
            )),
            _ => None,
        };
        Ok(Witnessing {
            actor: own.map(|id| format!("urn:truc:hub:{id}")).unwrap_or_default(),
            server,
            peers,
            cosigned: Cosigned::default(),
            interval: Duration::from_millis(config.federation.witness_interval_ms),
            counts: Mutex::new(BTreeMap::new()),
        })
    }

    /// Lines for `trucd check-config` and the start-up log.
    pub(crate) fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(s) = &self.server {
            out.push(format!(
                "witness: key {}; witnesses {} (POST /add-checkpoint on the admin listener)",
                s.vkey(),
                s.peers().join(", ")
            ));
        }
        for p in &self.peers {
            out.push(format!(
                "witnessed by peer {} at {} (key {}), every {} ms",
                p.peer,
                p.url,
                p.key.key(),
                self.interval.as_millis()
            ));
        }
        out
    }

    /// Whether this hub witnesses any peer (and so needs the admin
    /// listener).
    pub(crate) fn is_witness(&self) -> bool {
        self.server.is_some()
    }

    /// `truc_witness_*` and `truc_checkpoint_*` families for `/metrics`.
    pub(crate) fn render(&self, out: &mut String) {
        let counts = self.counts.locked().clone();
        let origins: Vec<String> = self
            .server
            .iter()
            .flat_map(|s| s.origins())
            .chain(counts.keys().cloned())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let rows = |pick: fn(&(u64, u64)) -> u64| -> Vec<(String, u64)> {
            origins
                .iter()
                .map(|o| (labels(&[("origin", o)]), counts.get(o).map_or(0, pick)))
                .collect()
        };
        let (cosigned, conflicts) = (rows(|c| c.0), rows(|c| c.1));
        counter(
            out,
            "truc_witness_cosigned_total",
            "Checkpoints of a peer's log this hub's witness cosigned, by log origin.",
            &str_rows(&cosigned),
        );
        counter(
            out,
            "truc_witness_conflicts_total",
            "Checkpoints of a peer's log inconsistent with one this witness cosigned (two trees of one size, or \
             a tree that does not extend it): evidence that the peer rewrote its history. Alert on any increase.",
            &str_rows(&conflicts),
        );
        let sizes: Vec<(String, f64)> = self
            .peers
            .iter()
            .map(|p| {
                (
                    labels(&[("witness", &p.peer)]),
                    p.cosigned_size.load(Ordering::Relaxed) as f64,
                )
            })
            .collect();
        let sizes: Vec<(&str, f64)> = sizes.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        gauge(
            out,
            "truc_checkpoint_cosigned_size",
            "The largest tree size of this hub's log that each peer's witness cosigned since the hub started.",
            &sizes,
        );
        let failures: Vec<(String, u64)> = self
            .peers
            .iter()
            .map(|p| (labels(&[("witness", &p.peer)]), p.failures.load(Ordering::Relaxed)))
            .collect();
        counter(
            out,
            "truc_checkpoint_submit_failures_total",
            "Submissions of this hub's checkpoint to a peer's witness that got no cosignature (the log says why).",
            &str_rows(&failures),
        );
    }

    fn count(&self, origin: &str, conflict: bool) {
        let mut c = self.counts.locked();
        let e = c.entry(origin.to_string()).or_default();
        if conflict {
            e.1 += 1;
        } else {
            e.0 += 1;
        }
    }
}

/// What `trucd check-config` says of witnessing (the configuration is
/// already validated; nothing is made).
pub(crate) fn check_config_lines(config: &Config, own: Option<&HubId>) -> Vec<String> {
    let mut out = Vec::new();
    let witnessed: Vec<&str> = config
        .peers
        .iter()
        .filter(|p| p.checkpoint_key.is_some())
        .map(|p| p.id.as_str())
        .collect();
    if let (Some(own), false) = (own, witnessed.is_empty()) {
        let path = config.identity.join("witness.key");
        let key = if path.exists() {
            load_witness_key(&config.identity, own)
                .map(|c| c.verifier().vkey())
                .unwrap_or_else(|e| format!("UNUSABLE: {e}"))
        } else {
            format!("{} is missing: trucd makes it at start", path.display())
        };
        out.push(format!(
            "witness: witnesses {} (POST /add-checkpoint on {}); key {key}",
            witnessed.join(", "),
            config
                .admin
                .listen
                .map_or("NO admin listener: set admin.listen".to_string(), |a| format!(
                    "http://{a}"
                ))
        ));
    }
    for p in &config.peers {
        if let Some(url) = &p.witness_url {
            out.push(format!(
                "witnessed by peer {} at {url}, every {} ms",
                p.id, config.federation.witness_interval_ms
            ));
        }
    }
    out
}

fn str_rows(rows: &[(String, u64)]) -> Vec<(&str, u64)> {
    rows.iter().map(|(l, n)| (l.as_str(), *n)).collect()
}

/// The witness key of the identity directory, named `<own>.truc/witness`;
/// made there when missing.
fn load_witness_key(identity: &Path, own: &HubId) -> Result<Cosigner, HubError> {
    let path = identity.join("witness.key");
    if !path.exists() {
        let made = truc_pki::write_witness_key(identity).map_err(|e| {
            HubError::Identity(format!(
                "{} is missing and cannot be made ({e}): a hub that witnesses its peers needs a witness key. Run \
                 `truc pki renew --hub {own}` where its CA is (it adds witness.key and witness.pub to the \
                 identity directory), or make {} writable",
                path.display(),
                identity.display()
            ))
        })?;
        if made {
            tracing::info!(
                path = %path.display(),
                "made a witness key (this hub witnesses peers; identity directories made before witnessing have none)"
            );
        }
    }
    crate::check_key(&path)?;
    let pem = std::fs::read(&path).map_err(|e| HubError::Identity(format!("{}: {e}", path.display())))?;
    use rustls_pki_types::pem::PemObject as _;
    let der = rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(&pem)
        .map_err(|e| HubError::Identity(format!("{}: {e}", path.display())))?;
    Cosigner::from_pkcs8(&witness_key_name(own.as_str()), der.secret_pkcs8_der())
        .map_err(|e| HubError::Identity(format!("{}: {e}", path.display())))
}
