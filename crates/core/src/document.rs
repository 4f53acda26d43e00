//! What makes a signed document acceptable (design.md invariant 2).
//!
//! The hub and every receiving client run the same checks: the header bytes
//! decode and are well-formed, the signer's certificate chains to a signing
//! trust anchor and is valid and not revoked, the signer is the sending
//! agency, the signature covers exactly the header bytes, and the payload
//! matches the size and SHA-256 the header states.

use crate::sync::Locked;
use std::collections::HashSet;

use prost::Message;
pub use rustls_pki_types::UnixTime;
use rustls_pki_types::{CertificateDer, SignatureVerificationAlgorithm, TrustAnchor};
use truc_proto::v1::{BusinessType, DocumentHeader, Priority, ReceiverType, SignatureScheme, SignedDocument};
use webpki::ring as algs;

use crate::{AgencyCode, CoreError, Principal};

/// Largest serialized header accepted.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Most recipients one document may name.
pub const MAX_RECIPIENTS: usize = 1000;
/// Longest document id, in characters.
pub const MAX_DOCUMENT_ID_CHARS: usize = 256;
/// Most certificates in a signer chain.
pub const MAX_CHAIN_LEN: usize = 8;

/// Most signer chains remembered as verified.
const VERIFIED_CHAINS: usize = 4096;

/// Certificates and CRLs that document signatures are checked against.
///
/// A chain that verified is remembered (by the SHA-256 of its certificates)
/// with its principal and the window in which every certificate of it is
/// valid, so the next document from the same signer costs one signature
/// check instead of three. Anchors and CRLs never change inside one
/// `SigningTrust`: a CRL reload builds a new one, with an empty memory.
#[derive(Debug)]
pub struct SigningTrust {
    anchors: Vec<TrustAnchor<'static>>,
    crls: Vec<webpki::CertRevocationList<'static>>,
    verified: std::sync::Mutex<std::collections::HashMap<[u8; 32], VerifiedChain>>,
}

/// A chain that verified against this trust.
#[derive(Debug, Clone)]
struct VerifiedChain {
    principal: Principal,
    /// Every certificate of the chain is valid from here (Unix seconds)…
    not_before: u64,
    /// …to here.
    not_after: u64,
}

/// The SHA-256 of a chain, each certificate length-prefixed.
fn chain_key(chain: &[Vec<u8>]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for c in chain {
        ctx.update(&(c.len() as u64).to_be_bytes());
        ctx.update(c);
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    key
}

/// The window in which every certificate of `chain` is valid, Unix seconds.
fn validity_window(chain: &[Vec<u8>]) -> Option<(u64, u64)> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let mut window = (0u64, u64::MAX);
    for der in chain {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let v = cert.validity();
        window.0 = window.0.max(u64::try_from(v.not_before.timestamp()).ok()?);
        window.1 = window.1.min(u64::try_from(v.not_after.timestamp()).ok()?);
    }
    Some(window)
}

impl SigningTrust {
    /// Trust the CA certificates `anchor_ders` (DER), and refuse certificates
    /// listed in the CRLs `crl_ders` (DER).
    pub fn new(anchor_ders: &[Vec<u8>], crl_ders: &[Vec<u8>]) -> Result<Self, CoreError> {
        let mut anchors = Vec::with_capacity(anchor_ders.len());
        for der in anchor_ders {
            let cert = CertificateDer::from(der.as_slice());
            let anchor = webpki::anchor_from_trusted_cert(&cert)
                .map_err(|e| CoreError::BadKey(format!("trust anchor is not a usable CA certificate: {e}")))?;
            anchors.push(anchor.to_owned());
        }
        if anchors.is_empty() {
            return Err(CoreError::BadKey("no signing trust anchors".into()));
        }
        let mut crls = Vec::with_capacity(crl_ders.len());
        for der in crl_ders {
            let crl = webpki::OwnedCertRevocationList::from_der(der)
                .map_err(|e| CoreError::BadKey(format!("unusable CRL: {e}")))?;
            crls.push(webpki::CertRevocationList::Owned(crl));
        }
        Ok(Self {
            anchors,
            crls,
            verified: Default::default(),
        })
    }

    /// Check that `chain[0]` is valid now, chains to a trust anchor through
    /// `chain[1..]`, is not revoked, and may be used by a client. Returns the
    /// principal it names.
    pub fn verify_chain(&self, chain: &[Vec<u8>], now: UnixTime) -> Result<Principal, CoreError> {
        if chain.is_empty() || chain.len() > MAX_CHAIN_LEN {
            return self.verify_chain_fully(chain, now);
        }
        let key = chain_key(chain);
        let secs = now.as_secs();
        let known = self.remembered().get(&key).cloned();
        if let Some(v) = known {
            if v.not_before <= secs && secs <= v.not_after {
                return Ok(v.principal);
            }
        }
        let principal = self.verify_chain_fully(chain, now)?;
        if let Some((not_before, not_after)) = validity_window(chain) {
            let mut memory = self.remembered();
            if memory.len() >= VERIFIED_CHAINS {
                memory.clear();
            }
            memory.insert(
                key,
                VerifiedChain {
                    principal: principal.clone(),
                    not_before,
                    not_after,
                },
            );
        }
        Ok(principal)
    }

    fn remembered(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<[u8; 32], VerifiedChain>> {
        self.verified.locked()
    }

    /// [`Self::verify_chain`] without the memory of verified chains.
    fn verify_chain_fully(&self, chain: &[Vec<u8>], now: UnixTime) -> Result<Principal, CoreError> {
        if chain.is_empty() {
            return Err(CoreError::BadChain("no signer certificate".into()));
        }
        if chain.len() > MAX_CHAIN_LEN {
            return Err(CoreError::BadChain(format!("more than {MAX_CHAIN_LEN} certificates")));
        }
        let leaf = CertificateDer::from(chain[0].as_slice());
        let ee = webpki::EndEntityCert::try_from(&leaf)
            .map_err(|e| CoreError::BadChain(format!("not a valid X.509 certificate ({e})")))?;
        let intermediates: Vec<CertificateDer<'_>> =
            chain[1..].iter().map(|c| CertificateDer::from(c.as_slice())).collect();
        let crl_refs: Vec<&webpki::CertRevocationList<'_>> = self.crls.iter().collect();
        let revocation = if crl_refs.is_empty() {
            None
        } else {
            Some(
                webpki::RevocationOptionsBuilder::new(&crl_refs)
                    .map_err(|_| CoreError::BadChain("no CRLs".into()))?
                    .with_depth(webpki::RevocationCheckDepth::Chain)
                    .with_status_policy(webpki::UnknownStatusPolicy::Allow)
                    .with_expiration_policy(webpki::ExpirationPolicy::Ignore)
                    .build(),
            )
        };
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &self.anchors,
            &intermediates,
            now,
            webpki::KeyUsage::client_auth(),
            revocation,
            None,
        )
        .map_err(|e| CoreError::BadChain(chain_error(&e)))?;
        Principal::from_cert_der(&chain[0])
    }
}

/// Words for a chain failure, without internals.
fn chain_error(e: &webpki::Error) -> String {
    use webpki::Error as E;
    match e {
        E::CertExpired { .. } => "certificate has expired".into(),
        E::CertNotValidYet { .. } => "certificate is not valid yet".into(),
        E::CertRevoked => "certificate has been revoked".into(),
        E::UnknownIssuer => "certificate is not issued by a trusted signing CA".into(),
        E::RequiredEkuNotFoundContext(_) => "certificate may not be used for client authentication or signing".into(),
        E::InvalidSignatureForPublicKey => {
            "certificate is not issued by a trusted CA (its issuer signature does not verify)".into()
        }
        other => format!("certificate chain does not verify ({other:?})"),
    }
}

/// A header that decoded and passed the field checks.
#[derive(Debug, Clone)]
pub struct CheckedHeader {
    /// The decoded header.
    pub header: DocumentHeader,
    /// The sending agency.
    pub from: AgencyCode,
    /// The recipients, in header order, without duplicates.
    pub to: Vec<AgencyCode>,
    /// The priority (0..=4).
    pub priority: Priority,
    /// New document, revoke, update or replacement.
    pub business: BusinessType,
    /// SHA-256 of the header bytes.
    pub header_sha256: [u8; 32],
    /// SHA-256 of the header without its signing time: equal for the same
    /// document signed again, so a re-signed retry is still a retry.
    pub content_sha256: [u8; 32],
}

/// Decode the header bytes and check every field the hub relies on.
pub fn check_header(bytes: &[u8]) -> Result<CheckedHeader, CoreError> {
    let bad = |m: String| CoreError::MalformedHeader(m);
    if bytes.is_empty() {
        return Err(bad("header is empty".into()));
    }
    if bytes.len() > MAX_HEADER_BYTES {
        return Err(bad(format!(
            "header is {} bytes; at most {MAX_HEADER_BYTES}",
            bytes.len()
        )));
    }
    let header = DocumentHeader::decode(bytes)
        .map_err(|_| bad("header bytes are not a DocumentHeader protobuf message".into()))?;
    let from = AgencyCode::parse(&header.from)?;
    if header.to.is_empty() {
        return Err(bad("no recipients".into()));
    }
    if header.to.len() > MAX_RECIPIENTS {
        return Err(bad(format!("{} recipients; at most {MAX_RECIPIENTS}", header.to.len())));
    }
    let mut seen = HashSet::with_capacity(header.to.len());
    let mut to = Vec::with_capacity(header.to.len());
    for code in &header.to {
        let code = AgencyCode::parse(code)?;
        if !seen.insert(code.clone()) {
            return Err(bad(format!("recipient {code} is listed twice")));
        }
        to.push(code);
    }
    check_document_id("document_id", &header.document_id)?;
    let priority =
        Priority::try_from(header.priority).map_err(|_| bad(format!("priority {} is not 0..=4", header.priority)))?;
    let business = BusinessType::try_from(header.business_type)
        .map_err(|_| bad(format!("business_type {} is not 0..=3", header.business_type)))?;
    check_business(&header, business, &to)?;
    if header.payload_sha256.len() != 32 {
        return Err(bad("payload_sha256 must be 32 bytes".into()));
    }
    if header.subject.chars().count() > 4000 {
        return Err(bad("subject is longer than 4000 characters".into()));
    }
    if header.file_name.contains(['/', '\\', '\0']) || header.file_name.len() > 255 {
        return Err(bad("file_name must be a plain file name of at most 255 bytes".into()));
    }
    crate::attachments::check_manifest(&header)?;
    check_organizations(&header)?;
    let content_sha256 = {
        let mut unsigned = header.clone();
        unsigned.signed_at_unix_ms = 0;
        crate::sha256(&unsigned.encode_to_vec())
    };
    Ok(CheckedHeader {
        header_sha256: crate::sha256(bytes),
        content_sha256,
        header,
        from,
        to,
        priority,
        business,
    })
}

/// The edXML organisation blocks agree with the routing fields: `sender`
/// names `from` (or no one), `recipients` are `to`'s, in order (or none).
fn check_organizations(header: &DocumentHeader) -> Result<(), CoreError> {
    let bad = |m: String| CoreError::MalformedHeader(m);
    if let Some(s) = &header.sender {
        if !s.organ_id.is_empty() && s.organ_id != header.from {
            return Err(bad(format!(
                "sender.organ_id {:?} is not from {:?}",
                s.organ_id, header.from
            )));
        }
    }
    if header.recipients.is_empty() {
        return Ok(());
    }
    if header.recipients.len() != header.to.len() {
        return Err(bad(format!(
            "{} recipients' organisation blocks for {} recipients (to): one each, in the same order",
            header.recipients.len(),
            header.to.len()
        )));
    }
    for (i, (r, code)) in header.recipients.iter().zip(&header.to).enumerate() {
        if r.organ_id != *code {
            return Err(bad(format!(
                "recipients[{i}].organ_id {:?} is not to[{i}] {code:?}",
                r.organ_id
            )));
        }
    }
    Ok(())
}

/// Most characters in `business_reason`.
const MAX_REASON_CHARS: usize = 2000;

/// The Bussiness block: what each business type needs and allows (the
/// rules in document.proto, `reference_document_id`).
fn check_business(header: &DocumentHeader, business: BusinessType, to: &[AgencyCode]) -> Result<(), CoreError> {
    let bad = |m: String| CoreError::MalformedHeader(m);
    if header.business_reason.chars().count() > MAX_REASON_CHARS {
        return Err(bad(format!(
            "business_reason is longer than {MAX_REASON_CHARS} characters"
        )));
    }
    if business != BusinessType::Update && !header.receiver_changes.is_empty() {
        return Err(bad("receiver_changes belong to an update (business_type 2)".into()));
    }
    if business != BusinessType::Replace && !header.replacements.is_empty() {
        return Err(bad("replacements belong to a replacement (business_type 3)".into()));
    }
    match business {
        BusinessType::New if !header.reference_document_id.is_empty() => {
            Err(bad("a new document has no reference_document_id".into()))
        }
        BusinessType::New => Ok(()),
        // Sent as the axis does, under the original's id: the reference
        // may be left empty.
        BusinessType::Revoke | BusinessType::Update if header.reference_document_id.is_empty() => {
            check_receiver_changes(header, to)
        }
        BusinessType::Revoke | BusinessType::Update => {
            check_document_id("reference_document_id", &header.reference_document_id)?;
            check_receiver_changes(header, to)
        }
        BusinessType::Replace => {
            if header.replacements.is_empty() {
                return check_document_id("reference_document_id", &header.reference_document_id);
            }
            if !header.reference_document_id.is_empty()
                && !header
                    .replacements
                    .iter()
                    .any(|r| r.document_id == header.reference_document_id)
            {
                return Err(bad(
                    "reference_document_id is not among the replacements' document ids".into()
                ));
            }
            let mut seen = HashSet::new();
            for r in &header.replacements {
                check_document_id("replacements.document_id", &r.document_id)?;
                if r.document_id == header.document_id {
                    return Err(bad(format!("{:?} cannot replace itself", r.document_id)));
                }
                if !seen.insert(r.document_id.as_str()) {
                    return Err(bad(format!("{:?} is replaced twice", r.document_id)));
                }
                for code in &r.organ_ids {
                    let code = AgencyCode::parse(code)?;
                    if !to.contains(&code) {
                        return Err(bad(format!(
                            "{code} is named for replacing {:?} but is not a recipient (to)",
                            r.document_id
                        )));
                    }
                }
            }
            Ok(())
        }
    }
}

/// An update's receiver list agrees with its `to` (the new recipients).
fn check_receiver_changes(header: &DocumentHeader, to: &[AgencyCode]) -> Result<(), CoreError> {
    let bad = |m: String| CoreError::MalformedHeader(m);
    let mut seen = HashSet::new();
    for c in &header.receiver_changes {
        let code = AgencyCode::parse(&c.organ_id)?;
        if !seen.insert(code.clone()) {
            return Err(bad(format!("{code} is listed twice in receiver_changes")));
        }
        let added = match ReceiverType::try_from(c.receiver_type) {
            Ok(ReceiverType::Added) => true,
            Ok(ReceiverType::Removed) => false,
            Err(_) => return Err(bad(format!("receiver_type {} is not 0 or 1", c.receiver_type))),
        };
        if added != to.contains(&code) {
            return Err(bad(if added {
                format!("{code} is added but is not among the new recipients (to)")
            } else {
                format!("{code} is removed but is still among the new recipients (to)")
            }));
        }
    }
    Ok(())
}

fn check_document_id(field: &str, id: &str) -> Result<(), CoreError> {
    let n = id.chars().count();
    if n == 0 || n > MAX_DOCUMENT_ID_CHARS {
        return Err(CoreError::MalformedHeader(format!(
            "{field} must have 1..={MAX_DOCUMENT_ID_CHARS} characters"
        )));
    }
    if id.chars().any(char::is_control) {
        return Err(CoreError::MalformedHeader(format!(
            "{field} contains control characters"
        )));
    }
    Ok(())
}

/// Refuse a document id in the axis's form `<sender code>,<yyyy/MM/dd>,<number>/<notation>`
/// whose part before the first comma is not the sender's code `from`: the id would name
/// another agency's document. Checked when a document is accepted from its sender
/// (not when one already accepted is delivered: old headers still deliver). An id with
/// no comma names no agency and passes here; the hub warns about its form instead.
/// Revoke and update carry the original document's id, which is the sender's own.
pub fn check_document_id_sender(from: &AgencyCode, id: &str) -> Result<(), CoreError> {
    match id.split_once(',') {
        Some((prefix, _)) if prefix != from.as_str() => Err(CoreError::MalformedHeader(format!(
            "document_id must start with the sender's code \"{from},\" (it starts with \"{prefix},\", \
             another agency's code): the form is <sender code>,<yyyy/MM/dd>,<number>/<notation>"
        ))),
        _ => Ok(()),
    }
}

/// Check the signature over `header` with the signer certificate's key.
pub fn verify_signature(signer_der: &[u8], header: &[u8], signature: &[u8], scheme: i32) -> Result<(), CoreError> {
    let cert = CertificateDer::from(signer_der);
    let ee = webpki::EndEntityCert::try_from(&cert)
        .map_err(|_| CoreError::BadChain("not a valid X.509 certificate".into()))?;
    let candidates: &[&dyn SignatureVerificationAlgorithm] =
        match SignatureScheme::try_from(scheme).unwrap_or(SignatureScheme::Unspecified) {
            SignatureScheme::RsaPkcs1Sha256 => &[algs::RSA_PKCS1_2048_8192_SHA256],
            SignatureScheme::RsaPssSha256 => &[algs::RSA_PSS_2048_8192_SHA256_LEGACY_KEY],
            SignatureScheme::Unspecified => &[
                algs::ECDSA_P256_SHA256,
                algs::ED25519,
                algs::RSA_PKCS1_2048_8192_SHA256,
                algs::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
            ],
        };
    if candidates
        .iter()
        .any(|alg| ee.verify_signature(*alg, header, signature).is_ok())
    {
        Ok(())
    } else {
        Err(CoreError::BadSignature)
    }
}

/// Check the payload bytes against the size and digest the header signs.
pub fn check_payload(header: &DocumentHeader, payload: &[u8]) -> Result<(), CoreError> {
    if payload.len() as u64 != header.payload_size {
        return Err(CoreError::PayloadMismatch(format!(
            "payload is {} bytes, header says {}",
            payload.len(),
            header.payload_size
        )));
    }
    // Each attachment first, so that a change is named by its attachment.
    crate::attachments::check_inline(header, payload)?;
    if crate::sha256(payload).as_slice() != header.payload_sha256.as_slice() {
        return Err(CoreError::PayloadMismatch(
            "payload SHA-256 differs from the signed digest".into(),
        ));
    }
    Ok(())
}

/// Refuse a header signed more than `max_ahead_ms` after `now_unix_ms` (the
/// checking side's clock): a document cannot have been signed in the future,
/// and a far-future time would mislead whoever reads it.
pub fn check_signed_at(header: &DocumentHeader, now_unix_ms: i64, max_ahead_ms: u64) -> Result<(), CoreError> {
    let ahead_ms = header.signed_at_unix_ms.saturating_sub(now_unix_ms);
    if ahead_ms > 0 && ahead_ms as u64 > max_ahead_ms {
        return Err(CoreError::SignedInFuture {
            signed_at_unix_ms: header.signed_at_unix_ms,
            ahead_ms,
            max_ms: max_ahead_ms,
        });
    }
    Ok(())
}

/// Run every check on a document sent by `caller` (the agency named by the
/// mTLS certificate), cheapest first. The payload is checked when
/// `check_inline_payload` is set (inline sends and received deliveries).
pub fn verify_document(
    doc: &SignedDocument,
    caller: Option<&AgencyCode>,
    trust: &SigningTrust,
    now: UnixTime,
    check_inline_payload: bool,
) -> Result<CheckedHeader, CoreError> {
    let checked = check_header(&doc.header)?;
    if let Some(caller) = caller {
        if &checked.from != caller {
            return Err(CoreError::SenderMismatch(format!(
                "header.from {} is not the calling agency {caller}",
                checked.from
            )));
        }
        check_document_id_sender(&checked.from, &checked.header.document_id)?;
    }
    let signer = trust.verify_chain(&doc.signer_chain, now)?;
    if signer.agency() != Some(&checked.from) {
        return Err(CoreError::SenderMismatch(format!(
            "document is signed by {signer}, not by the sending agency {}",
            checked.from
        )));
    }
    verify_signature(&doc.signer_chain[0], &doc.header, &doc.signature, doc.signature_scheme)?;
    if check_inline_payload {
        check_payload(&checked.header, &doc.payload)?;
    }
    Ok(checked)
}

/// The UTC date of `unix_ms` as `yyyy/MM/dd`, the form used inside edXML
/// document ids. (UTC, as the ids this function has always made; the
/// axis's local date is [`crate::Calendar::local_date`].)
pub fn date_for_document_id(unix_ms: i64) -> String {
    let d = crate::calendar::date_of_day(unix_ms.div_euclid(86_400_000));
    format!("{:04}/{:02}/{:02}", d.year(), d.month(), d.day())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CA and an agency certificate valid from `from` to `to` (Unix s).
    fn chain_valid(from: u64, to: u64) -> (Vec<u8>, Vec<Vec<u8>>) {
        use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, SanType};
        let at = |s: u64| std::time::UNIX_EPOCH + std::time::Duration::from_secs(s);
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::default();
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.not_before = at(0).into();
        ca.not_after = at(4_000_000_000).into();
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let mut leaf = CertificateParams::default();
        leaf.not_before = at(from).into();
        leaf.not_after = at(to).into();
        leaf.subject_alt_names = vec![SanType::URI("urn:truc:agency:000.00.00.G22".try_into().unwrap())];
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let leaf = leaf.signed_by(&KeyPair::generate().unwrap(), &issuer).unwrap();
        (ca_cert.der().to_vec(), vec![leaf.der().to_vec()])
    }

    #[test]
    fn a_remembered_chain_still_expires() {
        let (ca, chain) = chain_valid(1_700_000_000, 1_800_000_000);
        let trust = SigningTrust::new(&[ca], &[]).unwrap();
        let at = |s: u64| UnixTime::since_unix_epoch(std::time::Duration::from_secs(s));
        // Verified once, then answered from memory.
        for _ in 0..2 {
            let p = trust.verify_chain(&chain, at(1_750_000_000)).unwrap();
            assert_eq!(p.uri(), "urn:truc:agency:000.00.00.G22");
        }
        assert_eq!(trust.remembered().len(), 1);
        // Outside the window the memory does not answer: the full check does.
        let late = trust.verify_chain(&chain, at(1_800_000_001)).unwrap_err();
        assert!(late.to_string().contains("expired"), "{late}");
        let early = trust.verify_chain(&chain, at(1_699_999_999)).unwrap_err();
        assert!(early.to_string().contains("not valid yet"), "{early}");
        // Another chain is not confused with it.
        let (_, other) = chain_valid(1_700_000_000, 1_800_000_000);
        let e = trust.verify_chain(&other, at(1_750_000_000)).unwrap_err();
        assert!(e.to_string().contains("trusted"), "{e}");
    }

    fn header() -> DocumentHeader {
        DocumentHeader {
            from: "000.00.00.G22".into(),
            to: vec!["000.00.00.H26".into(), "G09.01".into()],
            document_id: "000.00.00.G22,2026/11/23,1/VPCP".into(),
            payload_sha256: crate::sha256(b"x").to_vec(),
            payload_size: 1,
            ..Default::default()
        }
    }

    #[test]
    fn good_header_passes() {
        let c = check_header(&header().encode_to_vec()).unwrap();
        assert_eq!(c.to.len(), 2);
        assert_eq!(c.from.as_str(), "000.00.00.G22");
    }

    #[test]
    fn header_field_checks() {
        type Case = (fn(&mut DocumentHeader), &'static str);
        let cases: Vec<Case> = vec![
            (|h| h.to.clear(), "no recipients"),
            (|h| h.to.push("G09.01".into()), "listed twice"),
            (|h| h.to.push("nope".into()), "invalid agency code"),
            (|h| h.from = "x".into(), "invalid agency code"),
            (|h| h.document_id.clear(), "document_id"),
            (|h| h.document_id = "a\nb".into(), "control"),
            (|h| h.priority = 9, "priority"),
            (|h| h.business_type = 3, "reference_document_id"),
            (|h| h.payload_sha256 = vec![1; 31], "32 bytes"),
            (|h| h.file_name = "../etc/passwd".into(), "file_name"),
        ];
        for (mutate, want) in cases {
            let mut h = header();
            mutate(&mut h);
            let err = check_header(&h.encode_to_vec()).unwrap_err().to_string();
            assert!(err.contains(want), "{err:?} should mention {want:?}");
        }
    }

    #[test]
    fn a_document_id_names_its_sender() {
        let g22 = AgencyCode::parse("000.00.00.G22").unwrap();
        assert!(check_document_id_sender(&g22, "000.00.00.G22,2026/12/06,1/VPCP").is_ok());
        // No comma: not in the axis's form, not another agency's either.
        assert!(check_document_id_sender(&g22, "d1").is_ok());
        for other in ["000.00.00.H26,2026/12/06,1/UBND", "G22,2026/12/06,1/VPCP", ",x"] {
            let e = check_document_id_sender(&g22, other).unwrap_err().to_string();
            assert!(
                e.contains("document_id must start with the sender's code \"000.00.00.G22,\""),
                "{e}"
            );
        }
    }

    #[test]
    fn business_block_checks() {
        use truc_proto::v1::{ReceiverChange, Replacement};
        let change = |code: &str, t: ReceiverType| ReceiverChange {
            organ_id: code.into(),
            receiver_type: t as i32,
        };
        let replaced = |id: &str, codes: &[&str]| Replacement {
            document_id: id.into(),
            organ_ids: codes.iter().map(|c| c.to_string()).collect(),
        };
        // As the axis sends them: under the original's id, no reference.
        for t in [BusinessType::Revoke, BusinessType::Update] {
            let mut h = header();
            h.business_type = t as i32;
            check_header(&h.encode_to_vec()).unwrap();
        }
        let mut h = header();
        h.business_type = BusinessType::Update as i32;
        h.receiver_changes = vec![
            change("G09.01", ReceiverType::Added),
            change("000.00.00.H29", ReceiverType::Removed),
        ];
        check_header(&h.encode_to_vec()).unwrap();
        let mut h = header();
        h.business_type = BusinessType::Replace as i32;
        h.document_id = "new".into();
        h.replacements = vec![
            replaced("a", &["000.00.00.H26"]),
            replaced("b", &["G09.01"]),
            replaced("c", &[]),
        ];
        check_header(&h.encode_to_vec()).unwrap();

        type Case = (fn(&mut DocumentHeader), &'static str);
        let cases: Vec<Case> = vec![
            (
                |h| h.replacements = vec![Replacement::default()],
                "belong to a replacement",
            ),
            (
                |h| h.receiver_changes = vec![ReceiverChange::default()],
                "belong to an update",
            ),
            (|h| h.business_reason = "x".repeat(2001), "business_reason"),
            (
                |h| {
                    h.business_type = 2;
                    h.receiver_changes = vec![ReceiverChange {
                        organ_id: "000.00.00.H29".into(),
                        receiver_type: 1,
                    }];
                },
                "is added but",
            ),
            (
                |h| {
                    h.business_type = 2;
                    h.receiver_changes = vec![ReceiverChange {
                        organ_id: "G09.01".into(),
                        receiver_type: 0,
                    }];
                },
                "is removed but",
            ),
            (
                |h| {
                    h.business_type = 3;
                    h.replacements = vec![Replacement {
                        document_id: "a".into(),
                        organ_ids: vec!["000.00.00.H29".into()],
                    }];
                },
                "not a recipient",
            ),
            (
                |h| {
                    h.business_type = 3;
                    h.replacements = vec![Replacement {
                        document_id: h.document_id.clone(),
                        organ_ids: vec![],
                    }];
                },
                "cannot replace itself",
            ),
        ];
        for (mutate, want) in cases {
            let mut h = header();
            mutate(&mut h);
            let err = check_header(&h.encode_to_vec()).unwrap_err().to_string();
            assert!(err.contains(want), "{err:?} should mention {want:?}");
        }
    }

    #[test]
    fn garbage_header_is_malformed() {
        assert!(matches!(
            check_header(&[0xff, 0xff, 0xff]),
            Err(CoreError::MalformedHeader(_))
        ));
        assert!(matches!(check_header(&[]), Err(CoreError::MalformedHeader(_))));
    }

    #[test]
    fn payload_mismatch() {
        let h = header();
        assert!(check_payload(&h, b"x").is_ok());
        assert!(check_payload(&h, b"y").is_err());
        assert!(check_payload(&h, b"xx").is_err());
    }

    #[test]
    fn civil_dates() {
        assert_eq!(date_for_document_id(0), "1970/01/01");
        assert_eq!(date_for_document_id(1_537_401_600_000), "2018/09/20");
        assert_eq!(date_for_document_id(1_709_164_800_000), "2024/02/29");
    }
}
