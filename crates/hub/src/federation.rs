//! Federation at this hub: who this hub is (the `urn:truc:hub:<id>` of its
//! certificate), its peers and routing table (`[federation]`, `[[peers]]`),
//! the hubs whose agencies may originate documents that reach it
//! (`[[peers]]` and `[[origins]]` with the codes they serve), its own signed
//! trace hops, and its receipt log published as C2SP checkpoints (origin
//! `<id>.truc/receipts`, signed with the receipt key). Forwarding itself is
//! `forward.rs` (outgoing) and `service/peer.rs` (incoming).

use std::path::Path;
use std::sync::Mutex;

use prost::Message;
use truc_core::c2sp::{Checkpoint, NoteSigner};
use truc_core::merkle::Hash;
use truc_core::routing::{CodePattern, HubId, RoutingTable};
use truc_core::sync::Locked;
use truc_core::tree_head::TreeHeadVerifier;
use truc_core::{AgencyCode, Principal};
use truc_proto::v1::TraceHop;
use truc_store::Store;

use crate::config::{Config, PeerConfig};
use crate::HubError;

/// The origin (and key name) of a hub's receipt-log checkpoints.
pub fn checkpoint_origin(hub: &HubId) -> String {
    format!("{hub}.truc/receipts")
}

/// This hub's place among hubs.
pub(crate) struct Federation {
    /// This hub's id, from its certificate; `None` when the certificate
    /// names no hub (then no checkpoints, and no peers allowed).
    pub(crate) own: Option<HubId>,
    /// Where each agency code goes.
    pub(crate) table: RoutingTable,
    /// The `[[peers]]` entries, in configuration order.
    pub(crate) peers: Vec<PeerConfig>,
    /// `federation.max_hops`.
    pub(crate) max_hops: usize,
    checkpoints: Option<Checkpoints>,
    /// Which sender codes each other hub may originate: peers by their
    /// `serves`, then `[[origins]]`.
    claims: Vec<(HubId, Vec<CodePattern>)>,
    /// This hub's own patterns (`federation.serves`).
    own_serves: Vec<CodePattern>,
    /// Signs this hub's trace hops with its TLS identity's key.
    hop_signer: Option<HopSigner>,
    /// The receipt keys of the peers whose `checkpoint_key` is configured:
    /// what they report, and their acceptances, are checked with them.
    receipt_keys: std::collections::HashMap<HubId, TreeHeadVerifier>,
}

/// This hub's certificate chain and key, for its trace hops.
struct HopSigner {
    chain: Vec<Vec<u8>>,
    signer: truc_pki::DocumentSigner,
}

impl Federation {
    /// Reads this hub's id from its certificate and builds the routing
    /// table (refusing a peer with this hub's id, or peers at all when the
    /// certificate names no hub); the checkpoint signer uses the receipt key
    /// `receipt_key_pkcs8`.
    pub(crate) fn load(config: &Config, receipt_key_pkcs8: &[u8]) -> Result<Federation, HubError> {
        let own = own_id(&config.identity)?;
        if own.is_none() && !config.peers.is_empty() {
            return Err(HubError::Config(format!(
                "[[peers]] are configured but the hub certificate {} names no urn:truc:hub:<id>: issue the hub its \
                 identity with `truc pki issue --hub <id>`",
                config.identity.join("cert.pem").display()
            )));
        }
        let table = config
            .routing_table(own.as_ref())
            .map_err(|e| HubError::Config(e.to_string()))?;
        let checkpoints = match &own {
            Some(id) => Some(Checkpoints {
                signer: NoteSigner::from_pkcs8(&checkpoint_origin(id), receipt_key_pkcs8)
                    .map_err(|e| HubError::Identity(format!("receipts.key as checkpoint key: {e}")))?,
                last: Mutex::new(None),
            }),
            None => None,
        };
        let bad = |e: crate::config::ConfigError| HubError::Config(e.to_string());
        let mut claims = Vec::new();
        for p in &config.peers {
            let id = p.hub_id().map_err(|e| HubError::Config(e.to_string()))?;
            let patterns = p
                .serves
                .iter()
                .map(|s| CodePattern::parse(s).map_err(|e| HubError::Config(format!("peer {id}: {s}: {}", e.reason))))
                .collect::<Result<Vec<_>, _>>()?;
            claims.push((id, patterns));
        }
        claims.extend(config.origin_patterns().map_err(bad)?);
        let own_serves = config
            .federation
            .serves
            .iter()
            .filter_map(|s| CodePattern::parse(s).ok())
            .collect();
        let hop_signer = match &own {
            Some(_) => {
                let identity =
                    truc_pki::Identity::load(&config.identity).map_err(|e| HubError::Identity(e.to_string()))?;
                let chain = truc_pki::read_cert_ders(config.identity.join("cert.pem"))
                    .map_err(|e| HubError::Identity(e.to_string()))?;
                Some(HopSigner {
                    signer: identity.signer().map_err(|e| HubError::Identity(e.to_string()))?,
                    chain,
                })
            }
            None => None,
        };
        let mut receipt_keys = std::collections::HashMap::new();
        for p in &config.peers {
            if let Some(vkey) = &p.checkpoint_key {
                let id = p.hub_id().map_err(|e| HubError::Config(e.to_string()))?;
                let v = truc_core::c2sp::NoteVerifier::from_vkey(vkey)
                    .map_err(|e| HubError::Config(format!("peer {id}: checkpoint_key: {e}")))?;
                receipt_keys.insert(id, TreeHeadVerifier::from_ed25519(&v.public_key()));
            }
        }
        Ok(Federation {
            own,
            table,
            peers: config.peers.clone(),
            max_hops: config.federation.max_hops,
            checkpoints,
            claims,
            own_serves,
            hop_signer,
            receipt_keys,
        })
    }

    /// Check a receipt `peer` signed (its tree head with the peer's receipt
    /// key, the receipt's inclusion in it), when the peer's
    /// `checkpoint_key` is configured; without it the peer's mTLS identity
    /// is all that vouches for it.
    pub(crate) fn check_peer_receipt(
        &self,
        peer: &HubId,
        proven: &truc_proto::v1::ProvenReceipt,
    ) -> Result<(), String> {
        match self.receipt_keys.get(peer) {
            None => Ok(()),
            Some(v) => v
                .verify_proven_receipt(proven)
                .map(|_| ())
                .map_err(|e| format!("the receipt does not verify with urn:truc:hub:{peer}'s checkpoint_key: {e}")),
        }
    }

    /// Whether hub `hub` may originate documents from agency `code`: one of
    /// its patterns matches, or it is the default peer and no hub (this one
    /// included) claims the code.
    pub(crate) fn originates(&self, hub: &HubId, code: &AgencyCode) -> bool {
        let claimed_by = |h: &HubId| {
            self.claims
                .iter()
                .any(|(id, pats)| id == h && pats.iter().any(|p| p.matches(code)))
        };
        if claimed_by(hub) {
            return true;
        }
        let claimed_at_all = self.own_serves.iter().any(|p| p.matches(code))
            || self.claims.iter().any(|(_, pats)| pats.iter().any(|p| p.matches(code)));
        self.table.default_peer() == Some(hub) && !claimed_at_all
    }

    /// This hub's signed hop for a document it accepted at
    /// `accepted_at_unix_ms` and now forwards, after `previous`.
    pub(crate) fn sign_hop(
        &self,
        accepted_at_unix_ms: i64,
        header_sha256: &[u8],
        previous: Option<&TraceHop>,
    ) -> Result<TraceHop, String> {
        let (Some(own), Some(s)) = (&self.own, &self.hop_signer) else {
            return Err("the hub certificate names no urn:truc:hub:<id>: it cannot forward".into());
        };
        let msg = truc_core::routing::hop_message(own.as_str(), accepted_at_unix_ms, header_sha256, previous);
        let signature = s.signer.sign(&msg).map_err(|e| e.to_string())?;
        Ok(TraceHop {
            hub_id: own.to_string(),
            accepted_at_unix_ms,
            signer_chain: s.chain.clone(),
            signature,
            signature_scheme: s.signer.scheme(),
        })
    }

    /// The verifier key of this hub's checkpoints
    /// (`<id>.truc/receipts+<key id>+<base64(0x01 || key)>`).
    pub(crate) fn checkpoint_vkey(&self) -> Option<String> {
        self.checkpoints.as_ref().map(|c| c.signer.verifier().vkey())
    }

    /// The latest signed tree head as a signed checkpoint note, or why there
    /// is none.
    pub(crate) async fn checkpoint(&self, store: &dyn Store) -> Result<String, NoCheckpoint> {
        let Some(c) = &self.checkpoints else {
            return Err(NoCheckpoint::NoHubId);
        };
        let signed = store.tree_head(0).await.map_err(|_| NoCheckpoint::Store)?;
        let Some(signed) = signed else {
            return Err(NoCheckpoint::EmptyLog);
        };
        let head = truc_proto::v1::TreeHead::decode(signed.tree_head.as_slice()).map_err(|_| NoCheckpoint::Store)?;
        let root = Hash::try_from(head.root_hash.as_slice()).map_err(|_| NoCheckpoint::Store)?;
        c.note(head.tree_size, root)
    }
}

/// Why `/checkpoint` has nothing to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoCheckpoint {
    /// The hub certificate names no `urn:truc:hub:<id>`, so there is no
    /// origin.
    NoHubId,
    /// Nothing has been recorded yet.
    EmptyLog,
    /// The store could not be read.
    Store,
}

impl std::fmt::Display for NoCheckpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NoCheckpoint::NoHubId => {
                "no checkpoint: the hub certificate names no urn:truc:hub:<id> (truc pki issue --hub <id>)"
            }
            NoCheckpoint::EmptyLog => "no checkpoint yet: the receipt log is empty",
            NoCheckpoint::Store => "no checkpoint: the receipt log cannot be read now",
        })
    }
}

/// The checkpoint signer and the last note it signed (a head is signed
/// once, however often it is fetched).
struct Checkpoints {
    signer: NoteSigner,
    last: Mutex<Option<(u64, Hash, String)>>,
}

impl Checkpoints {
    fn note(&self, size: u64, root: Hash) -> Result<String, NoCheckpoint> {
        let mut last = self.last.locked();
        if let Some((s, r, note)) = last.as_ref() {
            if (*s, *r) == (size, root) {
                return Ok(note.clone());
            }
        }
        // Signing fails only on a text no checkpoint has (the origin is a
        // hub id, the rest digits and base64).
        let note = Checkpoint::new(self.signer.name(), size, root)
            .sign(&self.signer)
            .map_err(|_| NoCheckpoint::Store)?;
        *last = Some((size, root, note.clone()));
        Ok(note)
    }
}

/// The hub id of the certificate in `identity`, if it names a hub.
fn own_id(identity: &Path) -> Result<Option<HubId>, HubError> {
    let path = identity.join("cert.pem");
    let ders = truc_pki::read_cert_ders(&path).map_err(|e| HubError::Identity(e.to_string()))?;
    let principal = ders
        .first()
        .map(|der| Principal::from_cert_der(der))
        .transpose()
        .map_err(|e| HubError::Identity(format!("{}: {e}", path.display())))?;
    match principal {
        Some(Principal::Hub(name)) => Ok(Some(
            HubId::parse(&name).map_err(|e| HubError::Identity(format!("{}: {e}", path.display())))?,
        )),
        _ => Ok(None),
    }
}
