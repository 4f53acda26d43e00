//! The priorities of a load and their weights (`--priority-mix`).

use std::fmt;
use std::str::FromStr;

use truc_proto::v1::Priority;

use crate::LoadError;

/// Priorities with weights: `thuong=90,khan=9,hoa-toc=1` (a bare name
/// weighs 1). A priority is read by its name, an alias or its number
/// (`truc_proto::names`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriorityMix(Vec<(Priority, u32)>);

impl PriorityMix {
    /// Every document of one priority.
    pub fn only(p: Priority) -> PriorityMix {
        PriorityMix(vec![(p, 1)])
    }

    /// The priority of document `n`: spread evenly by weight, and always
    /// the same for the same `n`.
    pub fn priority_for(&self, n: u64) -> Priority {
        let total: u64 = self.0.iter().map(|(_, w)| u64::from(*w)).sum();
        let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 16;
        x %= total.max(1);
        for (p, w) in &self.0 {
            if x < u64::from(*w) {
                return *p;
            }
            x -= u64::from(*w);
        }
        self.0[0].0
    }
}

impl Default for PriorityMix {
    /// All `thuong`.
    fn default() -> Self {
        PriorityMix::only(Priority::Normal)
    }
}

impl FromStr for PriorityMix {
    type Err = LoadError;

    fn from_str(s: &str) -> Result<Self, LoadError> {
        let mut mix = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = match part.split_once(['=', ':']) {
                Some((n, w)) => (
                    n,
                    w.trim()
                        .parse::<u32>()
                        .map_err(|_| LoadError::new(format!("bad weight in {part:?}")))?,
                ),
                None => (part, 1),
            };
            let priority = name.parse().map_err(|e| LoadError::new(format!("{e}")))?;
            mix.push((priority, weight));
        }
        if mix.iter().map(|(_, w)| u64::from(*w)).sum::<u64>() == 0 {
            return Err(LoadError::new(format!("priority mix {s:?} has no weight")));
        }
        Ok(PriorityMix(mix))
    }
}

/// `thuong=90,khan=9,hoa-toc=1`: what [`FromStr`] reads.
impl fmt::Display for PriorityMix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (p, w)) in self.0.iter().enumerate() {
            write!(f, "{}{p}={w}", if i == 0 { "" } else { "," })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_parse_spread_by_weight_and_print_back() {
        let mix: PriorityMix = "thuong=90,khan=9,hoa-toc=1".parse().unwrap();
        assert_eq!(
            mix.0,
            vec![(Priority::Normal, 90), (Priority::Urgent, 9), (Priority::Express, 1)]
        );
        assert_eq!(mix.to_string().parse::<PriorityMix>().unwrap(), mix);
        let mut counts = [0u32; 5];
        for n in 0..10_000 {
            counts[mix.priority_for(n) as usize] += 1;
        }
        assert!((8_700..9_300).contains(&counts[0]), "{counts:?}");
        assert!((700..1_100).contains(&counts[1]), "{counts:?}");
        assert!((40..200).contains(&counts[3]), "{counts:?}");
        assert_eq!(
            "Hoa_Toc, 2".parse::<PriorityMix>().unwrap().0,
            [(Priority::Express, 1), (Priority::VeryUrgent, 1)]
        );
        let bogus = "bogus".parse::<PriorityMix>().unwrap_err().to_string();
        assert!(
            bogus.contains("unknown priority \"bogus\"") && bogus.contains("thuong (0)"),
            "{bogus}"
        );
        assert!("thuong=0".parse::<PriorityMix>().is_err());
        assert!("thuong=x".parse::<PriorityMix>().is_err());
    }
}
