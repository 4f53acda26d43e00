//! The machine over plain memory: a `BTreeMap` for the state and an
//! environment without disk, for the model test. It commits a batch the
//! way the writer does (the writes, the directory, the queue counts), minus
//! the log and the signed tree head.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use super::{apply, Batch, Command, Env, InlineBodies, KeyValue, Outcome, Read, Ready};
use crate::records::{AgencyRecord, Meta};
use crate::StoreError;

/// The committed state.
#[derive(Debug, Default)]
pub(crate) struct MemoryState(pub(crate) BTreeMap<Vec<u8>, Vec<u8>>);

impl Read for MemoryState {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.0.get(key).cloned())
    }

    fn contains(&self, key: &[u8]) -> Result<bool, StoreError> {
        Ok(self.0.contains_key(key))
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        Ok(self
            .0
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn range(&self, from: &[u8], to: &[u8], visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<(), StoreError> {
        for (k, v) in self.0.range(from.to_vec()..to.to_vec()) {
            if !visit(k, v) {
                break;
            }
        }
        Ok(())
    }
}

/// Directory and queue counts as the writer's cache keeps them; no quota,
/// no disk, no payload files.
#[derive(Debug, Default)]
pub(crate) struct MemoryEnv {
    pub(crate) agencies: BTreeMap<String, AgencyRecord>,
    pub(crate) queued: HashMap<String, (u64, u64)>,
    pub(crate) pins: HashSet<Vec<u8>>,
}

impl Env for MemoryEnv {
    fn agency(&self, code: &str) -> Option<AgencyRecord> {
        self.agencies.get(code).cloned()
    }

    fn queue_counts(&self, code: &str) -> (u64, u64) {
        self.queued.get(code).copied().unwrap_or((0, 0))
    }

    fn quota_bytes(&self) -> u64 {
        0
    }

    fn min_free_bytes(&self) -> u64 {
        0
    }

    fn disk_free(&self) -> Option<u64> {
        None
    }

    fn pinned(&self, sha256: &[u8]) -> bool {
        self.pins.contains(sha256)
    }

    fn delete_payload(&self, _: &[u8]) -> bool {
        true
    }

    fn deletions_durable(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// A store in memory: state, environment, and the batch counter.
#[derive(Debug)]
pub(crate) struct MemoryStore {
    pub(crate) state: MemoryState,
    pub(crate) env: MemoryEnv,
    pub(crate) meta: Meta,
    pub(crate) now_unix_ms: i64,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            state: MemoryState::default(),
            env: MemoryEnv::default(),
            meta: Meta {
                next_hub_id: 1,
                payload_refs_counted: true,
                ..Meta::default()
            },
            now_unix_ms: 1_780_000_000_000,
        }
    }
}

impl MemoryStore {
    /// Apply `cmds` as one batch and commit it; each command's outcome.
    pub(crate) fn batch(&mut self, cmds: Vec<Command>) -> Vec<Result<Outcome, StoreError>> {
        self.now_unix_ms += 1000;
        let mut bodies = InlineBodies;
        let calendar = Arc::new(truc_core::Calendar::default());
        let mut b = Batch::new(&self.state, self.meta.clone(), &mut bodies, self.now_unix_ms, calendar);
        let outcomes: Vec<_> = cmds.into_iter().map(|c| apply(&mut b, &self.env, c)).collect();
        if let Some(why) = b.spoiled() {
            // As the writer does: nothing of a spoiled batch is committed.
            let why = why.to_string();
            return outcomes
                .into_iter()
                .map(|o| {
                    o.and_then(|_| {
                        Err(StoreError::unavailable(format!(
                            "nothing of the batch was stored ({why})"
                        )))
                    })
                })
                .collect();
        }
        let Ready {
            writes,
            meta,
            agencies,
            queued_delta,
            ..
        } = b.into_batch();
        for (k, v) in writes {
            match v {
                Some(v) => self.state.0.insert(k, v),
                None => self.state.0.remove(&k),
            };
        }
        self.meta = meta;
        for a in agencies {
            if super::agencies::is_removal(&a) {
                self.env.agencies.remove(&a.code);
            } else {
                self.env.agencies.insert(a.code.clone(), a);
            }
        }
        for (code, (count, bytes)) in queued_delta {
            let v = self.env.queued.entry(code).or_insert((0, 0));
            *v = ((v.0 as i64 + count).max(0) as u64, (v.1 as i64 + bytes).max(0) as u64);
        }
        outcomes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use truc_core::AgencyCode;

    /// `state`, except that reading a key of keyspace `tag` fails.
    struct FailsOn<'a>(&'a MemoryState, u8);

    impl FailsOn<'_> {
        fn check(&self, key: &[u8]) -> Result<(), StoreError> {
            match key.first() == Some(&self.1) {
                true => Err(StoreError::unavailable("a read failed (injected)")),
                false => Ok(()),
            }
        }
    }

    impl Read for FailsOn<'_> {
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
            self.check(key)?;
            self.0.get(key)
        }

        fn contains(&self, key: &[u8]) -> Result<bool, StoreError> {
            self.check(key)?;
            self.0.contains(key)
        }

        fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
            self.check(prefix)?;
            self.0.scan_prefix(prefix)
        }

        fn range(&self, from: &[u8], to: &[u8], visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<(), StoreError> {
            self.check(from)?;
            self.0.range(from, to, visit)
        }
    }

    /// A command refused before it writes leaves its batch to the others;
    /// one that fails half-way (here: its ACCEPTED receipt's indicator row
    /// cannot be read, after the document record was written) spoils it,
    /// so that the writer commits nothing of that batch.
    #[test]
    fn a_command_that_fails_after_writing_spoils_its_batch() {
        let (g01, h03) = (
            AgencyCode::parse("000.00.00.G01").unwrap(),
            AgencyCode::parse("000.00.00.H03").unwrap(),
        );
        let mut store = MemoryStore::default();
        for code in [&g01, &h03] {
            let put = Command::PutAgency {
                code: code.clone(),
                name: code.to_string(),
                actor: "operator".into(),
            };
            assert!(store.batch(vec![put])[0].is_ok());
        }
        let send = |doc: u8, to: &AgencyCode| {
            Command::Send(Box::new(super::super::model::new_document(
                &g01,
                std::slice::from_ref(to),
                doc,
                doc,
                0,
            )))
        };
        let unknown = AgencyCode::parse("000.00.00.Z99").unwrap();

        let failing = FailsOn(&store.state, crate::keys::tag::INDICATORS);
        let mut bodies = InlineBodies;
        let calendar = Arc::new(truc_core::Calendar::default());
        let mut b = Batch::new(&failing, store.meta.clone(), &mut bodies, store.now_unix_ms, calendar);
        assert!(apply(&mut b, &store.env, send(1, &unknown)).is_err());
        assert_eq!(b.spoiled(), None, "refused before writing: the batch goes on");
        let e = apply(&mut b, &store.env, send(2, &h03)).unwrap_err();
        assert!(e.to_string().contains("injected"), "{e}");
        assert!(
            b.spoiled().is_some_and(|why| why.contains("injected")),
            "{:?}",
            b.spoiled()
        );
    }
}
