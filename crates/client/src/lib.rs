//! Truc's client SDK: connect to a hub with an identity directory written by
//! `truc pki`, sign documents, send them, receive and acknowledge what is
//! waiting, and verify received documents locally.
//!
//! The `truc` CLI, `truc demo` and the integration tests all use it.
//! Every call fails with a [`ClientError`], which keeps its cause and, for
//! the hub's answers, the gRPC code ([`ClientError::code`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod admission;
pub mod audit;
pub mod edxml;
mod error;
pub mod reconnect;
pub mod transfer;

use std::path::Path;

use prost::Message;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::Streaming;
use truc_core::document::{CheckedHeader, SigningTrust};
use truc_core::CoreError;
use truc_pki::{DocumentSigner, Identity};
use truc_proto::v1::audit_client::AuditClient;
use truc_proto::v1::axis_client::AxisClient;
use truc_proto::v1::ops_client::OpsClient;
use truc_proto::v1::{
    AckRequest, AddAgencyRequest, Agency, Delivery, DocumentHeader, GetConsistencyProofRequest, GetTreeHeadRequest,
    ListAgenciesRequest, ListReceiptsRequest, ListReceiptsResponse, ListTreeHeadsRequest, ListTreeHeadsResponse,
    ProvenReceipt, ReceiveRequest, ReportStatusRequest, SendRequest, SendResponse, SignedDocument, SignedTreeHead,
    StaffInfo, TrackRequest, TrackResponse,
};

pub use error::ClientError;
pub use truc_pki;
pub use truc_proto::v1 as proto;

/// Largest message the client sends or accepts.
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// A connection to a hub as one principal.
#[derive(Clone)]
pub struct Client {
    identity: std::sync::Arc<Identity>,
    axis: AxisClient<Channel>,
    ops: OpsClient<Channel>,
    audit: AuditClient<Channel>,
    /// Sends in the hub's hands at once, learnt from its pushbacks; shared
    /// by the clones of this client (one connection).
    admission: std::sync::Arc<admission::Admission>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("principal", &self.identity.principal)
            .finish_non_exhaustive()
    }
}

/// `host:port` or a URL, as `https://host:port`.
pub fn hub_url(hub: &str) -> String {
    if hub.contains("://") {
        hub.replacen("http://", "https://", 1)
    } else {
        format!("https://{hub}")
    }
}

impl Client {
    /// Load the identity directory `dir` and connect to `hub`.
    pub async fn connect_dir(hub: &str, dir: &Path) -> Result<Client, ClientError> {
        Self::connect(hub, Identity::load(dir)?).await
    }

    /// Connect to `hub` (`host:port` or `https://host:port`) with mutual TLS
    /// as `identity`, trusting only the CA in the identity directory.
    pub async fn connect(hub: &str, identity: Identity) -> Result<Client, ClientError> {
        let url = hub_url(hub);
        let err = |reason: String| ClientError::Connect {
            hub: hub.to_string(),
            reason,
        };
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&identity.ca_pem))
            .identity(tonic::transport::Identity::from_pem(
                &identity.cert_pem,
                &identity.key_pem,
            ));
        let channel = Endpoint::from_shared(url)
            .map_err(|e| err(e.to_string()))?
            .tls_config(tls)
            .map_err(|e| err(e.to_string()))?
            .connect_timeout(std::time::Duration::from_secs(10))
            // Large documents: room for a few 4 MiB chunks in flight and
            // large frames, as the hub allows (h2's defaults stall bulk
            // transfers on window updates).
            .initial_stream_window_size(Some(8 << 20))
            .initial_connection_window_size(Some(16 << 20))
            .max_frame_size(Some(1 << 20))
            .connect()
            .await
            .map_err(|e| err(truc_core::error_chain(&e)))?;
        Ok(Self::with_channel(channel, identity))
    }

    /// Use an existing channel (tests that need raw control).
    pub fn with_channel(channel: Channel, identity: Identity) -> Client {
        Client {
            identity: std::sync::Arc::new(identity),
            axis: AxisClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
            ops: OpsClient::new(channel.clone()),
            audit: AuditClient::new(channel).max_decoding_message_size(MAX_MESSAGE),
            admission: Default::default(),
        }
    }

    /// How many times the hub pushed back a Send of this client
    /// (and its clones) so far: its back-pressure at work.
    pub fn pushbacks(&self) -> u64 {
        self.admission.pushbacks()
    }

    /// The identity this client connects as.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Send a signed document; returns the hub's acceptance. Sent again
    /// while the hub pushes it back ([`reconnect::with_pushback`]); waits
    /// first, with the other Sends of this client, while as many as the
    /// hub lately took are in its hands (`admission.rs`).
    pub async fn send(&self, document: SignedDocument) -> Result<SendResponse, ClientError> {
        Ok(reconnect::admitted(Some(&self.admission), || {
            let (mut axis, document) = (self.axis.clone(), document.clone());
            async move {
                let req = SendRequest {
                    document: Some(document),
                };
                Ok(axis.send(req).await?.into_inner())
            }
        })
        .await?)
    }

    /// Open a Receive stream with `max_in_flight` credit.
    pub async fn receive(&self, max_in_flight: u32, follow: bool) -> Result<Streaming<Delivery>, ClientError> {
        Ok(self
            .axis
            .clone()
            .receive(ReceiveRequest { max_in_flight, follow })
            .await?
            .into_inner())
    }

    /// Acknowledge deliveries; returns how many were newly acknowledged.
    /// Sent again while the hub pushes it back.
    pub async fn ack(&self, delivery_ids: Vec<u64>) -> Result<u32, ClientError> {
        Ok(reconnect::with_pushback(|| {
            let (mut axis, delivery_ids) = (self.axis.clone(), delivery_ids.clone());
            async move { Ok(axis.ack(AckRequest { delivery_ids }).await?.into_inner().acknowledged) }
        })
        .await?)
    }

    /// The caller's inbox: copies waiting, leased now, when the first lease
    /// ends (agencies only).
    pub async fn inbox_state(&self) -> Result<proto::InboxState, ClientError> {
        Ok(self
            .axis
            .clone()
            .get_inbox_state(proto::GetInboxStateRequest {})
            .await?
            .into_inner())
    }

    /// Report a business status on a document (`code`: 1–6, 13, 15, 16).
    pub async fn report_status(
        &self,
        document_from: &str,
        document_id: &str,
        code: i32,
        description: &str,
        staff: Option<StaffInfo>,
    ) -> Result<ProvenReceipt, ClientError> {
        let req = ReportStatusRequest {
            document_from: document_from.into(),
            document_id: document_id.into(),
            code,
            description: description.into(),
            staff,
        };
        let r = self.axis.clone().report_status(req).await?.into_inner();
        r.receipt
            .ok_or_else(|| ClientError::Answer("no receipt in the ReportStatus response".into()))
    }

    /// For each agency code: registered or not, its state and name (the
    /// directory as a sender needs it; agencies only).
    pub async fn lookup_agencies(&self, codes: &[String]) -> Result<Vec<proto::AgencyEntry>, ClientError> {
        let req = proto::LookupAgenciesRequest { codes: codes.to_vec() };
        Ok(self.axis.clone().lookup_agencies(req).await?.into_inner().agencies)
    }

    /// The hub's name (its certificate's) and the axis's UTC offset.
    pub async fn hub_info(&self) -> Result<proto::HubInfo, ClientError> {
        Ok(self
            .axis
            .clone()
            .get_hub_info(proto::GetHubInfoRequest {})
            .await?
            .into_inner())
    }

    /// Where the caller's own document is, per recipient.
    pub async fn track(&self, document_id: &str) -> Result<TrackResponse, ClientError> {
        Ok(self
            .axis
            .clone()
            .track(TrackRequest {
                document_id: document_id.into(),
            })
            .await?
            .into_inner())
    }

    /// The latest signed tree head (`tree_size` 0) or the one at a size.
    pub async fn tree_head(&self, tree_size: u64) -> Result<SignedTreeHead, ClientError> {
        Ok(self
            .audit
            .clone()
            .get_tree_head(GetTreeHeadRequest { tree_size })
            .await?
            .into_inner())
    }

    /// One page of receipts.
    pub async fn list_receipts(&self, req: ListReceiptsRequest) -> Result<ListReceiptsResponse, ClientError> {
        Ok(self.audit.clone().list_receipts(req).await?.into_inner())
    }

    /// Every page of receipts for `req`. Each page's proofs are against that
    /// page's tree head; pages fetched later may carry a later head.
    pub async fn all_receipts(&self, mut req: ListReceiptsRequest) -> Result<Vec<ListReceiptsResponse>, ClientError> {
        let mut pages = Vec::new();
        loop {
            let page = self.list_receipts(req.clone()).await?;
            let next = page.next_page_token;
            pages.push(page);
            if next == 0 {
                return Ok(pages);
            }
            req.page_token = next;
        }
    }

    /// One page of the signed tree heads the hub has, from size
    /// `from_size` on (`limit` 0: the hub's default), and the size to
    /// continue from (0: none left now).
    pub async fn list_tree_heads(&self, from_size: u64, limit: u32) -> Result<ListTreeHeadsResponse, ClientError> {
        let req = ListTreeHeadsRequest { from_size, limit };
        Ok(self.audit.clone().list_tree_heads(req).await?.into_inner())
    }

    /// The hub's checkpoints with their witnesses' cosignatures, newest
    /// first (`Audit.GetCheckpoints`).
    pub async fn checkpoints(&self) -> Result<Vec<String>, ClientError> {
        let req = truc_proto::v1::GetCheckpointsRequest {};
        Ok(self.audit.clone().get_checkpoints(req).await?.into_inner().checkpoints)
    }

    /// Consistency proof between two tree sizes.
    pub async fn consistency_proof(&self, old_size: u64, new_size: u64) -> Result<Vec<Vec<u8>>, ClientError> {
        let req = GetConsistencyProofRequest { old_size, new_size };
        Ok(self.audit.clone().get_consistency_proof(req).await?.into_inner().proof)
    }

    /// Register an agency (operators only).
    pub async fn add_agency(&self, code: &str, name: &str) -> Result<Agency, ClientError> {
        let req = AddAgencyRequest {
            code: code.into(),
            name: name.into(),
        };
        Ok(self.ops.clone().add_agency(req).await?.into_inner())
    }

    /// All registered agencies (operators only).
    pub async fn list_agencies(&self) -> Result<Vec<Agency>, ClientError> {
        Ok(self
            .ops
            .clone()
            .list_agencies(ListAgenciesRequest {})
            .await?
            .into_inner()
            .agencies)
    }

    /// Dead letters of an agency (operators only).
    pub async fn dead_letters(&self, agency: &str) -> Result<Vec<proto::DeadLetter>, ClientError> {
        let req = proto::ListDeadLettersRequest { agency: agency.into() };
        Ok(self.ops.clone().list_dead_letters(req).await?.into_inner().dead_letters)
    }

    /// Suspend (`AgencyState::Suspended`) or resume (`Active`) an agency
    /// (operators only).
    pub async fn set_agency_state(
        &self,
        code: &str,
        state: proto::AgencyState,
        reason: &str,
    ) -> Result<Agency, ClientError> {
        let req = proto::SetAgencyStateRequest {
            code: code.into(),
            state: state as i32,
            reason: reason.into(),
        };
        Ok(self.ops.clone().set_agency_state(req).await?.into_inner())
    }

    /// The hub at a glance: version, uptime, store, listeners, certificate,
    /// CRL state (operators only).
    pub async fn status(&self) -> Result<proto::HubStatus, ClientError> {
        Ok(self
            .ops
            .clone()
            .get_status(proto::GetStatusRequest {})
            .await?
            .into_inner())
    }

    /// The client connections the hub holds now, by principal (operators
    /// only).
    pub async fn connections(&self) -> Result<Vec<proto::Connection>, ClientError> {
        Ok(self
            .ops
            .clone()
            .list_connections(proto::ListConnectionsRequest {})
            .await?
            .into_inner()
            .connections)
    }

    /// The peer hubs this hub forwards to, by id: link state, outbox,
    /// counts since the hub started (operators only).
    pub async fn peers(&self) -> Result<Vec<proto::PeerLink>, ClientError> {
        Ok(self
            .ops
            .clone()
            .list_peers(proto::ListPeersRequest {})
            .await?
            .into_inner()
            .peers)
    }

    /// Pause (`paused`) or resume forwarding to peer hub `peer`, for
    /// `reason` (operators only); returns the peer's link after it.
    pub async fn set_peer_paused(
        &self,
        peer: &str,
        paused: bool,
        reason: &str,
    ) -> Result<proto::PeerLink, ClientError> {
        let req = proto::SetPeerPausedRequest {
            peer: peer.into(),
            paused,
            reason: reason.into(),
        };
        Ok(self.ops.clone().set_peer_paused(req).await?.into_inner())
    }

    /// Remove an agency that never had traffic (operators only); returns it
    /// as it was.
    pub async fn remove_agency(&self, code: &str, reason: &str) -> Result<Agency, ClientError> {
        let req = proto::RemoveAgencyRequest {
            code: code.into(),
            reason: reason.into(),
        };
        Ok(self.ops.clone().remove_agency(req).await?.into_inner())
    }

    /// Retire an agency into its successor (operators only).
    pub async fn retire_agency(&self, code: &str, successor: &str, reason: &str) -> Result<Agency, ClientError> {
        let req = proto::RetireAgencyRequest {
            code: code.into(),
            successor: successor.into(),
            reason: reason.into(),
        };
        Ok(self.ops.clone().retire_agency(req).await?.into_inner())
    }

    /// One summary row per agency, most urgent first (operators only).
    pub async fn list_queues(&self) -> Result<Vec<proto::QueueSummary>, ClientError> {
        Ok(self
            .ops
            .clone()
            .list_queues(proto::ListQueuesRequest {})
            .await?
            .into_inner()
            .queues)
    }

    /// One page of an agency's waiting items (operators only).
    pub async fn list_queue(
        &self,
        agency: &str,
        after: u64,
        page_size: u32,
    ) -> Result<proto::ListQueueResponse, ClientError> {
        let req = proto::ListQueueRequest {
            agency: agency.into(),
            after_delivery_id: after,
            page_size,
        };
        Ok(self.ops.clone().list_queue(req).await?.into_inner())
    }

    /// Put dead letters back in the outbox (all when `ids` is empty).
    pub async fn redrive(&self, agency: &str, ids: Vec<u64>) -> Result<u64, ClientError> {
        let req = proto::RedriveDeadLettersRequest {
            agency: agency.into(),
            delivery_ids: ids,
        };
        Ok(self.ops.clone().redrive_dead_letters(req).await?.into_inner().count)
    }

    /// Delete dead letters (all when `ids` is empty).
    pub async fn purge(&self, agency: &str, ids: Vec<u64>) -> Result<u64, ClientError> {
        let req = proto::PurgeDeadLettersRequest {
            agency: agency.into(),
            delivery_ids: ids,
        };
        Ok(self.ops.clone().purge_dead_letters(req).await?.into_inner().count)
    }

    /// The axis's indicators for local days `from_date..=to_date`
    /// ("YYYY-MM-DD"): every agency's and the hub's for operators and
    /// auditors (or `agency`'s), an agency's own for an agency.
    pub async fn stats(
        &self,
        from_date: &str,
        to_date: &str,
        agency: &str,
        by: proto::StatsGrouping,
    ) -> Result<proto::GetStatsResponse, ClientError> {
        Ok(self
            .ops
            .clone()
            .get_stats(proto::GetStatsRequest {
                from_date: from_date.into(),
                to_date: to_date.into(),
                agency: agency.into(),
                by: by as i32,
            })
            .await?
            .into_inner())
    }

    /// The hub's data disk and what its files take (operators only).
    pub async fn storage(&self) -> Result<proto::Storage, ClientError> {
        Ok(self
            .ops
            .clone()
            .get_storage(proto::GetStorageRequest {})
            .await?
            .into_inner())
    }

    /// Scrub the hub's store now (operators only): every body, payload file
    /// and receipt checked; damaged documents quarantined. `bytes_per_second`
    /// 0: as fast as the hub can read. May take minutes on a large store.
    pub async fn verify_store(&self, bytes_per_second: u64) -> Result<proto::VerifyStoreResponse, ClientError> {
        let req = proto::VerifyStoreRequest { bytes_per_second };
        Ok(self.ops.clone().verify_store(req).await?.into_inner())
    }

    /// Make the hub re-read its CRLs and certificate now.
    pub async fn reload(&self) -> Result<proto::ReloadResponse, ClientError> {
        Ok(self.ops.clone().reload(proto::ReloadRequest {}).await?.into_inner())
    }

    /// The raw Axis client.
    pub fn axis(&self) -> AxisClient<Channel> {
        self.axis.clone()
    }

    /// The raw Ops client.
    pub fn ops(&self) -> OpsClient<Channel> {
        self.ops.clone()
    }
}

/// Sign `payload` under `header` as the agency of `identity`: fills in
/// `from`, the payload's SHA-256 and size and the signing time, serializes
/// the header once and signs exactly those bytes.
pub fn sign_document(
    identity: &Identity,
    mut header: DocumentHeader,
    payload: Vec<u8>,
) -> Result<SignedDocument, ClientError> {
    let signer = identity.signer()?;
    sign_with(&signer, identity, &mut header, payload)
}

/// [`sign_document`] with an explicit signer (for RSA-PSS, or tests that sign
/// with another key).
pub fn sign_with(
    signer: &DocumentSigner,
    identity: &Identity,
    header: &mut DocumentHeader,
    payload: Vec<u8>,
) -> Result<SignedDocument, ClientError> {
    let digest = truc_core::sha256(&payload);
    sign_header(signer, identity, header, digest, payload.len() as u64, payload)
}

/// Fill in `from` (the identity's agency), the payload's digest and size and
/// the signing time when unset, serialize the header once and sign exactly
/// those bytes: the one place a document is signed, for inline payloads
/// ([`sign_with`]) and payloads sent apart ([`transfer::sign_external`]).
pub(crate) fn sign_header(
    signer: &DocumentSigner,
    identity: &Identity,
    header: &mut DocumentHeader,
    sha256: [u8; 32],
    size: u64,
    payload: Vec<u8>,
) -> Result<SignedDocument, ClientError> {
    if let Some(code) = identity.principal.agency() {
        if header.from.is_empty() {
            header.from = code.to_string();
        }
    }
    header.payload_sha256 = sha256.to_vec();
    header.payload_size = size;
    if header.signed_at_unix_ms == 0 {
        header.signed_at_unix_ms = truc_core::now_unix_ms();
    }
    let bytes = header.encode_to_vec();
    let signature = signer.sign(&bytes)?;
    Ok(SignedDocument {
        header: bytes,
        signature,
        signature_scheme: signer.scheme(),
        signer_chain: vec![identity.cert_der.clone()],
        payload,
    })
}

/// Check a received document as the hub did: header, signer chain to the
/// trust anchors in `trust`, signature, payload digest.
pub fn verify_received(doc: &SignedDocument, trust: &SigningTrust) -> Result<CheckedHeader, CoreError> {
    truc_core::document::verify_document(doc, None, trust, rustls_pki_types::UnixTime::now(), true)
}

/// Signing trust built from an identity's CA certificate (the axis CA).
pub fn axis_trust(identity: &Identity) -> Result<SigningTrust, CoreError> {
    SigningTrust::new(std::slice::from_ref(&identity.ca_der), &[])
}
