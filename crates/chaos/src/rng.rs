//! A tiny deterministic PRNG (SplitMix64): kill moments, recipients,
//! payloads and skipped acks all come from one seed, printed at the start
//! so a run can be replayed with `--seed`.

/// SplitMix64.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }

    /// True with probability `percent`/100.
    pub(crate) fn percent(&mut self, percent: u32) -> bool {
        self.below(100) < percent as u64
    }

    /// An independent generator for a task.
    pub(crate) fn fork(&mut self) -> Rng {
        Rng(self.next_u64())
    }

    /// `n` random bytes.
    pub(crate) fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(n);
        out
    }
}

/// A seed from the clock and the process id.
pub(crate) fn seed_from_time() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut r = Rng::new(t.as_nanos() as u64 ^ (std::process::id() as u64) << 32);
    r.next_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_in_range() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        for _ in 0..1000 {
            let x = a.range(200, 1500);
            assert_eq!(x, b.range(200, 1500));
            assert!((200..=1500).contains(&x));
        }
        assert_eq!(Rng::new(1).bytes(13).len(), 13);
        assert_eq!(Rng::new(1).below(0), 0);
    }
}
