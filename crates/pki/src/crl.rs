//! Revocation and the CRL.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber};
use truc_core::Principal;

use crate::ca::unix;
use crate::files::{self, PUBLIC};
use crate::ledger::{Ledger, Serial};
use crate::{Pki, PkiError};

/// How long a CRL is current (`next_update - this_update`).
pub const CRL_VALIDITY: Duration = Duration::from_secs(7 * 86_400);

impl Pki {
    /// Revoke every certificate issued to `principal` that is not revoked
    /// yet, and rewrite `crl.pem`. Returns the serials revoked by this call
    /// (empty if all were already revoked).
    pub fn revoke_principal(&self, principal: &Principal) -> Result<Vec<Serial>, PkiError> {
        let uri = principal.uri().to_string();
        let issued = self.issued()?;
        let mine: Vec<_> = issued.iter().filter(|c| c.principal_uri == uri).collect();
        if mine.is_empty() {
            return Err(PkiError::NotIssued(uri));
        }
        let ledger = Ledger::new(&self.dir);
        let now = unix(SystemTime::now());
        let mut revoked = Vec::new();
        for cert in mine.into_iter().filter(|c| c.revoked_at.is_none()) {
            ledger.record_revoked(cert.serial, now, &uri)?;
            revoked.push(cert.serial);
        }
        self.write_crl()?;
        Ok(revoked)
    }

    /// Revoke the certificate with `serial` and rewrite `crl.pem`. Returns
    /// `[serial]`, or nothing if it was already revoked. Refuses serials this
    /// CA never issued to a principal (including the CA's own).
    pub fn revoke_serial(&self, serial: Serial) -> Result<Vec<Serial>, PkiError> {
        let issued = self.issued()?;
        let cert = issued
            .iter()
            .find(|c| c.serial == serial)
            .ok_or_else(|| PkiError::Serial {
                serial: serial.to_string(),
                reason: format!("not found in {}", Ledger::new(&self.dir).issued_path().display()),
            })?;
        let mut revoked = Vec::new();
        if cert.revoked_at.is_none() {
            let now = unix(SystemTime::now());
            Ledger::new(&self.dir).record_revoked(serial, now, &cert.principal_uri)?;
            revoked.push(serial);
        }
        self.write_crl()?;
        Ok(revoked)
    }

    /// Sign a fresh CRL listing every revoked serial (this_update now,
    /// next_update in [`CRL_VALIDITY`]) and write it to `crl.pem`,
    /// atomically. Run it again before next_update to keep the CRL current.
    pub fn write_crl(&self) -> Result<PathBuf, PkiError> {
        let ledger = Ledger::new(&self.dir);
        let revoked_certs = ledger
            .revocations()?
            .into_iter()
            .map(|r| RevokedCertParams {
                serial_number: SerialNumber::from(r.serial.0),
                revocation_time: from_unix(r.at).into(),
                reason_code: None,
                invalidity_date: None,
            })
            .collect();
        let now = SystemTime::now();
        let params = CertificateRevocationListParams {
            this_update: now.into(),
            next_update: (now + CRL_VALIDITY).into(),
            crl_number: SerialNumber::from(ledger.take_crl_number()?),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.issuer)?;
        let path = self.crl_path();
        files::write_atomic(&path, crl.pem()?.as_bytes(), PUBLIC)?;
        Ok(path)
    }
}

/// The time `secs` Unix seconds.
fn from_unix(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}
