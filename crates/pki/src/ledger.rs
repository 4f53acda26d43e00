//! The CA's books: the next serial number, every certificate issued, every
//! certificate revoked, and the CRL number.
//!
//! Plain text so an operator can read them: `serial` and `crlnumber` hold one
//! hexadecimal number; `issued.tsv` has one line per certificate (serial hex,
//! principal URI, not_after in Unix seconds, identity directory relative to
//! the PKI directory); `revoked.tsv` has one line per revocation (serial hex,
//! revocation time in Unix seconds, principal URI).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::files::{self, PUBLIC};
use crate::PkiError;

/// A certificate serial number (this CA counts up from 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Serial(pub u64);

impl fmt::Display for Serial {
    /// Lower-case hexadecimal, as in `issued.tsv` and `openssl x509 -serial`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}", self.0)
    }
}

impl FromStr for Serial {
    type Err = PkiError;

    /// Hexadecimal, with or without `0x` and `:` separators (`1f`, `0x1F`, `00:1f`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let t = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")).unwrap_or(t);
        let digits: String = t.chars().filter(|c| *c != ':').collect();
        u64::from_str_radix(&digits, 16)
            .ok()
            .filter(|_| !digits.is_empty() && !digits.starts_with(['+', '-']))
            .map(Serial)
            .ok_or_else(|| PkiError::Serial {
                serial: s.to_string(),
                reason: "not a hexadecimal serial number".into(),
            })
    }
}

impl From<u64> for Serial {
    fn from(n: u64) -> Self {
        Serial(n)
    }
}

/// One line of `issued.tsv`, with its revocation if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCert {
    /// The certificate's serial number.
    pub serial: Serial,
    /// The principal it names, as a URI (`urn:truc:agency:G09.01`).
    pub principal_uri: String,
    /// End of validity, Unix seconds.
    pub not_after: i64,
    /// The identity directory, relative to the PKI directory.
    pub path: PathBuf,
    /// When it was revoked (Unix seconds), if it was.
    pub revoked_at: Option<i64>,
}

/// One line of `revoked.tsv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Revocation {
    pub(crate) serial: Serial,
    pub(crate) at: i64,
}

/// The ledger files of one PKI directory.
pub(crate) struct Ledger<'a> {
    dir: &'a Path,
}

impl<'a> Ledger<'a> {
    pub(crate) fn new(dir: &'a Path) -> Self {
        Ledger { dir }
    }

    pub(crate) fn serial_path(&self) -> PathBuf {
        self.dir.join("serial")
    }

    pub(crate) fn issued_path(&self) -> PathBuf {
        self.dir.join("issued.tsv")
    }

    pub(crate) fn revoked_path(&self) -> PathBuf {
        self.dir.join("revoked.tsv")
    }

    pub(crate) fn crl_number_path(&self) -> PathBuf {
        self.dir.join("crlnumber")
    }

    /// Start the books: the first serial is 1, the first CRL number 1.
    pub(crate) fn create(&self) -> Result<(), PkiError> {
        files::write_atomic(&self.serial_path(), b"01\n", PUBLIC)?;
        files::write_atomic(&self.crl_number_path(), b"01\n", PUBLIC)?;
        files::write_atomic(&self.issued_path(), b"", PUBLIC)?;
        files::write_atomic(&self.revoked_path(), b"", PUBLIC)
    }

    /// Take the next serial number and advance the counter.
    pub(crate) fn take_serial(&self) -> Result<Serial, PkiError> {
        self.take_counter(&self.serial_path())
    }

    /// Take the next CRL number and advance the counter.
    pub(crate) fn take_crl_number(&self) -> Result<u64, PkiError> {
        Ok(self.take_counter(&self.crl_number_path())?.0)
    }

    fn take_counter(&self, path: &Path) -> Result<Serial, PkiError> {
        let text = files::read_text(path)?;
        let n: Serial = text
            .trim()
            .parse()
            .map_err(|_| PkiError::bad_file(path, "expected one hexadecimal number"))?;
        let next =
            n.0.checked_add(1)
                .ok_or_else(|| PkiError::bad_file(path, "counter overflow"))?;
        files::write_atomic(path, format!("{}\n", Serial(next)).as_bytes(), PUBLIC)?;
        Ok(n)
    }

    /// Append a line to `issued.tsv`.
    pub(crate) fn record_issued(&self, cert: &IssuedCert) -> Result<(), PkiError> {
        let line = format!(
            "{}\t{}\t{}\t{}",
            cert.serial,
            cert.principal_uri,
            cert.not_after,
            cert.path.display()
        );
        files::append_line(&self.issued_path(), &line)
    }

    /// Append a line to `revoked.tsv`.
    pub(crate) fn record_revoked(&self, serial: Serial, at: i64, uri: &str) -> Result<(), PkiError> {
        files::append_line(&self.revoked_path(), &format!("{serial}\t{at}\t{uri}"))
    }

    /// Every revocation, in order.
    pub(crate) fn revocations(&self) -> Result<Vec<Revocation>, PkiError> {
        let path = self.revoked_path();
        let text = files::read_text_if_exists(&path)?.unwrap_or_default();
        let mut out = Vec::new();
        for (i, fields) in rows(&text) {
            let bad = || PkiError::bad_file(&path, format!("line {}: expected serial, time, principal", i + 1));
            if fields.len() < 2 {
                return Err(bad());
            }
            let serial = fields[0].parse().map_err(|_| bad())?;
            let at = fields[1].parse().map_err(|_| bad())?;
            out.push(Revocation { serial, at });
        }
        Ok(out)
    }

    /// Every certificate issued, in order, with its revocation.
    pub(crate) fn issued(&self) -> Result<Vec<IssuedCert>, PkiError> {
        let path = self.issued_path();
        let revoked = self.revocations()?;
        let text = files::read_text_if_exists(&path)?.unwrap_or_default();
        let mut out = Vec::new();
        for (i, fields) in rows(&text) {
            let bad = || {
                PkiError::bad_file(
                    &path,
                    format!("line {}: expected serial, principal, not_after, path", i + 1),
                )
            };
            if fields.len() != 4 {
                return Err(bad());
            }
            let serial: Serial = fields[0].parse().map_err(|_| bad())?;
            out.push(IssuedCert {
                serial,
                principal_uri: fields[1].to_string(),
                not_after: fields[2].parse().map_err(|_| bad())?,
                path: PathBuf::from(fields[3]),
                revoked_at: revoked.iter().find(|r| r.serial == serial).map(|r| r.at),
            });
        }
        Ok(out)
    }
}

/// Non-empty lines of a TSV file, split on tabs, with their line index.
fn rows(text: &str) -> impl Iterator<Item = (usize, Vec<&str>)> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i, l.split('\t').collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_text() {
        assert_eq!(Serial(31).to_string(), "1f");
        assert_eq!(Serial(1).to_string(), "01");
        for s in ["1f", "0x1F", "00:1f"] {
            assert_eq!(s.parse::<Serial>().unwrap(), Serial(31));
        }
        for s in ["", "zz", "-1", "+1", "0x"] {
            assert!(s.parse::<Serial>().is_err(), "{s:?}");
        }
    }

    #[test]
    fn books_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let l = Ledger::new(dir.path());
        l.create().unwrap();
        assert_eq!(l.take_serial().unwrap(), Serial(1));
        assert_eq!(l.take_serial().unwrap(), Serial(2));
        assert_eq!(l.take_crl_number().unwrap(), 1);
        let cert = IssuedCert {
            serial: Serial(2),
            principal_uri: "urn:truc:operator:ops".into(),
            not_after: 1_900_000_000,
            path: "operators/ops".into(),
            revoked_at: None,
        };
        l.record_issued(&cert).unwrap();
        assert_eq!(l.issued().unwrap(), vec![cert.clone()]);
        l.record_revoked(Serial(2), 1_800_000_000, "urn:truc:operator:ops")
            .unwrap();
        assert_eq!(l.issued().unwrap()[0].revoked_at, Some(1_800_000_000));
        std::fs::write(l.issued_path(), "garbage\n").unwrap();
        let err = l.issued().unwrap_err().to_string();
        assert!(err.contains("issued.tsv: line 1"), "{err}");
    }
}
