//! Attachments: metadata, and base64 streamed from the input to the caller's sink.

use std::io::BufRead;

use quick_xml::events::Event;
use ring::digest::{digest, Context, SHA256};

use super::{El, Parser};
use crate::b64::{DecodeFailure, Decoder};
use crate::error::{Error, Result};
use crate::model::*;

impl<R: BufRead> Parser<'_, R> {
    pub(super) fn attachment(&mut self, el: &El, empty: bool, index: usize) -> Result<Attachment> {
        let mut a = Attachment::default();
        let mut body: Option<(u64, [u8; 32])> = None;
        let path = format!("{}[{}]", self.child_path(&el.local), index + 1);
        a.extras = self.container(el, empty, |p, c, e| {
            match c.local.as_str() {
                "ContentId" => a.content_id = p.opt_text(c, e)?,
                "AttachmentName" => a.name = p.opt_text(c, e)?,
                "Description" => a.description = p.opt_text(c, e)?,
                "ContentType" => a.content_type = p.opt_text(c, e)?,
                "ContentTransferEncoded" => {
                    if body.is_some() {
                        return Err(p.invalid(&c.local, "a second ContentTransferEncoded in one Attachment"));
                    }
                    body = Some(p.base64(c, e, index)?);
                }
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        let (size, sha256) = body.unwrap_or_else(|| (0, sha256_of(digest(&SHA256, b""))));
        a.size = size;
        a.sha256 = sha256;
        self.sink.finish(index, &a).map_err(|source| Error::Attachment {
            element: path,
            index,
            action: "writing to the sink",
            source,
        })?;
        Ok(a)
    }

    /// Streams `ContentTransferEncoded`'s base64 text to the sink, decoding as it goes:
    /// the text is read straight from the input between markup, never as one event.
    fn base64(&mut self, el: &El, empty: bool, index: usize) -> Result<(u64, [u8; 32])> {
        let mut hasher = Context::new(&SHA256);
        let mut size = 0u64;
        let mut decoder = Decoder::new();
        if empty {
            return Ok((0, sha256_of(hasher.finish())));
        }
        // Errors name the attachment by position: …/Attachment[2]/ContentTransferEncoded.
        if let Some(last) = self.path.last_mut() {
            *last = format!("{last}[{}]", index + 1);
        }
        self.path.push(el.local.clone());
        loop {
            // Raw phase: base64 up to the next markup or reference.
            let guarded = self.reader.get_mut();
            guarded.streaming = true;
            let raw: std::io::Result<std::result::Result<(), DecodeFailure>> = (|| loop {
                let buf = guarded.fill_buf()?;
                if buf.is_empty() {
                    return Ok(Ok(()));
                }
                let stop = buf.iter().position(|&b| b == b'<' || b == b'&');
                let n = stop.unwrap_or(buf.len());
                let sink = &mut *self.sink;
                let pushed = decoder.push(&buf[..n], &mut |chunk: &[u8]| {
                    hasher.update(chunk);
                    size += chunk.len() as u64;
                    sink.write(index, chunk)
                });
                if let Err(e) = pushed {
                    return Ok(Err(e));
                }
                guarded.consume(n);
                if stop.is_some() {
                    return Ok(Ok(()));
                }
            })();
            self.reader.get_mut().streaming = false;
            match raw {
                Ok(Ok(())) => {}
                Ok(Err(failure)) => return Err(self.decode_failure(failure, index)),
                Err(io) => {
                    return Err(match self.reader.get_ref().tripped {
                        Some(which) => self.too_large(which),
                        None => Error::Io {
                            element: self.here(),
                            source: io,
                        },
                    })
                }
            }
            // Markup phase: the end tag, or something between base64 runs.
            let n = self.next()?;
            let more: Option<Vec<u8>> = match &n.ev {
                Event::End(_) => break,
                Event::GeneralRef(r) => {
                    let c = self.reference(r)?;
                    if !c.is_ascii_whitespace() {
                        return Err(self.invalid_b64(format!("character {c:?} from a reference")));
                    }
                    None
                }
                Event::CData(c) => Some(c.to_vec()),
                Event::Text(t) => Some(t.to_vec()),
                Event::Comment(_) | Event::PI(_) => None,
                Event::Start(_) | Event::Empty(_) => {
                    return Err(Error::Invalid {
                        element: self.here(),
                        reason: "an element inside base64 content".into(),
                    })
                }
                Event::Eof => return Err(self.not_xml("unexpected end of input")),
                Event::Decl(_) | Event::DocType(_) => return Err(self.not_xml("declaration inside an element")),
            };
            if let Some(bytes) = more {
                let sink = &mut *self.sink;
                decoder
                    .push(&bytes, &mut |chunk: &[u8]| {
                        hasher.update(chunk);
                        size += chunk.len() as u64;
                        sink.write(index, chunk)
                    })
                    .map_err(|f| self.decode_failure(f, index))?;
            }
        }
        let sink = &mut *self.sink;
        decoder
            .finish(&mut |chunk: &[u8]| {
                hasher.update(chunk);
                size += chunk.len() as u64;
                sink.write(index, chunk)
            })
            .map_err(|f| self.decode_failure(f, index))?;
        self.path.pop();
        if let Some(last) = self.path.last_mut() {
            if let Some(open) = last.find('[') {
                last.truncate(open);
            }
        }
        Ok((size, sha256_of(hasher.finish())))
    }

    fn invalid_b64(&self, what: String) -> Error {
        Error::Invalid {
            element: self.here(),
            reason: format!("{what} in base64 content"),
        }
    }

    fn decode_failure(&self, f: DecodeFailure, index: usize) -> Error {
        match f {
            DecodeFailure::Base64(offset, source) => Error::Base64 {
                element: self.here(),
                offset,
                source,
            },
            DecodeFailure::Sink(source) => Error::Attachment {
                element: self.here(),
                index,
                action: "writing to the sink",
                source,
            },
        }
    }
}

/// The 32 bytes of a SHA-256 digest.
fn sha256_of(d: ring::digest::Digest) -> [u8; 32] {
    d.as_ref().try_into().expect("SHA-256 is 32 bytes")
}
