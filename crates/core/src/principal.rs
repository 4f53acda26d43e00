//! Principals: who is calling, as named by the verified client certificate
//! (design invariant 1).
//!
//! A certificate names exactly one principal in a SubjectAlternativeName URI:
//!
//! | URI | Principal |
//! |---|---|
//! | `urn:truc:agency:<code>` | an agency; `<code>` is an [`AgencyCode`] |
//! | `urn:truc:operator:<name>` | a hub operator |
//! | `urn:truc:auditor:<name>` | an auditor (read-only access to the log) |
//! | `urn:truc:hub:<name>` | a hub (peer or the hub itself) |
//!
//! Names match `[a-z0-9][a-z0-9._-]{0,63}`. URIs are matched exactly: no
//! case folding, no trimming, no percent-decoding.

use std::fmt;
use std::str::FromStr;

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::agency::clip;
use crate::{AgencyCode, CoreError};

/// The prefix every Truc principal URI starts with.
pub const URI_PREFIX: &str = "urn:truc:";

/// The longest operator, auditor or hub name accepted.
pub const MAX_NAME_LEN: usize = 64;

/// An authenticated party.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Principal {
    /// An agency, by its code (`urn:truc:agency:<code>`).
    Agency(AgencyCode),
    /// A hub operator (`urn:truc:operator:<name>`).
    Operator(String),
    /// An auditor (`urn:truc:auditor:<name>`).
    Auditor(String),
    /// A hub (`urn:truc:hub:<name>`).
    Hub(String),
}

impl Principal {
    /// Parses a principal URI such as `urn:truc:agency:000.00.00.G22`.
    ///
    /// A malformed URI or name gives [`CoreError::InvalidPrincipal`]; an
    /// agency URI whose code is invalid gives [`CoreError::InvalidAgencyCode`].
    pub fn parse_uri(uri: &str) -> Result<Principal, CoreError> {
        let invalid = || CoreError::InvalidPrincipal(clip(uri));
        let rest = uri.strip_prefix(URI_PREFIX).ok_or_else(invalid)?;
        let (role, name) = rest.split_once(':').ok_or_else(invalid)?;
        if role == "agency" {
            return AgencyCode::parse(name).map(Principal::Agency);
        }
        if !is_name(name) {
            return Err(invalid());
        }
        let name = name.to_owned();
        match role {
            "operator" => Ok(Principal::Operator(name)),
            "auditor" => Ok(Principal::Auditor(name)),
            "hub" => Ok(Principal::Hub(name)),
            _ => Err(invalid()),
        }
    }

    /// The principal named by a DER-encoded X.509 certificate.
    ///
    /// Reads the SubjectAlternativeName URIs and requires exactly one that
    /// starts with `urn:truc:` (compared without regard to case, so a
    /// second, differently-cased Truc URI cannot hide). Zero or several give
    /// [`CoreError::CertificatePrincipal`]. The certificate's chain and
    /// validity are not checked here: call this on a certificate the TLS
    /// layer has already verified.
    pub fn from_cert_der(der: &[u8]) -> Result<Principal, CoreError> {
        let bad = |why: &str| CoreError::CertificatePrincipal(why.to_owned());
        let (rest, cert) =
            X509Certificate::from_der(der).map_err(|_| bad("the certificate is not valid DER-encoded X.509"))?;
        if !rest.is_empty() {
            return Err(bad("the certificate has trailing data after its DER encoding"));
        }
        let san = cert
            .subject_alternative_name()
            .map_err(|_| bad("the subject alternative name extension is malformed or repeated"))?
            .ok_or_else(|| bad("the certificate has no subject alternative name extension"))?;
        let mut uris = san.value.general_names.iter().filter_map(|n| match n {
            GeneralName::URI(u) if is_truc_uri(u) => Some(*u),
            _ => None,
        });
        match (uris.next(), uris.next()) {
            (None, _) => Err(bad("no urn:truc: URI in the subject alternative names")),
            (Some(uri), None) => Principal::parse_uri(uri),
            (Some(_), Some(_)) => Err(bad(
                "several urn:truc: URIs in the subject alternative names; exactly one is allowed",
            )),
        }
    }

    /// The principal's URI, e.g. `urn:truc:agency:000.00.00.G22`.
    pub fn uri(&self) -> String {
        format!("{URI_PREFIX}{}:{}", self.role(), self.name())
    }

    /// The agency code, if this principal is an agency.
    pub fn agency(&self) -> Option<&AgencyCode> {
        match self {
            Principal::Agency(code) => Some(code),
            _ => None,
        }
    }

    /// The role: `"agency"`, `"operator"`, `"auditor"` or `"hub"`.
    pub fn role(&self) -> &'static str {
        match self {
            Principal::Agency(_) => "agency",
            Principal::Operator(_) => "operator",
            Principal::Auditor(_) => "auditor",
            Principal::Hub(_) => "hub",
        }
    }

    /// The part after the role: the agency code or the name.
    pub fn name(&self) -> &str {
        match self {
            Principal::Agency(code) => code.as_str(),
            Principal::Operator(n) | Principal::Auditor(n) | Principal::Hub(n) => n,
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{URI_PREFIX}{}:{}", self.role(), self.name())
    }
}

impl FromStr for Principal {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Principal::parse_uri(s)
    }
}

/// `[a-z0-9][a-z0-9._-]{0,63}`: an operator, auditor or hub name.
pub(crate) fn is_name(s: &str) -> bool {
    let b = s.as_bytes();
    let first_ok = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    match b.split_first() {
        Some((first, rest)) if b.len() <= MAX_NAME_LEN && first_ok(first) => {
            rest.iter().all(|c| first_ok(c) || matches!(c, b'.' | b'_' | b'-'))
        }
        _ => false,
    }
}

/// Whether a SAN URI claims to be a Truc principal (ASCII case-insensitive).
fn is_truc_uri(uri: &str) -> bool {
    uri.get(..URI_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(URI_PREFIX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair, SanType};

    fn uri_san(s: &str) -> SanType {
        SanType::URI(rcgen::string::Ia5String::try_from(s).unwrap())
    }

    fn cert(sans: Vec<SanType>) -> Vec<u8> {
        let mut params = CertificateParams::default();
        params.subject_alt_names = sans;
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn parses_every_role() {
        let cases = [
            ("urn:truc:agency:000.00.00.G22", "agency", "000.00.00.G22"),
            ("urn:truc:agency:G09.01", "agency", "G09.01"),
            ("urn:truc:operator:alice", "operator", "alice"),
            ("urn:truc:auditor:audit-1.vn_x", "auditor", "audit-1.vn_x"),
            ("urn:truc:hub:truc-hub-01", "hub", "truc-hub-01"),
            ("urn:truc:hub:0", "hub", "0"),
        ];
        for (uri, role, name) in cases {
            let p = Principal::parse_uri(uri).unwrap();
            assert_eq!(p.role(), role);
            assert_eq!(p.name(), name);
            assert_eq!(p.uri(), uri);
            assert_eq!(p.to_string(), uri);
            assert_eq!(uri.parse::<Principal>().unwrap(), p);
            assert_eq!(p.agency().is_some(), role == "agency");
        }
        let p = Principal::parse_uri("urn:truc:agency:000.00.00.G22").unwrap();
        assert_eq!(p.agency().map(AgencyCode::as_str), Some("000.00.00.G22"));
        assert_eq!(p, Principal::Agency(AgencyCode::parse("000.00.00.G22").unwrap()));
    }

    #[test]
    fn name_length_limit() {
        let ok = format!("urn:truc:operator:{}", "a".repeat(64));
        let long = format!("urn:truc:operator:{}", "a".repeat(65));
        assert!(Principal::parse_uri(&ok).is_ok());
        assert!(matches!(
            Principal::parse_uri(&long),
            Err(CoreError::InvalidPrincipal(_))
        ));
    }

    #[test]
    fn rejects_malformed_uris() {
        for uri in [
            "",
            "urn:truc:",
            "urn:truc:hub",
            "urn:truc:hub:",
            "urn:truc:operator:Alice",
            "urn:truc:operator:-alice",
            "urn:truc:operator:.alice",
            "urn:truc:operator:_alice",
            "urn:truc:operator:al ice",
            "urn:truc:operator:alice:x",
            "urn:truc:operator:al/ice",
            "urn:truc:operator:alicé",
            "urn:truc:admin:alice",
            "urn:truc:Operator:alice",
            "URN:TRUC:operator:alice",
            " urn:truc:operator:alice",
            "urn:truc:operator:alice ",
            "urn:other:operator:alice",
            "https://example.vn/operator/alice",
        ] {
            assert!(
                matches!(Principal::parse_uri(uri), Err(CoreError::InvalidPrincipal(_))),
                "{uri:?} should be rejected"
            );
        }
        for uri in [
            "urn:truc:agency:",
            "urn:truc:agency:g22",
            "urn:truc:agency:000.00.00.G22:x",
            "urn:truc:agency:000.00.00.G22 ",
        ] {
            assert!(
                matches!(Principal::parse_uri(uri), Err(CoreError::InvalidAgencyCode(_))),
                "{uri:?} should be rejected as a bad agency code"
            );
        }
    }

    #[test]
    fn certificate_with_one_truc_uri() {
        let der = cert(vec![
            SanType::DnsName("agency.example.vn".try_into().unwrap()),
            uri_san("https://example.vn/"),
            uri_san("urn:truc:agency:000.00.00.G22"),
        ]);
        let p = Principal::from_cert_der(&der).unwrap();
        assert_eq!(p.uri(), "urn:truc:agency:000.00.00.G22");

        let der = cert(vec![uri_san("urn:truc:operator:ops")]);
        assert_eq!(
            Principal::from_cert_der(&der).unwrap(),
            Principal::Operator("ops".into())
        );
    }

    fn cert_error(der: &[u8]) -> String {
        match Principal::from_cert_der(der) {
            Err(CoreError::CertificatePrincipal(why)) => why,
            other => panic!("expected CertificatePrincipal, got {other:?}"),
        }
    }

    #[test]
    fn certificate_without_truc_uri() {
        let der = cert(vec![]);
        assert!(cert_error(&der).contains("no subject alternative name"));
        let der = cert(vec![
            SanType::DnsName("agency.example.vn".try_into().unwrap()),
            uri_san("https://example.vn/"),
        ]);
        assert!(cert_error(&der).contains("no urn:truc: URI"));
    }

    #[test]
    fn certificate_with_several_truc_uris() {
        let der = cert(vec![
            uri_san("urn:truc:agency:000.00.00.G22"),
            uri_san("urn:truc:agency:000.00.00.H29"),
        ]);
        assert!(cert_error(&der).contains("several"));
        // A differently-cased second claim counts too.
        let der = cert(vec![
            uri_san("urn:truc:agency:000.00.00.G22"),
            uri_san("URN:TRUC:operator:root"),
        ]);
        assert!(cert_error(&der).contains("several"));
    }

    #[test]
    fn certificate_with_bad_truc_uri() {
        let der = cert(vec![uri_san("urn:truc:agency:g22")]);
        assert!(matches!(
            Principal::from_cert_der(&der),
            Err(CoreError::InvalidAgencyCode(_))
        ));
        let der = cert(vec![uri_san("urn:truc:root:x")]);
        assert!(matches!(
            Principal::from_cert_der(&der),
            Err(CoreError::InvalidPrincipal(_))
        ));
    }

    #[test]
    fn not_a_certificate() {
        assert!(cert_error(b"").contains("not valid"));
        assert!(cert_error(b"\x30\x03\x02\x01\x00").contains("not valid"));
        let mut der = cert(vec![uri_san("urn:truc:hub:h1")]);
        der.push(0);
        assert!(cert_error(&der).contains("trailing"));
    }
}
