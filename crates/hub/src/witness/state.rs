//! What this hub's witness has cosigned, per log: `<data_dir>/witness.json`,
//! beside the store, not in it (the store is this hub's own log; this file
//! is what it has seen of its peers' logs).
//!
//! ```json
//! { "format": "truc-witness-state/1",
//!   "logs": { "h49.truc/receipts": { "size": 12, "root": "<base64>", "checkpoint": "<the note>" } } }
//! ```
//!
//! Written whole on every change (`truc_pki::write_atomic`): a temporary
//! file, `fsync`, `rename` over the old one, `fsync` of the directory. A crash leaves the old file or the
//! new one, never a mix; an answer is sent only after the new one is durable.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use truc_core::c2sp::witness::Witnessed;
use truc_core::merkle::Hash;

/// The `format` of the file.
const FORMAT: &str = "truc-witness-state/1";
/// The file's name in the data directory.
pub(crate) const FILE_NAME: &str = "witness.json";

/// One log's latest cosigned checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogEntry {
    /// Its tree size.
    pub(crate) size: u64,
    /// Its root hash, base64.
    pub(crate) root: String,
    /// The checkpoint note as submitted (evidence, should the log later
    /// sign another tree of this size).
    pub(crate) checkpoint: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    format: String,
    logs: BTreeMap<String, LogEntry>,
}

/// The witnessed state, loaded, and where it is kept.
#[derive(Debug)]
pub(crate) struct WitnessState {
    path: PathBuf,
    logs: BTreeMap<String, LogEntry>,
}

impl WitnessState {
    /// Reads `<data_dir>/witness.json`, or starts empty when there is none.
    pub(crate) fn load(data_dir: &Path) -> Result<WitnessState, String> {
        let path = data_dir.join(FILE_NAME);
        let logs = match std::fs::read_to_string(&path) {
            Ok(text) => {
                let f: File = serde_json::from_str(&text).map_err(|e| {
                    format!(
                        "{}: {e}: the witness state is damaged; restore it from a backup (removing it makes this \
                         witness trust every peer's next checkpoint as if it had never seen their logs)",
                        path.display()
                    )
                })?;
                if f.format != FORMAT {
                    return Err(format!(
                        "{}: format {:?}, expected {FORMAT:?}",
                        path.display(),
                        f.format
                    ));
                }
                f.logs
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        for (origin, e) in &logs {
            if witnessed_of(e).is_none() {
                return Err(format!(
                    "{}: the root of {origin} is not the base64 of 32 bytes",
                    path.display()
                ));
            }
        }
        Ok(WitnessState { path, logs })
    }

    /// What was last cosigned of `origin`.
    pub(crate) fn get(&self, origin: &str) -> Option<Witnessed> {
        self.logs.get(origin).and_then(witnessed_of)
    }

    /// Records `origin` cosigned at `size` and `root` (its note
    /// `checkpoint`) and makes it durable before returning.
    pub(crate) fn set(&mut self, origin: &str, size: u64, root: &Hash, checkpoint: &str) -> std::io::Result<()> {
        let mut logs = self.logs.clone();
        logs.insert(
            origin.to_string(),
            LogEntry {
                size,
                root: truc_core::c2sp::b64(root),
                checkpoint: checkpoint.to_string(),
            },
        );
        let text = serde_json::to_string_pretty(&File {
            format: FORMAT.into(),
            logs: logs.clone(),
        })
        .map_err(std::io::Error::other)?;
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        truc_pki::write_atomic(&self.path, text.as_bytes(), 0o644).map_err(std::io::Error::other)?;
        self.logs = logs;
        Ok(())
    }
}

fn witnessed_of(e: &LogEntry) -> Option<Witnessed> {
    let root = truc_core::c2sp::unb64(&e.root)?.try_into().ok()?;
    Some(Witnessed { size: e.size, root })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_survives_a_reload_and_a_damaged_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = WitnessState::load(dir.path()).unwrap();
        assert_eq!(s.get("h49.truc/receipts"), None);
        s.set("h49.truc/receipts", 12, &[7; 32], "note\n").unwrap();
        s.set("g12.truc/receipts", 3, &[8; 32], "note\n").unwrap();
        let back = WitnessState::load(dir.path()).unwrap();
        assert_eq!(
            back.get("h49.truc/receipts"),
            Some(Witnessed {
                size: 12,
                root: [7; 32]
            })
        );
        assert_eq!(back.get("g12.truc/receipts").map(|w| w.size), Some(3));
        std::fs::write(dir.path().join(FILE_NAME), "{").unwrap();
        let e = WitnessState::load(dir.path()).unwrap_err();
        assert!(e.contains("the witness state is damaged"), "{e}");
    }
}
