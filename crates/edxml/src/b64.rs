//! Streaming base64: decoding attachment text chunk by chunk, encoding from a reader.

use std::io::{self, Read, Write};

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;

/// Lenient on padding (some writers omit it), strict on the alphabet.
const DECODER: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Base64 characters collected before a chunk is decoded (a multiple of 4).
const PENDING: usize = 64 * 1024;

/// Decodes base64 text given in arbitrary pieces (whitespace ignored), handing decoded
/// chunks to `out`. Memory stays at about [`PENDING`] bytes whatever the input size.
pub(crate) struct Decoder {
    pending: Vec<u8>,
    out: Vec<u8>,
    /// Base64 characters already decoded (for error offsets).
    done: u64,
    padded: bool,
}

/// A decoding failure: at which base64 character, and why.
pub(crate) enum DecodeFailure {
    Base64(u64, base64::DecodeError),
    Sink(io::Error),
}

impl Decoder {
    pub(crate) fn new() -> Self {
        Decoder {
            pending: Vec::with_capacity(PENDING),
            out: Vec::new(),
            done: 0,
            padded: false,
        }
    }

    pub(crate) fn push(
        &mut self,
        text: &[u8],
        out: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> Result<(), DecodeFailure> {
        for &b in text {
            if b.is_ascii_whitespace() {
                continue;
            }
            if self.padded && b != b'=' {
                let offset = self.done + self.pending.len() as u64;
                return Err(DecodeFailure::Base64(offset, base64::DecodeError::InvalidByte(0, b)));
            }
            if b == b'=' {
                self.padded = true;
            }
            self.pending.push(b);
            if self.pending.len() == PENDING && !self.padded {
                self.flush(out)?;
            }
        }
        Ok(())
    }

    fn flush(&mut self, out: &mut dyn FnMut(&[u8]) -> io::Result<()>) -> Result<(), DecodeFailure> {
        self.out.clear();
        let done = self.done;
        DECODER
            .decode_vec(&self.pending, &mut self.out)
            .map_err(|e| DecodeFailure::Base64(done + offset_of(&e), e))?;
        self.done += self.pending.len() as u64;
        self.pending.clear();
        out(&self.out).map_err(DecodeFailure::Sink)
    }

    pub(crate) fn finish(mut self, out: &mut dyn FnMut(&[u8]) -> io::Result<()>) -> Result<(), DecodeFailure> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.flush(out)
    }
}

fn offset_of(e: &base64::DecodeError) -> u64 {
    match e {
        base64::DecodeError::InvalidByte(o, _) | base64::DecodeError::InvalidLastSymbol(o, _) => *o as u64,
        _ => 0,
    }
}

/// Bytes read from the source per encoded chunk (a multiple of 3: no padding mid-stream).
const RAW_CHUNK: usize = 48 * 1024;

/// Encodes everything `source` yields as one base64 text written to `out`, chunk by chunk.
/// Returns `Err(Ok(e))` for a source failure, `Err(Err(e))` for an output failure.
pub(crate) fn encode(source: &mut dyn Read, out: &mut dyn Write) -> Result<(), Result<io::Error, io::Error>> {
    let mut raw = vec![0u8; RAW_CHUNK];
    let mut text = String::with_capacity(RAW_CHUNK / 3 * 4 + 4);
    loop {
        let mut filled = 0;
        while filled < RAW_CHUNK {
            match source.read(&mut raw[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Ok(e)),
            }
        }
        if filled == 0 {
            return Ok(());
        }
        text.clear();
        STANDARD.encode_string(&raw[..filled], &mut text);
        out.write_all(text.as_bytes()).map_err(Err)?;
        if filled < RAW_CHUNK {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(text: &[u8], piece: usize) -> Result<Vec<u8>, u64> {
        let mut d = Decoder::new();
        let mut got = Vec::new();
        let mut sink = |b: &[u8]| {
            got.extend_from_slice(b);
            Ok(())
        };
        for p in text.chunks(piece) {
            d.push(p, &mut sink).map_err(|e| match e {
                DecodeFailure::Base64(o, _) => o,
                DecodeFailure::Sink(_) => u64::MAX,
            })?;
        }
        d.finish(&mut sink).map_err(|e| match e {
            DecodeFailure::Base64(o, _) => o,
            DecodeFailure::Sink(_) => u64::MAX,
        })?;
        Ok(got)
    }

    #[test]
    fn round_trip_across_chunk_boundaries() {
        let data: Vec<u8> = (0..300_001u32).map(|i| (i * 7 + i / 13) as u8).collect();
        let mut text = Vec::new();
        encode(&mut data.as_slice(), &mut text).unwrap();
        // Line breaks as MIME writers put them.
        let wrapped: Vec<u8> = text
            .chunks(76)
            .flat_map(|l| l.iter().copied().chain(*b"\r\n"))
            .collect();
        for piece in [1, 7, 4096, 1 << 20] {
            assert_eq!(decode_in_pieces(&wrapped, piece).unwrap(), data);
        }
    }

    #[test]
    fn refuses_bad_characters_and_data_after_padding() {
        assert_eq!(decode_in_pieces(b"QUJD!", 3), Err(4));
        assert!(decode_in_pieces(b"QQ==QUJD", 3).is_err());
        assert_eq!(decode_in_pieces(b"QQ", 3).unwrap(), b"A");
    }
}
