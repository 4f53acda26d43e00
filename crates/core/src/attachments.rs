//! Several attachments in one payload: the manifest in the signed header
//! (`DocumentHeader.attachments`) and the check of each attachment's bytes.
//!
//! The payload is the attachments' bytes one after another in manifest
//! order. The header's `payload_size` and `payload_sha256` stay those of the
//! whole payload, so the one signature binds every attachment and every path
//! a payload takes (inline, chunked uploads from an offset, downloads from an
//! offset, deduplication by digest) is unchanged. What this module adds:
//!
//! - [`check_manifest`]: the manifest describes the payload exactly
//!   (contiguous ranges from 0 adding up to `payload_size`, unique content
//!   ids, plain file names, 32-byte digests);
//! - [`RangeHasher`]: hashes each attachment's range while the bytes go by,
//!   in any chunking, holding nothing but one SHA-256 state, so a hub or a
//!   receiver checks every attachment in the same pass as the whole payload.

use std::collections::HashSet;

use truc_proto::v1::{Attachment, DocumentHeader};

use crate::CoreError;

/// Most attachments in one document.
pub const MAX_ATTACHMENTS: usize = 1000;
/// Longest attachment name, in bytes.
pub const MAX_NAME_BYTES: usize = 255;
/// Longest attachment description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 4000;
/// Longest media type or content id, in bytes.
pub const MAX_TOKEN_BYTES: usize = 255;

/// How an attachment is named in messages: its position from 1, its name
/// and its content id.
pub fn describe(index: usize, a: &Attachment) -> String {
    let mut s = format!("attachment {}", index + 1);
    match (a.name.is_empty(), a.content_id.is_empty()) {
        (false, false) => s += &format!(" ({:?}, content id {:?})", a.name, a.content_id),
        (false, true) => s += &format!(" ({:?})", a.name),
        (true, false) => s += &format!(" (content id {:?})", a.content_id),
        (true, true) => {}
    }
    s
}

/// A plain file name: not empty, no directory separators or NUL, not `.` or
/// `..`, at most [`MAX_NAME_BYTES`].
pub fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME_BYTES && !name.contains(['/', '\\', '\0']) && name != "." && name != ".."
}

/// Check that the header's attachments describe its payload exactly. A
/// header without attachments passes (a payload of its own, as before).
pub fn check_manifest(header: &DocumentHeader) -> Result<(), CoreError> {
    let list = &header.attachments;
    if list.is_empty() {
        return Ok(());
    }
    let bad = |m: String| CoreError::MalformedHeader(m);
    if list.len() > MAX_ATTACHMENTS {
        return Err(bad(format!("{} attachments; at most {MAX_ATTACHMENTS}", list.len())));
    }
    let mut ids = HashSet::with_capacity(list.len());
    let mut next = 0u64;
    for (i, a) in list.iter().enumerate() {
        let who = describe(i, a);
        if !a.name.is_empty() && !is_plain_file_name(&a.name) {
            return Err(bad(format!(
                "{who}: the name must be a plain file name (no '/', '\\', NUL, not \".\" or \"..\") of at most \
                 {MAX_NAME_BYTES} bytes"
            )));
        }
        if a.content_id.len() > MAX_TOKEN_BYTES || a.content_id.chars().any(char::is_control) {
            return Err(bad(format!(
                "{who}: the content id must be at most {MAX_TOKEN_BYTES} bytes without control characters"
            )));
        }
        if !a.content_id.is_empty() && !ids.insert(a.content_id.as_str()) {
            return Err(bad(format!("{who}: content id {:?} is used twice", a.content_id)));
        }
        if a.media_type.len() > MAX_TOKEN_BYTES || a.media_type.chars().any(char::is_control) {
            return Err(bad(format!(
                "{who}: the media type must be at most {MAX_TOKEN_BYTES} bytes without control characters"
            )));
        }
        if a.description.chars().count() > MAX_DESCRIPTION_CHARS {
            return Err(bad(format!(
                "{who}: the description is longer than {MAX_DESCRIPTION_CHARS} characters"
            )));
        }
        if a.sha256.len() != 32 {
            return Err(bad(format!("{who}: sha256 must be 32 bytes")));
        }
        if a.offset != next {
            return Err(bad(format!(
                "{who}: starts at offset {}, but the attachments before it end at {next}: attachments are the \
                 payload's bytes one after another, from offset 0, with nothing between them",
                a.offset
            )));
        }
        next = next
            .checked_add(a.size)
            .ok_or_else(|| bad(format!("{who}: size {} is too large", a.size)))?;
    }
    if next != header.payload_size {
        return Err(bad(format!(
            "the attachments add up to {next} bytes, but payload_size is {}: the payload must be exactly the \
             attachments one after another",
            header.payload_size
        )));
    }
    if let [only] = list.as_slice() {
        if only.sha256 != header.payload_sha256 {
            return Err(bad(format!(
                "{}: its sha256 differs from payload_sha256, but it is the whole payload",
                describe(0, only)
            )));
        }
    }
    Ok(())
}

/// The attachment sizes of a header, in order (for [`RangeHasher::new`]).
pub fn sizes(header: &DocumentHeader) -> Vec<u64> {
    header.attachments.iter().map(|a| a.size).collect()
}

/// Whether checking the whole payload's digest already checks every
/// attachment: no attachments, or one that is the whole payload (whose
/// digest [`check_manifest`] requires to be `payload_sha256`).
pub fn whole_payload_suffices(header: &DocumentHeader) -> bool {
    header.attachments.len() <= 1
}

/// Hashes each range of a payload (the attachments, by their sizes) as the
/// payload's bytes go by, in any chunking; memory is one SHA-256 state and
/// one digest per range.
///
/// Given the expected digests ([`RangeHasher::expecting`]), each range is
/// checked the moment its last byte is hashed, so a stream is refused at the
/// attachment that differs, not at its end.
pub struct RangeHasher {
    sizes: Vec<u64>,
    expected: Option<Vec<Attachment>>,
    /// The range being hashed (== sizes.len() when all are done).
    index: usize,
    /// Bytes of the current range hashed so far.
    in_range: u64,
    /// Position in the payload of the next byte.
    position: u64,
    ctx: ring::digest::Context,
    digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for RangeHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RangeHasher")
            .field("ranges", &self.sizes.len())
            .field("index", &self.index)
            .field("position", &self.position)
            .finish()
    }
}

impl RangeHasher {
    /// Hash ranges of these sizes, from payload offset 0; digests are
    /// collected, not checked (see [`RangeHasher::digests`]).
    pub fn new(sizes: Vec<u64>) -> Self {
        let mut h = RangeHasher {
            sizes,
            expected: None,
            index: 0,
            in_range: 0,
            position: 0,
            ctx: ring::digest::Context::new(&ring::digest::SHA256),
            digests: Vec::new(),
        };
        // Empty attachments at the start are complete before any byte.
        let _ = h.close_empty();
        h
    }

    /// Hash the attachments of `header` and check each against its signed
    /// SHA-256 as soon as its last byte is hashed. (An empty attachment at
    /// the start is checked on the first [`RangeHasher::update`] or at
    /// [`RangeHasher::finish`].)
    pub fn expecting(header: &DocumentHeader) -> Self {
        let mut h = Self::new(Vec::new());
        h.sizes = sizes(header);
        h.expected = Some(header.attachments.clone());
        h.digests.clear();
        h
    }

    /// Position in the payload of the next byte.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The digests of the ranges completed so far, in order.
    pub fn digests(&self) -> &[[u8; 32]] {
        &self.digests
    }

    /// Start at the range that payload offset `offset` falls in (the next
    /// one, when `offset` is where a range ends): the ranges before it are
    /// skipped, neither hashed nor checked nor in [`RangeHasher::digests`].
    /// Returns where that range starts: feed the bytes from there. Only
    /// before the first byte is hashed.
    pub fn skip_to_range_of(&mut self, offset: u64) -> u64 {
        let mut start = 0u64;
        while let Some(&size) = self.sizes.get(self.index) {
            if start + size > offset {
                break;
            }
            start += size;
            self.index += 1;
        }
        self.position = start;
        self.in_range = 0;
        start
    }

    /// Hash the next bytes of the payload. With expected digests, the first
    /// range completed that differs is an error naming its attachment
    /// (later calls keep failing the same way). Bytes past the last range
    /// are an error.
    pub fn update(&mut self, mut data: &[u8]) -> Result<(), CoreError> {
        self.close_empty()?;
        while !data.is_empty() {
            let Some(&size) = self.sizes.get(self.index) else {
                return Err(CoreError::PayloadMismatch(format!(
                    "more bytes than the attachments' {} in all",
                    self.sizes.iter().sum::<u64>()
                )));
            };
            let take = (size - self.in_range).min(data.len() as u64) as usize;
            self.ctx.update(&data[..take]);
            self.in_range += take as u64;
            self.position += take as u64;
            data = &data[take..];
            if self.in_range == size {
                self.close()?;
                self.close_empty()?;
            }
        }
        Ok(())
    }

    /// Every byte has been hashed: the digest of each range, in order. An
    /// error if bytes are missing (or, with expected digests, one differs).
    pub fn finish(mut self) -> Result<Vec<[u8; 32]>, CoreError> {
        self.close_empty()?;
        if self.index < self.sizes.len() {
            let total: u64 = self.sizes.iter().sum();
            return Err(CoreError::PayloadMismatch(format!(
                "the payload ends at {} bytes, the attachments take {total}",
                self.position
            )));
        }
        Ok(self.digests)
    }

    /// Close the current range if it is complete and empty, and any empty
    /// ones after it.
    fn close_empty(&mut self) -> Result<(), CoreError> {
        while self.sizes.get(self.index) == Some(&0) {
            self.close()?;
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), CoreError> {
        let ctx = std::mem::replace(&mut self.ctx, ring::digest::Context::new(&ring::digest::SHA256));
        let mut digest = [0u8; 32];
        digest.copy_from_slice(ctx.finish().as_ref());
        if let Some(a) = self.expected.as_ref().and_then(|e| e.get(self.index)) {
            if a.sha256.as_slice() != digest {
                let e = mismatch(self.index, a);
                // Stay here: every later byte is refused.
                self.expected = None;
                self.sizes.truncate(self.index);
                return Err(e);
            }
        }
        self.digests.push(digest);
        self.index += 1;
        self.in_range = 0;
        Ok(())
    }
}

/// The refusal of attachment `index` whose bytes differ from its signed
/// SHA-256.
pub fn mismatch(index: usize, a: &Attachment) -> CoreError {
    CoreError::PayloadMismatch(format!(
        "{}: its bytes (offset {}, {} bytes) differ from its signed SHA-256",
        describe(index, a),
        a.offset,
        a.size
    ))
}

/// Compare digests computed by a [`RangeHasher`] without expectations with
/// the header's attachments; the first that differs is named.
pub fn check_digests(header: &DocumentHeader, digests: &[[u8; 32]]) -> Result<(), CoreError> {
    if digests.len() != header.attachments.len() {
        return Err(CoreError::PayloadMismatch(format!(
            "{} attachment digests for {} attachments",
            digests.len(),
            header.attachments.len()
        )));
    }
    for (i, (a, d)) in header.attachments.iter().zip(digests).enumerate() {
        if a.sha256.as_slice() != d {
            return Err(mismatch(i, a));
        }
    }
    Ok(())
}

/// Check every attachment of an inline payload against its signed SHA-256.
pub fn check_inline(header: &DocumentHeader, payload: &[u8]) -> Result<(), CoreError> {
    if whole_payload_suffices(header) {
        return Ok(());
    }
    let mut h = RangeHasher::expecting(header);
    h.update(payload)?;
    h.finish().map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn att(name: &str, offset: u64, bytes: &[u8]) -> Attachment {
        Attachment {
            content_id: format!("cid:{name}"),
            name: name.into(),
            offset,
            size: bytes.len() as u64,
            sha256: crate::sha256(bytes).to_vec(),
            ..Default::default()
        }
    }

    fn header(parts: &[(&str, &[u8])]) -> DocumentHeader {
        let mut payload = Vec::new();
        let mut list = Vec::new();
        for (name, bytes) in parts {
            list.push(att(name, payload.len() as u64, bytes));
            payload.extend_from_slice(bytes);
        }
        DocumentHeader {
            attachments: list,
            payload_size: payload.len() as u64,
            payload_sha256: crate::sha256(&payload).to_vec(),
            ..Default::default()
        }
    }

    const PARTS: [(&str, &[u8]); 4] = [
        ("cong-van.pdf", b"%PDF-1.4 cong van"),
        ("trong.txt", b""),
        ("phu-luc.docx", b"PK\x03\x04 phu luc"),
        ("bang.xlsx", b"PK\x03\x04 bang so lieu"),
    ];

    fn payload() -> Vec<u8> {
        PARTS.iter().flat_map(|(_, b)| b.iter().copied()).collect()
    }

    #[test]
    fn a_manifest_must_describe_the_payload_exactly() {
        check_manifest(&header(&PARTS)).unwrap();
        check_manifest(&DocumentHeader::default()).unwrap();
        type Case = (fn(&mut DocumentHeader), &'static str);
        let cases: Vec<Case> = vec![
            (|h| h.attachments[2].offset += 1, "attachment 3 (\"phu-luc.docx\""),
            (|h| h.attachments[0].offset = 1, "starts at offset 1"),
            (|h| h.payload_size += 1, "add up to"),
            (
                |h| h.attachments[3].content_id = "cid:cong-van.pdf".into(),
                "used twice",
            ),
            (|h| h.attachments[1].name = "../etc/passwd".into(), "plain file name"),
            (|h| h.attachments[1].name = "..".into(), "plain file name"),
            (|h| h.attachments[1].name = "a\\b".into(), "plain file name"),
            (
                |h| {
                    h.attachments[0].sha256.pop();
                },
                "32 bytes",
            ),
            (|h| h.attachments[0].description = "x".repeat(4001), "description"),
            (|h| h.attachments[0].media_type = "a\nb".into(), "media type"),
        ];
        for (mutate, want) in cases {
            let mut h = header(&PARTS);
            mutate(&mut h);
            let e = check_manifest(&h).unwrap_err().to_string();
            assert!(e.contains(want), "{e:?} should mention {want:?}");
        }
        // One attachment is the whole payload: same digest.
        let mut one = header(&PARTS[..1]);
        check_manifest(&one).unwrap();
        one.attachments[0].sha256 = vec![0; 32];
        let e = check_manifest(&one).unwrap_err().to_string();
        assert!(e.contains("differs from payload_sha256"), "{e}");
    }

    #[test]
    fn ranges_hash_alike_in_any_chunking() {
        let h = header(&PARTS);
        let p = payload();
        let want: Vec<[u8; 32]> = PARTS.iter().map(|(_, b)| crate::sha256(b)).collect();
        for chunk in [1, 2, 3, 7, 16, p.len()] {
            let mut r = RangeHasher::new(sizes(&h));
            for c in p.chunks(chunk) {
                r.update(c).unwrap();
            }
            assert_eq!(r.position(), p.len() as u64);
            assert_eq!(r.finish().unwrap(), want, "chunk {chunk}");
            let mut r = RangeHasher::expecting(&h);
            for c in p.chunks(chunk) {
                r.update(c).unwrap();
            }
            r.finish().unwrap();
        }
        check_inline(&h, &p).unwrap();
        check_digests(&h, &want).unwrap();
    }

    #[test]
    fn a_changed_attachment_is_named_when_its_last_byte_passes() {
        let h = header(&PARTS);
        let mut p = payload();
        // A byte of the third attachment ("phu-luc.docx").
        let at = h.attachments[2].offset as usize + 3;
        p[at] ^= 1;
        let mut r = RangeHasher::expecting(&h);
        // Everything up to the third's last byte but one passes…
        let end = (h.attachments[2].offset + h.attachments[2].size) as usize;
        r.update(&p[..end - 1]).unwrap();
        // …and its last byte names it.
        let e = r.update(&p[end - 1..]).unwrap_err().to_string();
        assert!(
            e.contains("attachment 3 (\"phu-luc.docx\", content id \"cid:phu-luc.docx\")"),
            "{e}"
        );
        assert!(r.update(&p[end..]).is_err(), "a refused stream stays refused");
        let e = check_inline(&h, &p).unwrap_err().to_string();
        assert!(e.contains("attachment 3"), "{e}");
        // Computed without expectations, the comparison names the same one.
        let mut r = RangeHasher::new(sizes(&h));
        r.update(&p).unwrap();
        let e = check_digests(&h, &r.finish().unwrap()).unwrap_err().to_string();
        assert!(e.contains("attachment 3"), "{e}");
    }

    #[test]
    fn a_resumed_stream_starts_at_its_range() {
        let h = header(&PARTS);
        let p = payload();
        let (a, c) = (&h.attachments[0], &h.attachments[2]);
        // Inside the third attachment: hashed again from its start; the
        // empty second one (ending where the first does) is skipped.
        let mut r = RangeHasher::expecting(&h);
        let at = c.offset + 2;
        assert_eq!(r.skip_to_range_of(at), c.offset);
        r.update(&p[c.offset as usize..]).unwrap();
        assert_eq!(r.finish().unwrap().len(), 2, "the third and fourth");
        // At a boundary: the next range, nothing to hash again.
        let mut r = RangeHasher::expecting(&h);
        assert_eq!(r.skip_to_range_of(a.size), a.size);
        // A changed byte after the resume point is still found.
        let mut bad = p.clone();
        bad[c.offset as usize + 5] ^= 1;
        let mut r = RangeHasher::expecting(&h);
        r.skip_to_range_of(at);
        let e = r.update(&bad[c.offset as usize..]).unwrap_err().to_string();
        assert!(e.contains("attachment 3"), "{e}");
    }

    #[test]
    fn too_few_or_too_many_bytes() {
        let h = header(&PARTS);
        let p = payload();
        let mut r = RangeHasher::new(sizes(&h));
        r.update(&p[..p.len() - 1]).unwrap();
        assert!(r.finish().unwrap_err().to_string().contains("ends at"));
        let mut r = RangeHasher::new(sizes(&h));
        let mut more = p.clone();
        more.push(0);
        assert!(r.update(&more).unwrap_err().to_string().contains("more bytes"));
        // Empty attachments at both ends are digests of nothing.
        let h = header(&[("a", b""), ("b", b"x"), ("c", b"")]);
        let mut r = RangeHasher::expecting(&h);
        r.update(b"x").unwrap();
        assert_eq!(r.finish().unwrap().len(), 3);
    }
}
