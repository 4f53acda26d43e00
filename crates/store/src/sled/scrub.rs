//! The scrub: read everything the store keeps and check it against what
//! vouches for it, so that damage at rest is found (and quarantined) before
//! a recipient or an auditor trips over it.
//!
//! - **Payload files** (`payloads/<sha256>`): hashed whole, compared with
//!   their name.
//! - **Documents** (`D`): the body read back (the log's CRC-32 per record),
//!   decoded, its header's SHA-256 compared with the record's, the header's
//!   payload digest with the record's, and an inline payload's SHA-256 and
//!   size with the header's. A document whose payload file is damaged is
//!   damaged too. Quarantined documents are not read again.
//! - **The receipt log** (`R`, `T`): every receipt's leaf hash recomputed
//!   and compared with the node the log stored for it, every node its
//!   append created recomputed and compared, and the root at each signed
//!   tree head's size compared with that head's root, up to the newest head.
//!   Memory: O(log n) (the frontier of perfect subtrees), not O(n).
//!
//! Reads run on a blocking thread and see only durable state, like every
//! reader; the rate limit sleeps between items. Found damage is returned;
//! quarantining it is the writer's (`quarantine.rs`).

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use prost::Message;
use truc_core::merkle::{self, Hash};
use truc_proto::v1::{DocumentHeader, Receipt, SignedTreeHead, TreeHead};

use super::log::BodyFiles;
use super::reads;
use crate::keys::{self, tag};
use crate::machine::leaves;
use crate::records::DocumentRecord;
use crate::{DamageKind, ScrubFinding, ScrubOptions, ScrubReport, StoreError};

/// Most ids listed in `ScrubReport::awaiting_resend`.
const MAX_AWAITING_LISTED: usize = 1000;

/// Keeps reads under a rate and stops when asked.
struct Pace<'o> {
    started: Instant,
    bytes: u64,
    opts: &'o ScrubOptions,
}

impl Pace<'_> {
    /// `n` more bytes were read: sleep if ahead of the rate; fail if the
    /// scrub should stop.
    fn read(&mut self, n: u64) -> Result<(), StoreError> {
        self.bytes += n;
        if self.opts.stop.as_ref().is_some_and(|s| *s.borrow()) {
            return Err(StoreError::Closed);
        }
        let rate = self.opts.bytes_per_second;
        if rate > 0 {
            let due = Duration::from_secs_f64(self.bytes as f64 / rate as f64);
            let elapsed = self.started.elapsed();
            if due > elapsed {
                // In slices, so that a stop is noticed within a second.
                let mut left = due - elapsed;
                while !left.is_zero() {
                    let step = left.min(Duration::from_secs(1));
                    std::thread::sleep(step);
                    left -= step;
                    if self.opts.stop.as_ref().is_some_and(|s| *s.borrow()) {
                        return Err(StoreError::Closed);
                    }
                }
            }
        }
        Ok(())
    }
}

/// What a scan found, before anything is quarantined.
pub(super) struct Found {
    pub(super) report: ScrubReport,
    /// Damaged documents to quarantine: (hub id, what).
    pub(super) documents: Vec<(u64, String)>,
    /// Damaged payload files and the documents that carry them.
    pub(super) payloads: Vec<(Vec<u8>, String, Vec<u64>)>,
}

/// Check the store under `data_dir` (see the module docs). Blocking.
pub(super) fn scan(
    tree: &crate::sled::view::Tree,
    bodies: &BodyFiles,
    data_dir: &Path,
    opts: &ScrubOptions,
) -> Result<Found, StoreError> {
    let mut pace = Pace {
        started: Instant::now(),
        bytes: 0,
        opts,
    };
    let mut report = ScrubReport::default();
    let bad_payloads = payload_files(&data_dir.join("payloads"), &mut pace, &mut report)?;
    let (documents, carriers) = documents(tree, bodies, &bad_payloads, &mut pace, &mut report)?;
    log(tree, &mut pace, &mut report)?;
    let payloads = bad_payloads
        .into_iter()
        .map(|(sha, what)| {
            let docs = carriers.get(&sha).cloned().unwrap_or_default();
            (sha, what, docs)
        })
        .collect();
    Ok(Found {
        report,
        documents,
        payloads,
    })
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 {
        return None;
    }
    (0..32)
        .map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// Hash every payload file; returns the damaged ones (digest, what).
fn payload_files(
    dir: &Path,
    pace: &mut Pace<'_>,
    report: &mut ScrubReport,
) -> Result<HashMap<Vec<u8>, String>, StoreError> {
    let mut bad = HashMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(bad); // no large document yet
    };
    let mut names: Vec<(String, Vec<u8>)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            let sha = unhex(&name)?; // temporary files are named otherwise
            Some((name, sha))
        })
        .collect();
    names.sort();
    let mut buf = vec![0u8; 1 << 20];
    for (name, sha) in names {
        let path = dir.join(&name);
        let mut f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue, // collected meanwhile
            Err(e) => {
                bad.insert(sha, format!("payload file {name} cannot be read: {e}"));
                continue;
            }
        };
        let mut h = ring::digest::Context::new(&ring::digest::SHA256);
        let mut len = 0u64;
        let read = loop {
            match f.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    h.update(&buf[..n]);
                    len += n as u64;
                    pace.read(n as u64)?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        report.payload_files += 1;
        report.payload_bytes += len;
        match read {
            Err(e) => {
                bad.insert(sha, format!("payload file {name} cannot be read: {e}"));
            }
            Ok(()) if h.finish().as_ref() != sha.as_slice() => {
                bad.insert(
                    sha,
                    format!("payload file {name} ({len} bytes) does not match its SHA-256"),
                );
            }
            Ok(()) => {}
        }
    }
    for (sha, what) in &bad {
        report.damaged.push(ScrubFinding {
            kind: DamageKind::PayloadFile,
            hub_document_id: 0,
            from: String::new(),
            document_id: String::new(),
            payload_sha256: sha.clone(),
            receipt_index: 0,
            what: what.clone(),
            quarantined: false,
        });
    }
    Ok(bad)
}

/// What is wrong with document `rec`'s stored copy, if anything; counts
/// the bytes read.
fn check_document(
    tree: &crate::sled::view::Tree,
    bodies: &BodyFiles,
    rec: &DocumentRecord,
    pace: &mut Pace<'_>,
    report: &mut ScrubReport,
) -> Result<Option<String>, StoreError> {
    let doc = match reads::signed_document(tree, bodies, rec) {
        Ok(d) => d,
        Err(StoreError::DocumentDamaged { what, .. }) => return Ok(Some(what)),
        // A payload under `P` collected (stores from before the body log).
        Err(StoreError::Precondition(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let n = (doc.header.len() + doc.payload.len() + doc.signature.len()) as u64;
    report.body_bytes += n;
    pace.read(n)?;
    let sha256 = |b: &[u8]| ring::digest::digest(&ring::digest::SHA256, b);
    if sha256(&doc.header).as_ref() != rec.header_sha256.as_slice() {
        return Ok(Some(
            "its stored header differs from the header the hub accepted (SHA-256)".into(),
        ));
    }
    let Ok(header) = DocumentHeader::decode(doc.header.as_slice()) else {
        return Ok(Some("its stored header does not decode".into()));
    };
    if header.payload_sha256 != rec.payload_sha256 {
        return Ok(Some(
            "its signed header names another payload than the hub's record".into(),
        ));
    }
    if !rec.external_payload
        && (doc.payload.len() as u64 != header.payload_size
            || sha256(&doc.payload).as_ref() != header.payload_sha256.as_slice())
    {
        return Ok(Some(
            "its stored payload does not match the SHA-256 and size its signed header carries".into(),
        ));
    }
    Ok(None)
}

/// Damaged documents to quarantine, and the documents carrying each
/// damaged payload file.
type DocumentFindings = (Vec<(u64, String)>, HashMap<Vec<u8>, Vec<u64>>);

/// Check every document not quarantined already.
fn documents(
    tree: &crate::sled::view::Tree,
    bodies: &BodyFiles,
    bad_payloads: &HashMap<Vec<u8>, String>,
    pace: &mut Pace<'_>,
    report: &mut ScrubReport,
) -> Result<DocumentFindings, StoreError> {
    let mut damaged = Vec::new();
    let mut carriers: HashMap<Vec<u8>, Vec<u64>> = HashMap::new();
    for kv in tree.scan_prefix([tag::DOCUMENT]) {
        let (k, v) = kv?;
        let hub_id = k.get(1..).and_then(keys::u64_value).unwrap_or(0);
        let Ok(rec) = DocumentRecord::decode(v.as_ref()) else {
            // Not quarantinable (the record itself is gone): reported.
            report
                .damaged
                .push(document_damage(hub_id, None, "its record in the store does not decode"));
            continue;
        };
        if rec.quarantined_at_unix_ms != 0 {
            if report.awaiting_resend.len() < MAX_AWAITING_LISTED {
                report.awaiting_resend.push(hub_id);
            }
            continue;
        }
        report.documents += 1;
        let what = match check_document(tree, bodies, &rec, pace, report)? {
            Some(what) => Some(what),
            None if rec.external_payload => bad_payloads.get(&rec.payload_sha256).map(|w| {
                carriers.entry(rec.payload_sha256.clone()).or_default().push(hub_id);
                format!("its {w}")
            }),
            None => None,
        };
        if let Some(what) = what {
            report.damaged.push(document_damage(hub_id, Some(&rec), &what));
            if !(rec.external_payload && bad_payloads.contains_key(&rec.payload_sha256)) {
                damaged.push((hub_id, what));
            }
        }
    }
    Ok((damaged, carriers))
}

fn document_damage(hub_id: u64, rec: Option<&DocumentRecord>, what: &str) -> ScrubFinding {
    ScrubFinding {
        kind: DamageKind::Document,
        hub_document_id: hub_id,
        from: rec.map(|r| r.from.clone()).unwrap_or_default(),
        document_id: rec.map(|r| r.document_id.clone()).unwrap_or_default(),
        payload_sha256: rec.map(|r| r.payload_sha256.clone()).unwrap_or_default(),
        receipt_index: 0,
        what: what.to_string(),
        quarantined: false,
    }
}

fn log_damage(kind: DamageKind, index: u64, what: String) -> ScrubFinding {
    ScrubFinding {
        kind,
        hub_document_id: 0,
        from: String::new(),
        document_id: String::new(),
        payload_sha256: Vec::new(),
        receipt_index: index,
        what,
        quarantined: false,
    }
}

/// The root of the leaves pushed so far, from the frontier of perfect
/// subtrees (largest, leftmost first), as RFC 6962 defines it.
fn frontier_root(frontier: &[(u8, Hash)]) -> Hash {
    let mut it = frontier.iter().rev();
    let Some(&(_, mut acc)) = it.next() else {
        return merkle::empty_root();
    };
    for (_, left) in it {
        acc = merkle::node_hash(left, &acc);
    }
    acc
}

/// Check every receipt and signed tree head up to the newest head.
fn log(tree: &crate::sled::view::Tree, pace: &mut Pace<'_>, report: &mut ScrubReport) -> Result<(), StoreError> {
    let Some((_, size)) = super::proofs::latest_tree_head(tree)? else {
        return Ok(());
    };
    report.tree_size = size;
    let mut heads = tree.scan_prefix([tag::TREE_HEAD]).peekable();
    // Perfect subtrees on the right edge: (level, hash).
    let mut frontier: Vec<(u8, Hash)> = Vec::new();
    for index in 0..size {
        let value = tree.get(keys::receipt(index))?;
        let Some(value) = value else {
            report.damaged.push(log_damage(
                DamageKind::Receipt,
                index,
                format!("receipt {index} is missing: the log cannot be checked past it"),
            ));
            return Ok(());
        };
        pace.read(value.len() as u64)?;
        report.receipts += 1;
        let bytes = match leaves::receipt(&value) {
            Ok(b) => b,
            Err(e) => {
                report
                    .damaged
                    .push(log_damage(DamageKind::Receipt, index, e.to_string()));
                return Ok(());
            }
        };
        match Receipt::decode(bytes) {
            Ok(r) if r.index == index => {}
            Ok(r) => report.damaged.push(log_damage(
                DamageKind::Receipt,
                index,
                format!("receipt {index} says it is receipt {}", r.index),
            )),
            Err(_) => report.damaged.push(log_damage(
                DamageKind::Receipt,
                index,
                format!("receipt {index} does not decode"),
            )),
        }
        // The nodes this append creates, recomputed, against those stored.
        let get = |k: &[u8]| -> Result<Option<Vec<u8>>, StoreError> {
            if k == keys::receipt(index).as_slice() {
                return Ok(Some(value.to_vec()));
            }
            Ok(tree.get(k)?.map(|v| v.to_vec()))
        };
        let mut hash = merkle::leaf_hash(bytes);
        let (mut level, mut i) = (0u8, index);
        loop {
            match leaves::node(get, level, i) {
                Ok(stored) if stored == hash => {}
                Ok(stored) if level == 0 => {
                    // Go on from what the log recorded (and the heads
                    // signed), so one damaged receipt is reported once.
                    report.damaged.push(log_damage(
                        DamageKind::Receipt,
                        index,
                        format!("receipt {index} differs from the leaf hash the log recorded for it"),
                    ));
                    hash = stored;
                }
                Ok(_) => report.damaged.push(log_damage(
                    DamageKind::Receipt,
                    index,
                    format!("merkle node {level}/{i} (stored with receipt {index}) differs from its children"),
                )),
                Err(e) => report
                    .damaged
                    .push(log_damage(DamageKind::Receipt, index, e.to_string())),
            }
            if i & 1 == 0 {
                frontier.push((level, hash));
                break;
            }
            let (_, left) = frontier
                .pop()
                .ok_or_else(|| StoreError::corrupt("scrub: merkle frontier"))?;
            hash = merkle::node_hash(&left, &hash);
            level += 1;
            i >>= 1;
        }
        // Every signed head of this size.
        let leaves = index + 1;
        while let Some(Ok((k, _))) = heads.peek() {
            let head_size = keys::queue_item_id(k).unwrap_or(0);
            if head_size > leaves {
                break;
            }
            let Some(Ok((_, v))) = heads.next() else { break };
            report.tree_heads += 1;
            let th = SignedTreeHead::decode(v.as_ref())
                .ok()
                .and_then(|s| TreeHead::decode(s.tree_head.as_slice()).ok());
            let what = match th {
                None => Some(format!("signed tree head {head_size} does not decode")),
                Some(th) if th.tree_size != head_size => Some(format!(
                    "signed tree head stored under size {head_size} says size {}",
                    th.tree_size
                )),
                Some(th) if head_size == leaves && th.root_hash != frontier_root(&frontier) => Some(format!(
                    "signed tree head {head_size}: its root is not the root of the log's first {head_size} receipts"
                )),
                Some(_) if head_size < leaves => Some(format!("signed tree head {head_size} is out of order")),
                Some(_) => None,
            };
            if let Some(what) = what {
                report.damaged.push(log_damage(DamageKind::TreeHead, head_size, what));
            }
        }
    }
    Ok(())
}

/// The same damage reported once (a leaf and the node above it, …).
pub(super) fn dedup(report: &mut ScrubReport) {
    let mut seen = HashSet::new();
    report
        .damaged
        .retain(|d| seen.insert((d.kind, d.hub_document_id, d.payload_sha256.clone(), d.receipt_index)));
}

impl super::SledStore {
    /// [`crate::Store::verify_store`]: scan on a blocking thread, then
    /// quarantine what is damaged through the writer.
    pub(super) async fn scrub(&self, opts: ScrubOptions) -> Result<ScrubReport, StoreError> {
        let started = Instant::now();
        let (tree, bodies, dir) = (self.handles.tree()?, self.bodies.clone(), self.cache.path.clone());
        let scan_opts = opts.clone();
        let Found {
            mut report,
            documents,
            payloads,
        } = super::blocking(move || scan(&tree, &bodies, &dir, &scan_opts)).await?;
        dedup(&mut report);
        if opts.quarantine {
            let mut quarantined: HashSet<u64> = HashSet::new();
            let mut notify = Vec::new();
            for (sha256, what, hub_ids) in payloads {
                let actor = opts.actor.clone();
                let ids = hub_ids.clone();
                let done = self
                    .call(move |reply| super::ops::Op::QuarantinePayload {
                        sha256,
                        hub_ids: ids,
                        what,
                        actor,
                        reply,
                    })
                    .await?;
                quarantined.extend(hub_ids);
                notify.extend(done.into_iter().flat_map(|q| q.notify));
            }
            for (hub_id, what) in documents {
                let q = self.quarantine_now(hub_id, what, opts.actor.clone()).await?;
                quarantined.insert(hub_id);
                notify.extend(q.notify);
            }
            for d in &mut report.damaged {
                d.quarantined = match d.kind {
                    DamageKind::Document => quarantined.contains(&d.hub_document_id),
                    DamageKind::PayloadFile => true,
                    _ => false,
                };
            }
            notify.sort();
            notify.dedup();
            report.notify = notify;
        }
        for d in &report.damaged {
            tracing::error!(
                kind = ?d.kind,
                hub_document_id = d.hub_document_id,
                payload = %truc_core::hex(&d.payload_sha256),
                receipt_index = d.receipt_index,
                quarantined = d.quarantined,
                what = %d.what,
                "the scrub found damage at rest"
            );
        }
        tracing::info!(
            documents = report.documents,
            payload_files = report.payload_files,
            receipts = report.receipts,
            damaged = report.damaged.len(),
            took_ms = started.elapsed().as_millis() as u64,
            "scrub done"
        );
        Ok(report)
    }

    /// Quarantine one document through the writer.
    pub(super) async fn quarantine_now(
        &self,
        hub_id: u64,
        what: String,
        actor: String,
    ) -> Result<crate::Quarantined, StoreError> {
        self.run(
            crate::machine::Command::Quarantine { hub_id, what, actor },
            |o, _| match o {
                crate::machine::Outcome::Quarantined(q) => Ok(q),
                o => Err(super::ops::unexpected("quarantine", &o)),
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frontier_root_is_the_rfc6962_root() {
        for n in 1..40u64 {
            let mut mem = merkle::MemoryTree::new();
            let mut frontier: Vec<(u8, Hash)> = Vec::new();
            for j in 0..n {
                let leaf = merkle::leaf_hash(&j.to_be_bytes());
                mem.push_leaf_hash(leaf);
                let (mut hash, mut i, mut level) = (leaf, j, 0u8);
                while i & 1 == 1 {
                    let (_, left) = frontier.pop().unwrap();
                    hash = merkle::node_hash(&left, &hash);
                    i >>= 1;
                    level += 1;
                }
                frontier.push((level, hash));
            }
            assert_eq!(frontier_root(&frontier), mem.root(), "n = {n}");
        }
    }
}
