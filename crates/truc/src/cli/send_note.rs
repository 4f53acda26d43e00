//! What `truc send` remembers about a chunked upload until the hub accepts
//! it, so that running the same command again resumes instead of starting
//! over: the document id (the hub's idempotency key), the payload-first
//! upload id (which names the bytes the hub already has), and the payload's
//! digests once a run has hashed all of it.
//!
//! The note lives in the temporary directory, named after the sender, the
//! recipients and the files (the attachments, in order: canonical path,
//! size, modification time of each): the digests are not known before the
//! files have been read, and reading them twice is what sending the payload
//! first avoids. A file changed in between gets a fresh note, so a new
//! upload rather than a resume of other bytes (the hub would refuse those
//! at the end anyway: its digest is its own).
//!
//! Format, one item a line: the document id (first, alone, for scripts),
//! then `upload <id>`, one `file <canonical path>` per file, `to <codes>`
//! and, once known, `sha256 <hex>` (the whole payload) and one
//! `part <size> <hex>` per file. The files and recipients let a run find
//! the notes of the same file to other recipients, and `truc send
//! --abandon` forget them.

use std::path::{Path, PathBuf};

/// A chunked send's resume state.
#[derive(Debug)]
pub(crate) struct SendNote {
    path: PathBuf,
    /// The files, canonical, in order.
    files: Vec<PathBuf>,
    /// The recipients, comma-separated.
    to: String,
    /// The document id the first run chose (or was given).
    pub(crate) document_id: Option<String>,
    /// The payload-first upload id.
    pub(crate) upload_id: Option<String>,
    /// The payload's digests (the whole and each file's), known once a
    /// run has read all of it.
    pub(crate) digests: Option<truc_client::transfer::Digests>,
}

impl SendNote {
    /// The note for sending `file` from `from` to `to`, read if an earlier
    /// run left one.
    pub(crate) fn load(from: &str, to: &[String], files: &[PathBuf]) -> std::io::Result<SendNote> {
        let mut key = format!("{from}|{}", to.join(","));
        let mut canonical = Vec::with_capacity(files.len());
        for file in files {
            let meta = std::fs::metadata(file)?;
            let modified = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            let c = std::fs::canonicalize(file)?;
            key += &format!("|{}|{}|{modified}", c.display(), meta.len());
            canonical.push(c);
        }
        let name = format!(
            "truc-send-{}.id",
            &truc_core::hex(&truc_core::sha256(key.as_bytes()))[..32]
        );
        let mut note = SendNote {
            path: std::env::temp_dir().join(name),
            files: canonical,
            to: to.join(","),
            document_id: None,
            upload_id: None,
            digests: None,
        };
        let text = std::fs::read_to_string(&note.path).unwrap_or_default();
        let mut lines = text.lines().map(str::trim);
        note.document_id = lines.next().filter(|s| !s.is_empty()).map(String::from);
        let (mut whole, mut parts) = (None, Vec::new());
        for line in lines {
            match line.split_once(' ') {
                Some(("upload", id)) => note.upload_id = Some(id.to_string()),
                Some(("sha256", hex)) => whole = parse_sha256(hex),
                Some(("part", rest)) => parts.push(
                    rest.split_once(' ')
                        .and_then(|(size, hex)| Some((size.parse::<u64>().ok()?, parse_sha256(hex)?))),
                ),
                _ => {}
            }
        }
        // Digests only when whole and one per file.
        let parts: Option<Vec<(u64, [u8; 32])>> = parts.into_iter().collect();
        if let (Some(sha256), Some(parts)) = (whole, parts) {
            if parts.len() == note.files.len() {
                note.digests = Some(truc_client::transfer::Digests {
                    sha256,
                    size: parts.iter().map(|(s, _)| s).sum(),
                    attachments: parts.iter().map(|(_, d)| *d).collect(),
                    sizes: parts.iter().map(|(s, _)| *s).collect(),
                });
            }
        }
        Ok(note)
    }

    /// Write the note (best effort: without it a rerun starts over, which
    /// is slower but correct).
    pub(crate) fn save(&self) {
        let mut text = format!("{}\n", self.document_id.as_deref().unwrap_or(""));
        if let Some(id) = &self.upload_id {
            text.push_str(&format!("upload {id}\n"));
        }
        for f in &self.files {
            text.push_str(&format!("file {}\n", f.display()));
        }
        text.push_str(&format!("to {}\n", self.to));
        if let Some(d) = &self.digests {
            text.push_str(&format!("sha256 {}\n", truc_core::hex(&d.sha256)));
            for (size, sha) in d.sizes.iter().zip(&d.attachments) {
                text.push_str(&format!("part {size} {}\n", truc_core::hex(sha)));
            }
        }
        let tmp = self.path.with_extension("tmp");
        if std::fs::write(&tmp, text).is_ok() {
            let _ = std::fs::rename(&tmp, &self.path);
        }
    }

    /// Forget the note (the hub has accepted the document).
    pub(crate) fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }

    /// (recipients, document id) of the other notes of this file.
    pub(crate) fn others(&self) -> Vec<(String, String)> {
        let mut seen = Vec::new();
        self.files
            .iter()
            .flat_map(|f| notes_of(f))
            .filter(|(p, _, _)| {
                let new = !seen.contains(p);
                seen.push(p.clone());
                new
            })
            .filter(|(p, _, _)| *p != self.path)
            .map(|(_, to, id)| (to, id))
            .collect()
    }

    /// Remove every note of `file`; returns (recipients, document id) of each.
    pub(crate) fn abandon(file: &Path) -> std::io::Result<Vec<(String, String)>> {
        let canonical = std::fs::canonicalize(file)?;
        Ok(notes_of(&canonical)
            .into_iter()
            .map(|(p, to, id)| {
                let _ = std::fs::remove_file(p);
                (to, id)
            })
            .collect())
    }
}

/// (note path, recipients, document id) of the notes naming `file`.
fn notes_of(file: &Path) -> Vec<(PathBuf, String, String)> {
    let Ok(dir) = std::fs::read_dir(std::env::temp_dir()) else {
        return Vec::new();
    };
    let want = format!("file {}", file.display());
    dir.flatten()
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.starts_with("truc-send-") && n.ends_with(".id")
        })
        .filter_map(|e| {
            let text = std::fs::read_to_string(e.path()).ok()?;
            if !text.lines().any(|l| l == want) {
                return None;
            }
            let id = text.lines().next().unwrap_or_default().to_string();
            let to = text
                .lines()
                .find_map(|l| l.strip_prefix("to "))
                .unwrap_or_default()
                .to_string();
            Some((e.path(), to, id))
        })
        .collect()
}

fn parse_sha256(hex: &str) -> Option<[u8; 32]> {
    truc_core::unhex(hex).ok()?.try_into().ok()
}
