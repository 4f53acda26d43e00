//! A certificate's life after it is issued: what it says (serial, names,
//! validity), renewing it (same key or a new one), listing what was issued,
//! and certificates for servers that are not Truc principals (a NATS
//! server, a reverse proxy).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose};
use truc_core::Principal;

use crate::ca::unix;
use crate::files::{self, PRIVATE, PUBLIC};
use crate::issue::{names_in, serial_of, validity};
use crate::ledger::{IssuedCert, Ledger};
use crate::{Identity, IssueOptions, Pki, PkiError, Reissued, Serial};

/// What one certificate says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Its serial number.
    pub serial: Serial,
    /// The subject's common name.
    pub subject: String,
    /// Start of validity, Unix seconds.
    pub not_before: i64,
    /// End of validity, Unix seconds.
    pub not_after: i64,
    /// DNS names and IP addresses in its SAN.
    pub names: Vec<String>,
}

impl CertInfo {
    /// Read a certificate's DER.
    pub fn from_der(der: &[u8]) -> Result<CertInfo, PkiError> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| PkiError::Key(format!("not a valid certificate ({e})")))?;
        let bytes = cert.raw_serial();
        let bytes = &bytes[bytes.iter().take_while(|b| **b == 0).count()..];
        let serial = Serial(bytes.iter().take(8).fold(0u64, |n, b| (n << 8) | u64::from(*b)));
        let subject = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or_default()
            .to_string();
        let v = cert.validity();
        Ok(CertInfo {
            serial,
            subject,
            not_before: v.not_before.timestamp(),
            not_after: v.not_after.timestamp(),
            names: Vec::new(),
        })
    }

    /// Read the first certificate of the PEM file at `path`.
    pub fn from_pem_file(path: &Path) -> Result<CertInfo, PkiError> {
        let ders = files::read_cert_ders(path)?;
        let der = ders
            .first()
            .ok_or_else(|| PkiError::bad_file(path, "no CERTIFICATE block"))?;
        let mut info = Self::from_der(der)?;
        info.names = names_in(path);
        Ok(info)
    }
}

impl Identity {
    /// What this identity's certificate says (serial, validity, names).
    pub fn cert_info(&self) -> Result<CertInfo, PkiError> {
        CertInfo::from_der(&self.cert_der)
    }
}

/// What `truc pki list` shows of one issued certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The ledger's line.
    pub issued: IssuedCert,
    /// `agency`, `operator`, `auditor`, `hub` or `server`.
    pub role: String,
    /// The principal's name or code (a server's name).
    pub name: String,
    /// The subject's common name, if the certificate is still on disk
    /// (`cert.pem`, or `cert.pem.old-<serial>` after a renewal).
    pub subject: Option<String>,
    /// Whether this is the certificate in its identity directory now.
    pub current: bool,
}

/// The ledger's "principal" for a server certificate.
fn server_uri(name: &str) -> String {
    format!("server:{name}")
}

impl Pki {
    /// Every certificate issued, oldest first, with its role, name and
    /// subject.
    pub fn list(&self) -> Result<Vec<Listed>, PkiError> {
        let mut out = Vec::new();
        for c in self.issued()? {
            let (role, name) = match Principal::parse_uri(&c.principal_uri) {
                Ok(p) => (p.role().to_string(), p.name().to_string()),
                Err(_) => match c.principal_uri.split_once(':') {
                    Some((r, n)) => (r.to_string(), n.to_string()),
                    None => ("?".into(), c.principal_uri.clone()),
                },
            };
            let dir = self.dir.join(&c.path);
            let now = dir.join("cert.pem");
            let current = serial_of(&now) == Some(c.serial);
            let file = if current {
                now
            } else {
                dir.join(format!("cert.pem.old-{}", c.serial))
            };
            let subject = CertInfo::from_pem_file(&file).ok().map(|i| i.subject);
            out.push(Listed {
                issued: c,
                role,
                name,
                subject,
                current,
            });
        }
        Ok(out)
    }

    /// Renew `principal`'s certificate: the same subject, names (plus
    /// `opts.sans`) and key type, `opts.days` of validity from now; for the
    /// same key unless `new_key`. The old certificate is kept as
    /// `cert.pem.old-<serial>` and not revoked (its serial is in the answer:
    /// revoke it once the new one is installed).
    pub fn renew(&self, principal: &Principal, opts: &IssueOptions, new_key: bool) -> Result<Reissued, PkiError> {
        let dir = self.identity_dir(principal)?;
        let cert = dir.join("cert.pem");
        if !cert.exists() {
            return Err(PkiError::NotIssued(principal.uri().to_string()));
        }
        let old = Identity::load(&dir)?;
        let info = old.cert_info()?;
        let key_type = old.signer()?.key_type();
        let mut opts = opts.clone();
        opts.key_type = key_type;
        opts.sans.extend(names_in(&cert));
        let key = if new_key {
            None
        } else {
            Some(key_type.load(&old.key_pkcs8_der)?)
        };
        let kept = dir.join(format!("cert.pem.old-{}", info.serial));
        std::fs::copy(&cert, &kept).map_err(|e| PkiError::io(&kept, e))?;
        self.issue_to(principal, &info.subject, &opts, &dir, key)?;
        Ok(Reissued {
            dir,
            replaced: Some((Some(info.serial), kept)),
        })
    }

    /// Issue a TLS server certificate for `name` (a NATS server, a reverse
    /// proxy) for the DNS names and IP addresses in `opts.sans` (at least
    /// one), into `servers/<name>/` (`cert.pem`, `key.pem`, `ca.pem`). It
    /// names no Truc principal, so the hub refuses it as a client; it
    /// serves TLS and authenticates cluster routes (server and client
    /// usage). With `force`, an existing one is replaced, the old kept as
    /// `cert.pem.old-<serial>`. Revoke it by serial.
    pub fn issue_server(&self, name: &str, opts: &IssueOptions, force: bool) -> Result<Reissued, PkiError> {
        // The same rule as operator names: one safe path component.
        let check = Principal::parse_uri(&format!("urn:truc:operator:{name}"));
        if check.is_err() {
            return Err(PkiError::InvalidName {
                name: name.to_string(),
                reason: "a server name is lower-case letters, digits, '.', '_' and '-'".into(),
            });
        }
        if opts.sans.is_empty() {
            return Err(PkiError::InvalidName {
                name: name.to_string(),
                reason: "a server certificate needs at least one --san (the names clients dial)".into(),
            });
        }
        let dir = self.dir.join("servers").join(name);
        let cert_path = dir.join("cert.pem");
        let replaced = if cert_path.exists() {
            let serial = serial_of(&cert_path);
            if !force {
                return Err(PkiError::IdentityExists {
                    principal: server_uri(name),
                    dir,
                    serial: serial.map_or_else(|| "unknown".into(), |s| s.to_string()),
                });
            }
            let kept = dir.join(match serial {
                Some(s) => format!("cert.pem.old-{s}"),
                None => format!("cert.pem.old-unknown-{}", unix(SystemTime::now())),
            });
            std::fs::copy(&cert_path, &kept).map_err(|e| PkiError::io(&kept, e))?;
            Some((serial, kept))
        } else {
            None
        };
        let (not_before, not_after) = validity(opts)?;
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.distinguished_name.push(DnType::OrganizationName, "Truc");
        params.is_ca = IsCa::ExplicitNoCa;
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        params.use_authority_key_identifier_extension = true;
        // The names only: no URI, so it is nobody on the axis.
        params.subject_alt_names = crate::issue::sans(&Principal::Hub(name.to_string()), false, &opts.sans)?
            .into_iter()
            .skip(1)
            .collect();
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let ledger = Ledger::new(&self.dir);
        let serial = ledger.take_serial()?;
        params.serial_number = Some(serial.0.into());
        let key = opts.key_type.generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        files::private_dir(&dir)?;
        files::write_atomic(&dir.join("key.pem"), key.serialize_pem().as_bytes(), PRIVATE)?;
        files::write_atomic(&cert_path, cert.pem().as_bytes(), PUBLIC)?;
        files::write_atomic(&dir.join("ca.pem"), self.ca_pem.as_bytes(), PUBLIC)?;
        ledger.record_issued(&IssuedCert {
            serial,
            principal_uri: server_uri(name),
            not_after: unix(not_after),
            path: PathBuf::from("servers").join(name),
            revoked_at: None,
        })?;
        Ok(Reissued { dir, replaced })
    }
}
