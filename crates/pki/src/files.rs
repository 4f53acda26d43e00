//! Files on disk: private directories, atomic writes with the right modes,
//! and PEM files read back as DER.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};

use crate::PkiError;

/// Mode of files holding private keys.
pub(crate) const PRIVATE: u32 = 0o600;
/// Mode of files anyone may read (certificates, CRLs, the ledger).
pub(crate) const PUBLIC: u32 = 0o644;

/// Refuse the private key file at `path` if its group or others may read
/// or write it (`mode & 0o077 != 0`): the error names the file and the
/// `chmod 600` to run. `truc` and `trucd` check every key before they use
/// it.
///
/// One arrangement is allowed, as PostgreSQL allows it for its TLS key: a
/// file owned by root that its group may read (0640, 0440) and others may
/// not, read by a process that is not root. That is how root hands a key
/// to a service account without giving it the file: a systemd unit's
/// group, or a Kubernetes Secret mounted with `fsGroup` (whose files the
/// kubelet makes 0440, owned by root).
///
/// A key this process may not read at all (owned by another user, mode
/// 0600: the container running as 65532 with keys mounted as root's) is
/// refused naming the owner, this process's uid and the `chown` to run.
///
/// A file that cannot be examined is left to the read that follows, which
/// reports it.
pub fn check_private_key_file(path: impl AsRef<Path>) -> Result<(), PkiError> {
    let path = path.as_ref();
    let Ok(meta) = fs::metadata(path) else {
        return Ok(());
    };
    let mode = meta.permissions().mode() & 0o7777;
    if let Err(e) = File::open(path) {
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            return Err(PkiError::KeyOwner {
                path: path.to_path_buf(),
                owner: meta.uid(),
                mode,
                uid: rustix::process::geteuid().as_raw(),
                gid: rustix::process::getegid().as_raw(),
            });
        }
    }
    let handed_by_root = meta.uid() == 0 && !rustix::process::geteuid().is_root() && mode & 0o037 == 0;
    if mode & 0o077 == 0 || handed_by_root {
        return Ok(());
    }
    Err(PkiError::KeyPermissions {
        path: path.to_path_buf(),
        mode,
    })
}

/// Create `dir` (and its parents) if needed and make it `0700`.
pub(crate) fn private_dir(dir: &Path) -> Result<(), PkiError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| PkiError::io(dir, e))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|e| PkiError::io(dir, e))
}

/// Replace `path` with `bytes`, atomically: a reader sees the old file or the
/// new one, never a torn one (the hub may reload `crl.pem` at any moment).
/// The new file has `mode` from its creation on, so a key is never readable
/// by others, not even briefly. The file and its directory are synced
/// before it returns (the hub's witness state is written so too).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PkiError> {
    let tmp = temp_path(path);
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(PkiError::io(&tmp, e)),
    }
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(PkiError::io(&tmp, e));
    }
    fs::rename(&tmp, path).map_err(|e| PkiError::io(path, e))?;
    sync_parent(path)
}

/// Append one line to `path`, creating it (`0644`) if needed, and flush it.
pub(crate) fn append_line(path: &Path, line: &str) -> Result<(), PkiError> {
    let result = (|| {
        let mut f = OpenOptions::new().append(true).create(true).mode(PUBLIC).open(path)?;
        f.write_all(format!("{line}\n").as_bytes())?;
        f.sync_all()
    })();
    result.map_err(|e| PkiError::io(path, e))
}

/// Read `path` as UTF-8 text.
pub(crate) fn read_text(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(|e| PkiError::io(path, e))
}

/// Read `path` as text, or `None` if it does not exist.
pub(crate) fn read_text_if_exists(path: &Path) -> Result<Option<String>, PkiError> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PkiError::io(path, e)),
    }
}

/// Read every `CERTIFICATE` block of the PEM file at `path`, as DER.
///
/// The hub uses this for its trust anchors (`ca.pem`). A file without any
/// certificate is an error, so a misconfigured path never means "trust
/// nobody" silently.
pub fn read_cert_ders(path: impl AsRef<Path>) -> Result<Vec<Vec<u8>>, PkiError> {
    let path = path.as_ref();
    let iter = CertificateDer::pem_file_iter(path).map_err(|e| pem_error(path, e))?;
    let mut out = Vec::new();
    for cert in iter {
        out.push(cert.map_err(|e| pem_error(path, e))?.to_vec());
    }
    if out.is_empty() {
        return Err(PkiError::bad_file(path, "no CERTIFICATE block"));
    }
    Ok(out)
}

/// Read every `X509 CRL` block of the PEM file at `path`, as DER.
///
/// The hub uses this to load `crl.pem`. A file without any CRL is an error
/// (`Pki::init` always writes one, even when nothing is revoked), so a
/// truncated or wrong file never disables revocation silently.
pub fn read_crl_ders(path: impl AsRef<Path>) -> Result<Vec<Vec<u8>>, PkiError> {
    let path = path.as_ref();
    let iter = CertificateRevocationListDer::pem_file_iter(path).map_err(|e| pem_error(path, e))?;
    let mut out = Vec::new();
    for crl in iter {
        out.push(crl.map_err(|e| pem_error(path, e))?.to_vec());
    }
    if out.is_empty() {
        return Err(PkiError::bad_file(path, "no X509 CRL block"));
    }
    Ok(out)
}

/// A PEM reading error on `path`, keeping the OS error when there is one.
fn pem_error(path: &Path, e: rustls_pki_types::pem::Error) -> PkiError {
    match e {
        rustls_pki_types::pem::Error::Io(io) => PkiError::io(path, io),
        other => PkiError::bad_file(path, format!("not a valid PEM file ({other})")),
    }
}

/// `dir/.name.tmp` next to `path`.
fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

/// Make a rename in `path`'s directory durable.
fn sync_parent(path: &Path) -> Result<(), PkiError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(|e| PkiError::io(parent, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_sets_mode_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key.pem");
        write_atomic(&p, b"one", PRIVATE).unwrap();
        write_atomic(&p, b"two", PRIVATE).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(!dir.path().join(".key.pem.tmp").exists());
    }

    #[test]
    fn keys_readable_by_others_are_refused_with_the_chmod_to_run() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key.pem");
        write_atomic(&p, b"k", PRIVATE).unwrap();
        check_private_key_file(&p).unwrap();
        for (mode, who) in [
            (0o644, "others"),
            (0o640, "its group"),
            (0o666, "others"),
            (0o604, "others"),
        ] {
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
            let err = check_private_key_file(&p).unwrap_err().to_string();
            let want = format!("run `chmod 600 {}`", p.display());
            assert!(err.contains(&want) && err.contains(who), "{mode:o}: {err}");
            assert!(err.contains(&format!("mode {mode:04o}")), "{err}");
        }
        fs::set_permissions(&p, fs::Permissions::from_mode(0o400)).unwrap();
        check_private_key_file(&p).unwrap();
        // Missing: left to the read, which names it.
        check_private_key_file(dir.path().join("missing.pem")).unwrap();
    }

    #[test]
    fn pem_readers_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let err = read_cert_ders(&missing).unwrap_err().to_string();
        assert!(err.contains("nope.pem"), "{err}");
        let empty = dir.path().join("empty.pem");
        fs::write(&empty, "").unwrap();
        let err = read_crl_ders(&empty).unwrap_err().to_string();
        assert!(err.contains("empty.pem") && err.contains("no X509 CRL"), "{err}");
    }
}
