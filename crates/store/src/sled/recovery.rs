//! Opening a store after a crash, or after damage: replay the log into
//! sled, then check that nothing the hub signed is missing.
//!
//! A crash mid-write leaves a torn write at the log's very end; it was
//! never answered, and is cut off. Anything else that does not read back
//! is damage: the store refuses to open, naming the file, the offset and
//! what would be lost ([`crate::Damage`]), rather than serve a shorter log
//! and sign a second, different tree head of a size it already published.
//! An operator then restores a backup, or accepts the loss with `trucd
//! repair --accept-loss` ([`SledStoreOptions::accept_loss`]): the damaged
//! part of the log is moved aside (never deleted), the signed-head file is
//! rewritten from what remains, and the repair is recorded as an operator
//! receipt naming what was dropped.

use std::path::{Path, PathBuf};

use prost::Message;
use truc_core::merkle;

use super::head::{self, Found, Recorded, SignedHeadFile};
use super::log::{self, Tails};
use super::{proofs, punch, SledStoreOptions};
use crate::error::Damage;
use crate::keys;
use crate::machine::batch::TreeNodes;
use crate::records::Meta;
use crate::StoreError;

/// What recovery did, for the log and for a repair's receipt.
#[derive(Debug, Default)]
pub(super) struct Recovered {
    /// Batches replayed into sled.
    pub(super) replayed: usize,
    /// What an accepted loss dropped (empty when nothing was).
    pub(super) dropped: Vec<String>,
}

/// Replay the log into `tree` (embedded store only). With
/// `opts.accept_loss`, damage is set aside instead of refused.
pub(super) fn replay(
    db: &crate::sled::view::Db,
    tree: &crate::sled::view::Tree,
    opts: &SledStoreOptions,
    out: &mut Recovered,
) -> Result<Vec<(u32, u64)>, StoreError> {
    for _ in 0..64 {
        let logged = read_meta(tree)?.unwrap_or_default();
        let tails = if logged.torn_tails_cut {
            Tails::NewestOnly
        } else {
            Tails::AnySegment
        };
        let punched_to = punch::first_undone(&opts.path);
        if logged.log_segment < punched_to && punched_to > 1 {
            // Not repairable by dropping: the batches are gone from the log.
            return Err(StoreError::Damaged(Damage {
                file: crate::sled::view::database_path(&opts.path),
                offset: None,
                what: format!(
                    "the database is older than the log: it holds batches up to segment {} but segments before \
                     {punched_to} were freed after the database had them (its files were replaced by an older \
                     copy, or deleted)",
                    logged.log_segment
                ),
                lost: "every batch between the two (they can only come back from a backup)".into(),
                repairable: true,
            }));
        }
        let found = match log::replay(&opts.path, (logged.log_segment, logged.log_offset), tails) {
            Ok(found) => found,
            Err(StoreError::Damaged(d)) if opts.accept_loss => {
                out.dropped.push(set_aside(&opts.path, &d)?);
                continue;
            }
            Err(e) => return Err(e),
        };
        for (seg, offset) in &found.damaged_bodies {
            tracing::error!(
                file = %log::segment_file(&opts.path, *seg).display(),
                offset,
                "a document body fails its checksum; its document is quarantined when it is read or scrubbed"
            );
        }
        out.replayed += found.batches.len();
        for writes in found.batches {
            let mut batch = crate::sled::view::Batch::default();
            for (k, v) in writes {
                match v {
                    Some(v) => batch.insert(k, v),
                    None => batch.remove(k),
                }
            }
            tree.apply_batch(batch)?;
        }
        if out.replayed > 0 {
            db.flush()?;
        }
        return Ok(found.torn);
    }
    Err(StoreError::Damaged(Damage {
        file: opts.path.join("bodies"),
        offset: None,
        what: "repair set aside 64 damaged places and found more".into(),
        lost: "more than a repair should drop: restore a backup".into(),
        repairable: true,
    }))
}

/// Move the damaged part of the log aside (into `bodies/lost-<time>/`):
/// the rest of the damaged segment from the damage on, and every later
/// segment. Returns what was dropped, for the repair's receipt.
fn set_aside(path: &Path, d: &Damage) -> Result<String, StoreError> {
    let bodies = path.join("bodies");
    let lost = bodies.join(format!("lost-{}", truc_core::now_unix_ms()));
    std::fs::create_dir_all(&lost).map_err(|e| io(&lost, e))?;
    let seg = d
        .file
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".seg"))
        .and_then(|n| n.parse::<u32>().ok());
    let Some(seg) = seg else {
        return Err(StoreError::Damaged(d.clone()));
    };
    let mut moved = Vec::new();
    if let (Some(offset), true) = (d.offset, d.file.exists()) {
        // Keep the damaged tail, then cut the segment there.
        let bytes = std::fs::read(&d.file).map_err(|e| io(&d.file, e))?;
        let keep = lost.join(format!("{seg:08}.seg.from-{offset}"));
        std::fs::write(&keep, bytes.get(offset as usize..).unwrap_or_default()).map_err(|e| io(&keep, e))?;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&d.file)
            .map_err(|e| io(&d.file, e))?;
        f.set_len(offset)
            .and_then(|()| f.sync_all())
            .map_err(|e| io(&d.file, e))?;
        moved.push(format!("segment {seg} from offset {offset}"));
    }
    let first_later = if d.offset.is_some() { seg + 1 } else { seg };
    for later in log::segments_from(path, first_later)? {
        let from = log::segment_file(path, later);
        let to = lost.join(from.file_name().unwrap_or_default());
        std::fs::rename(&from, &to).map_err(|e| io(&from, e))?;
        moved.push(format!("segment {later}"));
    }
    std::fs::File::open(&bodies)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(&bodies, e))?;
    let what = format!(
        "{} ({}); set aside in {}",
        d.what,
        if moved.is_empty() {
            "nothing to move".into()
        } else {
            moved.join(", ")
        },
        lost.display()
    );
    tracing::warn!(%what, "repair: accepted the loss of part of the log");
    Ok(what)
}

/// After replay (and, replicated, after catching up with the shared log):
/// the tree must reach the last head the hub signed, with the same root
/// there. Returns the writer's handle on the signed-head file, now holding
/// the newest head.
pub(super) fn check_signed_head(
    tree: &crate::sled::view::Tree,
    opts: &SledStoreOptions,
    meta: &Meta,
    torn: &[(u32, u64)],
    out: &mut Recovered,
) -> Result<SignedHeadFile, StoreError> {
    let latest = match proofs::latest_tree_head(tree)? {
        Some((sth, _)) => Some(Recorded::from_signed(&sth)?),
        None => None,
    };
    let file = opts.path.join(head::FILE_NAME);
    let damage = |what: String, lost: String| {
        let (file, offset) = match torn.last() {
            // The likeliest place of the loss: where replay stopped.
            Some(&(seg, off)) => (log::segment_file(&opts.path, seg), Some(off)),
            None => (file.clone(), None),
        };
        StoreError::Damaged(Damage {
            file,
            offset,
            what,
            lost,
            repairable: true,
        })
    };
    let problem = match head::read(&opts.path)? {
        Found::Head(signed) if meta.tree_size < signed.size => Some(damage(
            format!(
                "the log holds {} receipts but the hub signed and handed out a tree head of size {} (recorded in \
                 {}): acknowledged batches are missing from the log",
                meta.tree_size,
                signed.size,
                file.display()
            ),
            format!(
                "{} receipts and the documents, acknowledgements and statuses they record",
                signed.size - meta.tree_size
            ),
        )),
        Found::Head(signed) => {
            let root = merkle::root(signed.size, &TreeNodes(tree)).map_err(|e| {
                StoreError::Damaged(Damage {
                    file: crate::sled::view::database_path(&opts.path),
                    offset: None,
                    what: format!(
                        "the database's receipt log does not read back up to the last signed head (size {}): {e}",
                        signed.size
                    ),
                    lost: "the receipts it cannot read, and the proofs of every later one".into(),
                    repairable: true,
                })
            });
            let root = match root {
                Ok(root) => root,
                Err(e) if opts.accept_loss => {
                    out.dropped.push(e.to_string());
                    return SignedHeadFile::open(&opts.path, latest.as_ref());
                }
                Err(e) => return Err(e),
            };
            (root != signed.root).then(|| {
                damage(
                    format!(
                        "the log's tree of size {} has another root than the head the hub signed for that size \
                         (recorded in {}): the log was rewritten or replaced",
                        signed.size,
                        file.display()
                    ),
                    "the history auditors hold receipts for".into(),
                )
            })
        }
        Found::Unreadable => Some(StoreError::Damaged(Damage {
            file: file.clone(),
            offset: None,
            what: "neither copy of the last signed tree head reads back".into(),
            lost: "the check that the log holds every batch the hub acknowledged".into(),
            repairable: true,
        })),
        // (A replicated store's local view may be new while the shared
        // log is not: its file is then new too.)
        Found::Missing | Found::Empty if meta.signed_head_file && meta.tree_size > 0 && opts.replicator.is_none() => {
            Some(StoreError::Damaged(Damage {
                file: file.clone(),
                offset: None,
                what: "the file recording the last signed tree head is missing or empty".into(),
                lost: "the check that the log holds every batch the hub acknowledged".into(),
                repairable: true,
            }))
        }
        Found::Missing | Found::Empty => None,
    };
    match problem {
        Some(StoreError::Damaged(d)) if opts.accept_loss => {
            // What replay stopped at is what was lost: keep it aside.
            for &(seg, offset) in torn {
                let _ = set_aside(
                    &opts.path,
                    &Damage {
                        file: log::segment_file(&opts.path, seg),
                        offset: Some(offset),
                        what: "the end of the log, where replay stopped".into(),
                        lost: String::new(),
                        repairable: true,
                    },
                )?;
            }
            let what = format!(
                "{}; the signed-head file now records the log's own newest head (size {})",
                d.what, meta.tree_size
            );
            tracing::warn!(%what, "repair: accepted the loss");
            out.dropped.push(what);
        }
        Some(e) => return Err(e),
        None => {}
    }
    SignedHeadFile::open(&opts.path, latest.as_ref())
}

/// Record in sled that the open's checks are in force (torn tails cut,
/// signed-head file written): later opens hold the store to them.
pub(super) fn mark_checked(
    db: &crate::sled::view::Db,
    tree: &crate::sled::view::Tree,
    path: &Path,
) -> Result<(), StoreError> {
    let mut meta = read_meta(tree)?.unwrap_or(Meta {
        next_hub_id: 1,
        payload_refs_counted: true,
        ..Meta::default()
    });
    meta.torn_tails_cut = true;
    meta.signed_head_file = true;
    // Written and flushed at every open, also when unchanged: a database
    // that cannot take a write fails here, at start, not at the first
    // commit.
    tree.insert(keys::meta(), meta.encode_to_vec())
        .and_then(|_| db.flush())
        .map_err(|e| {
            StoreError::Damaged(Damage {
                file: crate::sled::view::database_path(path),
                offset: None,
                what: format!("the store's database does not take a write at start ({e})"),
                lost: "the hub's ability to commit anything".into(),
                repairable: false,
            })
        })?;
    Ok(())
}

pub(super) fn read_meta(tree: &crate::sled::view::Tree) -> Result<Option<Meta>, StoreError> {
    tree.get(keys::meta())?
        .map(|v| Meta::decode(v.as_ref()).map_err(|e| StoreError::corrupt_from("meta", e)))
        .transpose()
}

fn io(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Io {
        path: PathBuf::from(path),
        source: e,
    }
}
