//! Bytes as lower-case hexadecimal and back: digests, keys and signatures
//! in file names, JSON and tokens.

use thiserror::Error;

/// Why a text is not hexadecimal bytes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HexError {
    /// Two digits make a byte; one is left over.
    #[error("odd number of hex digits ({0})")]
    OddLength(usize),
    /// A character that is not a hex digit, at this byte offset.
    #[error("not hexadecimal at offset {0}")]
    NotHex(usize),
}

/// Lower-case hexadecimal of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// The bytes written as hexadecimal in `s` (either case), as [`hex`]
/// writes them.
pub fn unhex(s: &str) -> Result<Vec<u8>, HexError> {
    let b = s.as_bytes();
    if b.len() % 2 != 0 {
        return Err(HexError::OddLength(b.len()));
    }
    let digit = |at: usize| (b[at] as char).to_digit(16).ok_or(HexError::NotHex(at));
    (0..b.len())
        .step_by(2)
        .map(|at| Ok((digit(at)? << 4 | digit(at + 1)?) as u8))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_either_case_and_refusals() {
        let bytes = [0u8, 1, 0x7f, 0xab, 0xff];
        assert_eq!(hex(&bytes), "00017fabff");
        assert_eq!(unhex(&hex(&bytes)), Ok(bytes.to_vec()));
        assert_eq!(unhex("ABff"), Ok(vec![0xab, 0xff]));
        assert_eq!(unhex(""), Ok(vec![]));
        assert_eq!(unhex("abc"), Err(HexError::OddLength(3)));
        assert_eq!(unhex("0g"), Err(HexError::NotHex(1)));
        // A sign is no digit (u8::from_str_radix would take "+f").
        assert_eq!(unhex("+f"), Err(HexError::NotHex(0)));
    }
}
