//! The index of an agency's receipts (`G`): one key per agency per batch.
//!
//! Every receipt is indexed under each agency it names (sender, recipient,
//! actor, an ACCEPTED receipt's recipients), so an agency or its auditor
//! can list its own receipts. One key per receipt and agency was four of
//! the sixteen keys a document cost, and the writer pays for every key it
//! inserts (a search of its in-memory table). A batch's receipts that name
//! one agency go under one key instead: 9 % less of the writer's CPU per
//! document (BENCHMARKS.md, session 14).
//!
//! `G` + agency + 0x00 + the batch's last such index (u64 BE) →
//! `0x01`, then each index as a LEB128 varint: the first whole, the others
//! as the difference from the one before (ascending).
//!
//! A batch's receipt indexes are contiguous and later batches' are larger,
//! so the keys of one agency never overlap and sort in log order: reading
//! from index `t` on starts at key `t` (the first posting whose last index
//! is at least `t`) and leaves out the indexes below `t`.
//!
//! A value that is empty is the older layout, one key per receipt: the
//! key's own index. Stores written before keep working unchanged.

use std::collections::BTreeMap;

use crate::keys::{self, tag};
use crate::StoreError;

/// First byte of a value in this layout.
const POSTING: u8 = 1;

/// Receipts of this batch by agency, written as postings when it is sealed.
#[derive(Debug, Default)]
pub(crate) struct Pending(BTreeMap<String, Vec<u64>>);

impl Pending {
    /// Receipt `index` names `agency` (indexes arrive in ascending order).
    pub(crate) fn add(&mut self, agency: &str, index: u64) {
        match self.0.get_mut(agency) {
            Some(v) => v.push(index),
            None => {
                self.0.insert(agency.to_string(), vec![index]);
            }
        }
    }

    /// This batch's receipts naming `agency`.
    pub(crate) fn of(&self, agency: &str) -> &[u64] {
        self.0.get(agency).map_or(&[], Vec::as_slice)
    }

    /// The keys and values to write: one per agency named.
    pub(crate) fn into_writes(self) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> {
        self.0.into_iter().filter_map(|(agency, indexes)| {
            let last = *indexes.last()?;
            Some((keys::queue_item(tag::AGENCY_RECEIPTS, &agency, last), encode(&indexes)))
        })
    }
}

/// The value of a posting of `indexes` (ascending, not empty).
pub(crate) fn encode(indexes: &[u64]) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + indexes.len() * 2);
    v.push(POSTING);
    let mut previous = 0;
    for (n, &i) in indexes.iter().enumerate() {
        let delta = if n == 0 { i } else { i - previous };
        prost::encoding::encode_varint(delta, &mut v);
        previous = i;
    }
    v
}

/// The receipt indexes of the `G` entry `key` → `value`, ascending.
pub(crate) fn decode(key: &[u8], value: &[u8]) -> Result<Vec<u64>, StoreError> {
    let last = keys::queue_item_id(key).ok_or_else(|| StoreError::corrupt("agency receipt index key"))?;
    let Some((&first, mut rest)) = value.split_first() else {
        return Ok(vec![last]); // the older layout
    };
    if first != POSTING {
        return Err(StoreError::corrupt(format!(
            "agency receipt index {last}: unknown layout {first:#04x}"
        )));
    }
    let mut out = Vec::new();
    let mut previous = 0u64;
    while !rest.is_empty() {
        let delta = prost::encoding::decode_varint(&mut rest)
            .map_err(|e| StoreError::corrupt_from(format!("agency receipt index {last}"), e))?;
        let i = if out.is_empty() {
            delta
        } else {
            previous
                .checked_add(delta)
                .filter(|_| delta > 0)
                .ok_or_else(|| StoreError::corrupt(format!("agency receipt index {last}: indexes not ascending")))?
        };
        out.push(i);
        previous = i;
    }
    if out.last() != Some(&last) {
        return Err(StoreError::corrupt(format!(
            "agency receipt index {last}: its value ends at {:?}",
            out.last()
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(last: u64) -> Vec<u8> {
        keys::queue_item(tag::AGENCY_RECEIPTS, "000.00.00.G01", last)
    }

    #[test]
    fn a_posting_round_trips() {
        for indexes in [
            vec![0],
            vec![7],
            vec![5, 6, 9, 300, 70_000],
            vec![u64::MAX - 1, u64::MAX],
        ] {
            let v = encode(&indexes);
            assert_eq!(decode(&key(*indexes.last().unwrap()), &v).unwrap(), indexes);
        }
    }

    #[test]
    fn an_empty_value_is_the_older_layout() {
        assert_eq!(decode(&key(42), &[]).unwrap(), vec![42]);
    }

    #[test]
    fn damage_is_reported_not_guessed() {
        let v = encode(&[3, 4, 5]);
        // The key names another last index.
        assert!(decode(&key(6), &v).is_err());
        // An unknown layout byte.
        let mut bad = v.clone();
        bad[0] = 9;
        assert!(decode(&key(5), &bad).is_err());
        // A truncated varint.
        let mut cut = encode(&[3, 300]);
        cut.pop();
        assert!(decode(&key(300), &cut).is_err());
        // Not ascending (a zero difference).
        let mut zero = vec![POSTING];
        prost::encoding::encode_varint(5, &mut zero);
        prost::encoding::encode_varint(0, &mut zero);
        assert!(decode(&key(5), &zero).is_err());
    }

    #[test]
    fn pending_writes_one_key_per_agency() {
        let mut p = Pending::default();
        p.add("B", 10);
        p.add("A", 10);
        p.add("B", 11);
        p.add("A", 12);
        assert_eq!(p.of("A"), &[10, 12]);
        assert_eq!(p.of("C"), &[] as &[u64]);
        let writes: Vec<_> = p.into_writes().collect();
        assert_eq!(writes.len(), 2);
        assert_eq!(writes[0].0, keys::queue_item(tag::AGENCY_RECEIPTS, "A", 12));
        assert_eq!(decode(&writes[0].0, &writes[0].1).unwrap(), vec![10, 12]);
        assert_eq!(decode(&writes[1].0, &writes[1].1).unwrap(), vec![10, 11]);
    }
}
