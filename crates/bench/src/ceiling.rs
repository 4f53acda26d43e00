//! The ceiling: how many documents per second signature verification alone
//! allows on this machine. Documents signed as the benchmark signs them
//! (the same agency, key type, payload size and recipients) go through the
//! hub's own check — `verify_document` (header, signer = sender, the
//! signer chain, remembered after its first check as in a running hub, the
//! signature, the payload's size and SHA-256) and `check_signed_at` — in a
//! timed loop on every core at once, as the hub runs it on one blocking
//! thread per core. Nothing else runs meanwhile: it is measured before the
//! hub is loaded.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use anyhow::Context;
use rustls_pki_types::UnixTime;
use serde::Serialize;
use truc_core::document::{check_signed_at, verify_document, SigningTrust};
use truc_core::AgencyCode;
use truc_load as load;
use truc_pki::Identity;

/// Distinct documents the loop cycles through.
const POOL: u64 = 64;

/// What verification alone allows.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Ceiling {
    /// The signers' key type (`ecdsa-p256`, `ed25519`, `rsa-2048`).
    pub(crate) key_type: &'static str,
    /// Payload bytes per document.
    pub(crate) size: usize,
    /// Threads verifying at once: one per core.
    pub(crate) threads: usize,
    /// Documents verified.
    pub(crate) verified: u64,
    /// Documents per second, all threads together.
    pub(crate) docs_per_second: f64,
}

/// Verify documents of `sender` (its identity in `pki`) to `to`, with
/// `size`-byte payloads, on every core for `duration`.
pub(crate) fn measure(
    pki: &Path,
    sender: &str,
    to: Vec<String>,
    size: usize,
    duration: Duration,
) -> anyhow::Result<Ceiling> {
    let identity = Identity::load(&load::agency_dir(pki, sender))?;
    let signer = identity.signer()?;
    let caller = AgencyCode::parse(sender)?;
    // The hub's signing trust: the axis CA and its CRL.
    let crl = pki.join("crl.pem");
    let crls = if crl.exists() {
        truc_pki::read_crl_ders(&crl)?
    } else {
        Vec::new()
    };
    let trust = SigningTrust::new(std::slice::from_ref(&identity.ca_der), &crls)?;
    let nonce = load::nonce();
    let base = load::random_bytes(size.max(load::TAG_LEN), u64::from(nonce));
    let date = truc_core::document::date_for_document_id(truc_core::now_unix_ms());
    let docs = (0..POOL)
        .map(|n| {
            let mut header = load::bench_header(sender, &date, nonce, n, to.clone(), 0);
            let payload = load::payload(&base, &load::tag(nonce, 0, n));
            truc_client::sign_with(&signer, &identity, &mut header, payload)
        })
        .collect::<Result<Vec<_>, _>>()?;
    // The first check verifies the chain and remembers it, as the hub's
    // first document from this signer does.
    verify_document(&docs[0], Some(&caller), &trust, UnixTime::now(), true).context("verifying a bench document")?;

    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let stop = AtomicBool::new(false);
    let verified = AtomicU64::new(0);
    let start = Barrier::new(threads + 1);
    let elapsed = std::thread::scope(|scope| -> anyhow::Result<Duration> {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (docs, trust, caller, stop, verified, start) = (&docs, &trust, &caller, &stop, &verified, &start);
                scope.spawn(move || -> anyhow::Result<()> {
                    start.wait();
                    let mut n = 0u64;
                    let mut i = t;
                    while !stop.load(Ordering::Relaxed) {
                        let doc = &docs[i % docs.len()];
                        let checked = verify_document(doc, Some(caller), trust, UnixTime::now(), true)?;
                        check_signed_at(&checked.header, truc_core::now_unix_ms(), 300_000)?;
                        n += 1;
                        i += 1;
                    }
                    verified.fetch_add(n, Ordering::Relaxed);
                    Ok(())
                })
            })
            .collect();
        start.wait();
        let t0 = Instant::now();
        std::thread::sleep(duration);
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            w.join()
                .map_err(|_| anyhow::anyhow!("a verifying thread panicked"))?
                .context("verifying")?;
        }
        Ok(t0.elapsed())
    })?;
    let verified = verified.load(Ordering::Relaxed);
    Ok(Ceiling {
        key_type: signer.key_type().as_str(),
        size,
        threads,
        verified,
        docs_per_second: verified as f64 / elapsed.as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_counts_verified_documents() {
        let dir = tempfile::tempdir().unwrap();
        let pki = dir.path().join("pki");
        let ca = truc_pki::Pki::init(&pki, "t", &[]).unwrap();
        for code in ["B90.A001", "B90.A002"] {
            let p = truc_core::Principal::Agency(AgencyCode::parse(code).unwrap());
            ca.issue(&p, code, &truc_pki::IssueOptions::default()).unwrap();
        }
        let c = measure(
            &pki,
            "B90.A001",
            vec!["B90.A002".into()],
            4096,
            Duration::from_millis(200),
        )
        .unwrap();
        assert_eq!((c.key_type, c.size), ("ecdsa-p256", 4096));
        assert!(c.threads >= 1 && c.verified > 0 && c.docs_per_second > 0.0, "{c:?}");
        // The check is the hub's, CRL included: a revoked signer's
        // documents do not verify.
        let p = truc_core::Principal::Agency(AgencyCode::parse("B90.A001").unwrap());
        ca.revoke_principal(&p).unwrap();
        let e = measure(&pki, "B90.A001", vec!["B90.A002".into()], 64, Duration::from_millis(10)).unwrap_err();
        assert!(format!("{e:#}").contains("revoked"), "{e:#}");
    }
}
