//! `[federation]` and `[[peers]]`: the other hubs this hub trusts, and
//! which agency codes each serves.
//!
//! ```toml
//! [federation]
//! serves = ["*.H49", "H49.*"]        # this hub's own units (optional)
//! default_peer = "national"          # every other code (optional)
//! max_hops = 8
//!
//! [[peers]]
//! id = "national"                    # its certificate: urn:truc:hub:national
//! address = "national.truc.gov.vn:7443"
//! ca = "/etc/truc/peers/national-ca.pem"
//! serves = ["*.G22", "G22.*"]
//! ```
//!
//! Everything is checked when the configuration loads (and by `trucd
//! check-config`): ids, addresses, the CA and CRL files, every pattern, and
//! the routing table as a whole (a pattern two routes claim equally is
//! refused naming both). That a peer's id differs from this hub's own is
//! checked at start, once the hub certificate names this hub.

use std::path::PathBuf;

use serde::Deserialize;
use truc_core::routing::{CodePattern, HubId, RoutingError, RoutingTable, DEFAULT_MAX_HOPS};

use super::ConfigError;

/// The most `federation.max_hops` accepted.
pub const MAX_HOPS_LIMIT: usize = 64;

/// `[federation]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FederationConfig {
    /// Agency-code patterns this hub serves itself (`*.H49`, `H49.*`,
    /// exact codes). A recipient that matches one but is not registered
    /// here is refused rather than sent to the default peer, which would
    /// only send it back. Empty: only registered agencies are local.
    pub serves: Vec<String>,
    /// The peer that takes every code no pattern matches (the national hub,
    /// for a province or ministry hub). None: such codes are unroutable.
    pub default_peer: Option<String>,
    /// Hops a document may make between hubs; more is refused, as is a
    /// loop (default 8; province → national → ministry is 2).
    pub max_hops: usize,
    /// How often this hub submits its latest checkpoint to each peer's
    /// witness (`peers[].witness_url`), ms; a grown log is submitted
    /// sooner (default 10000; see `config/witnessing.rs`).
    pub witness_interval_ms: u64,
}

impl Default for FederationConfig {
    fn default() -> Self {
        Self {
            serves: Vec::new(),
            default_peer: None,
            max_hops: DEFAULT_MAX_HOPS,
            witness_interval_ms: super::witnessing::DEFAULT_WITNESS_INTERVAL_MS,
        }
    }
}

/// `[[peers]]`: one other hub.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// Its id: its certificate names `urn:truc:hub:<id>`.
    pub id: String,
    /// Where it listens for gRPC with mutual TLS: `host:port` or
    /// `https://host:port`.
    pub address: String,
    /// The CA (PEM) that issued it: the trust anchor for its certificate
    /// (it may authenticate as `urn:truc:hub:<id>` and as nothing else) and,
    /// once documents are forwarded, for its agencies' signatures.
    pub ca: PathBuf,
    /// The peer CA's CRL (PEM), re-read when it changes; none: certificates
    /// of that CA are not checked for revocation.
    #[serde(default)]
    pub crl: Option<PathBuf>,
    /// The agency codes it serves: exact codes and patterns (`*.H49`,
    /// `H49.*`).
    #[serde(default)]
    pub serves: Vec<String>,
    /// Witnessing (`config/witnessing.rs`): the peer's checkpoint verifier
    /// key (`<id>.truc/receipts+<key id>+<base64>`, as its `trucd
    /// check-config` prints it); set, this hub witnesses the peer's log.
    #[serde(default)]
    pub checkpoint_key: Option<String>,
    /// Where the peer's witness takes checkpoints: `http://host:port` of
    /// its admin listener (or any c2sp.org/tlog-witness submission
    /// prefix); set with `witness_key`, this hub submits its checkpoints
    /// there.
    #[serde(default)]
    pub witness_url: Option<String>,
    /// The peer's witness key (`<id>.truc/witness+<key id>+<base64>`),
    /// which its cosignatures must verify with.
    #[serde(default)]
    pub witness_key: Option<String>,
}

/// `[[origins]]`: a hub that is not a peer but whose agencies' documents
/// may reach this hub through peers (a province's documents at a ministry
/// hub, relayed by the national hub). Its CA is the trust anchor of those
/// agencies' signatures and of its signed trace hops; `serves` says which
/// sender codes it may originate. Peers are origins of their own `serves`
/// already.
///
/// ```toml
/// [[origins]]
/// id = "h49"
/// ca = "/etc/truc/origins/h49-ca.pem"
/// serves = ["*.H49", "H49.*"]
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginConfig {
    /// Its id: its certificate names `urn:truc:hub:<id>`.
    pub id: String,
    /// The CA (PEM) that issued it and its agencies.
    pub ca: PathBuf,
    /// The CA's CRL (PEM); none: not checked for revocation.
    #[serde(default)]
    pub crl: Option<PathBuf>,
    /// The agency codes it serves (exact codes and patterns).
    pub serves: Vec<String>,
}

impl PeerConfig {
    /// Its id, parsed.
    pub fn hub_id(&self) -> Result<HubId, RoutingError> {
        HubId::parse(&self.id)
    }

    /// The URL clients use: `https://host:port`.
    pub fn url(&self) -> Result<String, String> {
        peer_url(&self.address)
    }
}

/// `host:port` or `https://host:port` as a URL; anything else refused,
/// saying why.
pub fn peer_url(address: &str) -> Result<String, String> {
    let rest = match address.split_once("://") {
        Some(("https", rest)) => rest,
        Some((scheme, _)) => {
            return Err(format!(
                "scheme {scheme}:// is not allowed: peers are reached with mutual TLS (https:// or host:port)"
            ))
        }
        None => address,
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('/') || rest.contains('@') || rest.contains('?') {
        return Err("expected host:port, without a path, user or query".into());
    }
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| "no port: write host:port, e.g. national.truc.gov.vn:7443".to_string())?;
    let port_ok = port.parse::<u16>().is_ok_and(|p| p != 0);
    let host_ok = !host.is_empty()
        && (host.starts_with('[') && host.ends_with(']') || !host.contains(':'))
        && host.chars().all(|c| c.is_ascii_alphanumeric() || "-.[]:".contains(c));
    if !port_ok {
        return Err(format!("port {port:?} is not a number in 1..=65535"));
    }
    if !host_ok {
        return Err(format!(
            "host {host:?} is not a DNS name or an IP address (IPv6 in brackets)"
        ));
    }
    let url = format!("https://{host}:{port}");
    url.parse::<tonic::transport::Uri>()
        .map_err(|_| format!("{url} is not a valid URL"))?;
    Ok(url)
}

fn err(key: String, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Federation {
        key,
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// The patterns of one route, each error naming its key (`key(j)` for the
/// `j`th).
fn patterns(key: impl Fn(usize) -> String, list: &[String]) -> Result<Vec<CodePattern>, ConfigError> {
    list.iter()
        .enumerate()
        .map(|(j, s)| CodePattern::parse(s).map_err(|e| err(key(j), &format!("{s:?}"), e.reason)))
        .collect()
}

/// Checks `[federation]` and `[[peers]]` and builds the routing table,
/// without this hub's own id when `own` is `None` (before the hub
/// certificate is read).
/// Checks `[[origins]]`: ids (none a peer's), CA and CRL files, patterns;
/// returns each origin's id and patterns.
pub(crate) fn origins(
    origins: &[OriginConfig],
    peers: &[PeerConfig],
) -> Result<Vec<(HubId, Vec<CodePattern>)>, ConfigError> {
    let mut out = Vec::with_capacity(origins.len());
    for (i, o) in origins.iter().enumerate() {
        let at = |k: &str| format!("origins[{i}].{k}");
        let id = HubId::parse(&o.id).map_err(|e| err(at("id"), &format!("{:?}", o.id), e.to_string()))?;
        if peers.iter().any(|p| p.id == o.id) || out.iter().any(|(h, _)| h == &id) {
            return Err(err(
                at("id"),
                &format!("{:?}", o.id),
                "is a peer or another origin already: list each hub once (a peer is an origin of its serves)",
            ));
        }
        let at = |k: &str| format!("origins[{i}].{k} (origin {id})");
        trust_anchor_file(&o.ca).map_err(|why| err(at("ca"), &o.ca.display().to_string(), why))?;
        if let Some(crl) = &o.crl {
            truc_pki::read_crl_ders(crl).map_err(|e| err(at("crl"), &crl.display().to_string(), e.to_string()))?;
        }
        if o.serves.is_empty() {
            return Err(err(at("serves"), "[]", "an origin must serve some codes"));
        }
        out.push((
            id.clone(),
            patterns(|j| format!("origins[{i}].serves[{j}] (origin {id})"), &o.serves)?,
        ));
    }
    Ok(out)
}

/// A PEM file of certificates that can each be a trust anchor.
fn trust_anchor_file(path: &std::path::Path) -> Result<(), String> {
    let certs = truc_pki::read_cert_ders(path).map_err(|e| e.to_string())?;
    for der in &certs {
        let cert = rustls_pki_types::CertificateDer::from(der.as_slice());
        webpki::anchor_from_trusted_cert(&cert).map_err(|e| format!("a certificate cannot be a trust anchor ({e})"))?;
    }
    Ok(())
}

pub(crate) fn routing_table(
    federation: &FederationConfig,
    peers: &[PeerConfig],
    own: Option<&HubId>,
) -> Result<RoutingTable, ConfigError> {
    let f = federation;
    if !(1..=MAX_HOPS_LIMIT).contains(&f.max_hops) {
        return Err(err(
            "federation.max_hops".into(),
            &f.max_hops.to_string(),
            format!("must be in 1..={MAX_HOPS_LIMIT}"),
        ));
    }
    let serves = patterns(|j| format!("federation.serves[{j}]"), &f.serves)?;
    let mut routes = Vec::with_capacity(peers.len());
    for (i, p) in peers.iter().enumerate() {
        let at = |k: &str| format!("peers[{i}].{k}");
        let id = p
            .hub_id()
            .map_err(|e| err(at("id"), &format!("{:?}", p.id), e.to_string()))?;
        let at = |k: &str| format!("peers[{i}].{k} (peer {id})");
        p.url()
            .map_err(|why| err(at("address"), &format!("{:?}", p.address), why))?;
        trust_anchor_file(&p.ca).map_err(|why| err(at("ca"), &p.ca.display().to_string(), why))?;
        if let Some(crl) = &p.crl {
            truc_pki::read_crl_ders(crl).map_err(|e| err(at("crl"), &crl.display().to_string(), e.to_string()))?;
        }
        routes.push((
            id.clone(),
            patterns(|j| format!("peers[{i}].serves[{j}] (peer {id})"), &p.serves)?,
        ));
    }
    let default = match &f.default_peer {
        Some(d) => {
            Some(HubId::parse(d).map_err(|e| err("federation.default_peer".into(), &format!("{d:?}"), e.to_string()))?)
        }
        None => None,
    };
    RoutingTable::new(own, &serves, &routes, default.as_ref()).map_err(|e| match &e {
        RoutingError::UnknownDefaultPeer(d) => err(
            "federation.default_peer".into(),
            &format!("{:?}", d.as_str()),
            e.to_string(),
        ),
        _ => err("routing".into(), "", e.to_string()),
    })
}

#[cfg(test)]
mod tests;
