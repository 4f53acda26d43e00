//! Issuing certificates to principals.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose, SanType};
use truc_core::Principal;

use crate::ca::{unix, BACKDATE};
use crate::files::{self, PRIVATE, PUBLIC};
use crate::ledger::{IssuedCert, Ledger};
use crate::{KeyType, Pki, PkiError, Serial};

/// What a certificate may be used for (its extended key usage).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Usage {
    /// TLS client authentication (hub certificates also get server
    /// authentication). The default.
    #[default]
    Client,
    /// TLS server authentication only: a certificate a client must not be
    /// able to log in with (for tests of wrong key usage).
    ServerOnly,
}

/// Options for [`Pki::issue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueOptions {
    /// The key to generate (default ECDSA P-256).
    pub key_type: KeyType,
    /// Start of validity (default: now, minus five minutes for clock skew).
    pub not_before: Option<SystemTime>,
    /// End of validity (default: `not_before` plus `days`).
    pub not_after: Option<SystemTime>,
    /// Validity in days when `not_after` is not given (default 365).
    pub days: u32,
    /// Extended key usage (default client authentication).
    pub usage: Usage,
    /// Extra subject alternative names, each an IP address if it parses as
    /// one, else a DNS name (for hub certificates: the names clients dial).
    pub sans: Vec<String>,
}

impl Default for IssueOptions {
    fn default() -> Self {
        IssueOptions {
            key_type: KeyType::default(),
            not_before: None,
            not_after: None,
            days: 365,
            usage: Usage::default(),
            sans: Vec::new(),
        }
    }
}

/// What [`Pki::reissue`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reissued {
    /// The identity directory, holding the new `cert.pem` and `key.pem`.
    pub dir: PathBuf,
    /// The certificate it replaced, if there was one: its serial (`None`
    /// if it could not be read) and where it is kept.
    pub replaced: Option<(Option<Serial>, PathBuf)>,
}

impl Pki {
    /// Issue `principal` a fresh key and certificate, and write its identity
    /// directory (`agencies/<CODE>/`, `operators/<NAME>/`, `auditors/<NAME>/`,
    /// `hubs/<NAME>/`, or `hub/` for this PKI's own hub), holding
    /// `cert.pem`, `key.pem` (0600) and `ca.pem`; a hub's also holds its
    /// receipt key pair (`receipts.key`, `receipts.pub`), so that `trucd`
    /// runs with it, and its witness key pair (`witness.key`,
    /// `witness.pub`). Returns the directory.
    ///
    /// The certificate names the principal in exactly one SAN URI, has
    /// `display_name` (UTF-8) as subject CN and `Truc` as subject O. A
    /// principal that already has an identity directory is refused
    /// ([`PkiError::IdentityExists`]): replacing its key is
    /// [`Pki::reissue`]'s job, on purpose.
    pub fn issue(&self, principal: &Principal, display_name: &str, opts: &IssueOptions) -> Result<PathBuf, PkiError> {
        let dir = self.identity_dir(principal)?;
        let cert = dir.join("cert.pem");
        if cert.exists() {
            return Err(PkiError::IdentityExists {
                principal: principal.uri().to_string(),
                dir,
                serial: serial_of(&cert).map_or_else(|| "unknown".into(), |s| s.to_string()),
            });
        }
        Ok(self.reissue(principal, display_name, opts)?.dir)
    }

    /// Issue `principal` a new key and certificate even if it has an
    /// identity already (a rotation, or a key thought compromised).
    ///
    /// The old `cert.pem` is kept beside the new one as
    /// `cert.pem.old-<serial>` (hex, as in `issued.tsv`): the old certificate
    /// is not revoked, so the system that holds it keeps working until the
    /// new identity is installed there; then revoke the old serial
    /// (`truc pki revoke --serial`). The old key is not kept.
    pub fn reissue(
        &self,
        principal: &Principal,
        display_name: &str,
        opts: &IssueOptions,
    ) -> Result<Reissued, PkiError> {
        let dir = self.identity_dir(principal)?;
        let mut opts = opts.clone();
        if matches!(principal, Principal::Hub(_)) {
            // Rotating a hub keeps the names clients and peers already dial.
            opts.sans.extend(names_in(&dir.join("cert.pem")));
        }
        let cert = dir.join("cert.pem");
        let replaced = if cert.exists() {
            let serial = serial_of(&cert);
            let kept = dir.join(match serial {
                Some(s) => format!("cert.pem.old-{s}"),
                None => format!("cert.pem.old-unknown-{}", unix(SystemTime::now())),
            });
            std::fs::copy(&cert, &kept).map_err(|e| PkiError::io(&kept, e))?;
            Some((serial, kept))
        } else {
            None
        };
        self.issue_to(principal, display_name, &opts, &dir, None)?;
        Ok(Reissued { dir, replaced })
    }

    /// Issue `principal` a certificate and write it, its key and the CA to
    /// `dir`: for `key` if given (a renewal keeping the key; key.pem is
    /// left as it is), else for a new key of `opts.key_type`.
    pub(crate) fn issue_to(
        &self,
        principal: &Principal,
        display_name: &str,
        opts: &IssueOptions,
        dir: &Path,
        key: Option<rcgen::KeyPair>,
    ) -> Result<Serial, PkiError> {
        let (_, name) = location(principal)?;
        let (not_before, not_after) = validity(opts)?;
        let is_hub = matches!(principal, Principal::Hub(_));

        let mut params = CertificateParams::default();
        let cn = if display_name.trim().is_empty() {
            name.as_str()
        } else {
            display_name
        };
        params.distinguished_name.push(DnType::CommonName, cn);
        params.distinguished_name.push(DnType::OrganizationName, "Truc");
        params.is_ca = IsCa::ExplicitNoCa;
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        params.use_authority_key_identifier_extension = true;
        params.subject_alt_names = sans(principal, is_hub, &opts.sans)?;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if matches!(principal, Principal::Agency(_)) {
            // Agencies sign official documents with this key.
            params.key_usages.push(KeyUsagePurpose::ContentCommitment);
        }
        params.extended_key_usages = match (opts.usage, is_hub) {
            (Usage::ServerOnly, _) => vec![ExtendedKeyUsagePurpose::ServerAuth],
            (Usage::Client, true) => {
                vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth]
            }
            (Usage::Client, false) => vec![ExtendedKeyUsagePurpose::ClientAuth],
        };
        let ledger = Ledger::new(&self.dir);
        let serial = ledger.take_serial()?;
        params.serial_number = Some(serial.0.into());

        let kept = key.is_some();
        let key = match key {
            Some(k) => k,
            None => opts.key_type.generate()?,
        };
        let cert = params.signed_by(&key, &self.issuer)?;

        // Invariant 1: the certificate must name exactly this principal.
        let named = Principal::from_cert_der(cert.der())?;
        if &named != principal {
            return Err(PkiError::InvalidName {
                name: principal.uri().to_string(),
                reason: format!("the certificate would name {} instead", named.uri()),
            });
        }

        files::private_dir(dir)?;
        if !kept {
            files::write_atomic(&dir.join("key.pem"), key.serialize_pem().as_bytes(), PRIVATE)?;
        }
        files::write_atomic(&dir.join("cert.pem"), cert.pem().as_bytes(), PUBLIC)?;
        files::write_atomic(&dir.join("ca.pem"), self.ca_pem.as_bytes(), PUBLIC)?;
        if is_hub {
            // A hub identity is one trucd can run with: it signs its
            // receipt log (and checkpoints) with a key of its own.
            crate::ca::write_receipt_key(dir)?;
            // And cosigns its peers' checkpoints with another.
            crate::ca::write_witness_key(dir)?;
        }
        ledger.record_issued(&IssuedCert {
            serial,
            principal_uri: principal.uri().to_string(),
            not_after: unix(not_after),
            path: dir.strip_prefix(&self.dir).unwrap_or(dir).to_path_buf(),
            revoked_at: None,
        })?;
        Ok(serial)
    }
}

/// The subdirectory and directory name of `principal`'s identity.
///
/// The name is validated by `truc_core` (`[a-z0-9][a-z0-9._-]{0,63}` or an
/// agency code), so it is always a safe single path component.
pub(crate) fn location(principal: &Principal) -> Result<(&'static str, String), PkiError> {
    let kind = match principal {
        Principal::Agency(_) => "agencies",
        Principal::Operator(_) => "operators",
        Principal::Auditor(_) => "auditors",
        Principal::Hub(_) => "hubs",
    };
    let name = principal.name();
    let bad = |reason: String| PkiError::InvalidName {
        name: name.to_string(),
        reason,
    };
    match Principal::parse_uri(&principal.uri()) {
        Ok(p) if &p == principal => {}
        Ok(_) => return Err(bad("does not survive a round trip through its URI".into())),
        Err(e) => return Err(bad(e.to_string())),
    }
    if name.starts_with('.') || name.contains(['/', '\\']) {
        return Err(bad("is not a safe directory name".into()));
    }
    Ok((kind, name.to_string()))
}

/// The validity period `opts` asks for.
pub(crate) fn validity(opts: &IssueOptions) -> Result<(SystemTime, SystemTime), PkiError> {
    let not_before = opts.not_before.unwrap_or_else(|| SystemTime::now() - BACKDATE);
    let not_after = match opts.not_after {
        Some(t) => t,
        None => {
            if opts.days == 0 {
                return Err(PkiError::Validity("days must be at least 1".into()));
            }
            not_before
                .checked_add(Duration::from_secs(u64::from(opts.days) * 86_400))
                .ok_or_else(|| PkiError::Validity("too many days".into()))?
        }
    };
    if not_after <= not_before {
        return Err(PkiError::Validity("not_after must be later than not_before".into()));
    }
    Ok((not_before, not_after))
}

/// The subject alternative names: the principal's URI, then for hubs
/// `localhost`, `127.0.0.1` and `::1`, then `extra`, without duplicates.
pub(crate) fn sans(principal: &Principal, is_hub: bool, extra: &[String]) -> Result<Vec<SanType>, PkiError> {
    let uri = principal.uri().to_string();
    let invalid = |name: &str, reason: &str| PkiError::InvalidName {
        name: name.into(),
        reason: reason.into(),
    };
    let mut out = vec![SanType::URI(
        uri.as_str().try_into().map_err(|_| invalid(&uri, "not an ASCII URI"))?,
    )];
    let mut names: Vec<String> = Vec::new();
    if is_hub {
        names.extend(["localhost", "127.0.0.1", "::1"].map(String::from));
    }
    names.extend(extra.iter().map(|s| s.trim().to_string()));
    let mut seen = BTreeSet::new();
    for name in names {
        if !seen.insert(name.to_ascii_lowercase()) {
            continue;
        }
        if let Ok(ip) = name.parse::<IpAddr>() {
            out.push(SanType::IpAddress(ip));
        } else if is_dns_name(&name) {
            out.push(SanType::DnsName(
                name.as_str()
                    .try_into()
                    .map_err(|_| invalid(&name, "not an ASCII DNS name"))?,
            ));
        } else {
            return Err(invalid(&name, "not an IP address or a DNS name"));
        }
    }
    Ok(out)
}

/// A DNS name: dot-separated labels of letters, digits and hyphens, the
/// first label optionally `*`.
fn is_dns_name(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').enumerate().all(|(i, label)| {
            (i == 0 && label == "*" && name.len() > 2)
                || (!label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        })
}

/// The serial number of the certificate at `path`, if it can be read and
/// fits this CA's serials.
pub(crate) fn serial_of(path: &Path) -> Option<Serial> {
    let ders = files::read_cert_ders(path).ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(&ders[0]).ok()?;
    let bytes = cert.raw_serial();
    let bytes = &bytes[bytes.iter().take_while(|b| **b == 0).count()..];
    (bytes.len() <= 8).then(|| Serial(bytes.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b))))
}

/// The DNS names and IP addresses in the certificate at `path` (empty if
/// it cannot be read).
pub(crate) fn names_in(path: &Path) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok(ders) = files::read_cert_ders(path) else {
        return Vec::new();
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(&ders[0]) else {
        return Vec::new();
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some(d.to_string()),
            GeneralName::IPAddress(b) => match b.len() {
                4 => Some(IpAddr::from(<[u8; 4]>::try_from(*b).ok()?).to_string()),
                16 => Some(IpAddr::from(<[u8; 16]>::try_from(*b).ok()?).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names() {
        for ok in ["localhost", "hub.truc.gov.vn", "*.truc.gov.vn", "a-b.c1"] {
            assert!(is_dns_name(ok), "{ok}");
        }
        for bad in ["", "a..b", "-a.b", "a b", "urn:truc:x", "*", "a.*.b", "ví.vn"] {
            assert!(!is_dns_name(bad), "{bad}");
        }
    }

    #[test]
    fn validity_defaults_and_errors() {
        let (nb, na) = validity(&IssueOptions::default()).unwrap();
        assert_eq!(na.duration_since(nb).unwrap(), Duration::from_secs(365 * 86_400));
        let now = SystemTime::now();
        let opts = IssueOptions {
            not_before: Some(now),
            not_after: Some(now),
            ..Default::default()
        };
        assert!(validity(&opts).is_err());
        let opts = IssueOptions {
            days: 0,
            ..Default::default()
        };
        assert!(validity(&opts).is_err());
    }

    #[test]
    fn names_are_safe_directory_names() {
        for bad in ["", "..", ".hidden", "a/b", "a\\b", "a\nb", "Upper"] {
            assert!(location(&Principal::Operator(bad.into())).is_err(), "{bad:?}");
        }
        assert_eq!(location(&Principal::Auditor("kiem-toan".into())).unwrap().0, "auditors");
    }
}
