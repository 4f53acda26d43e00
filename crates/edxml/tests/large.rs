//! A 200 MiB attachment (2 GiB with `TRUC_EDXML_LARGE_MIB=2048`) goes through the parser and the writer without being held in
//! memory. The bytes are generated on the fly (nothing large is in git), and the peak
//! resident set (VmHWM in /proc/self/status) is checked. This file holds one test so
//! that the process's peak is this test's alone.

use std::io::{self, BufRead, Read, Write};

use ring::digest::{Context as Sha256Context, SHA256};
use truc_edxml::*;

/// 200 MiB; `TRUC_EDXML_LARGE_MIB=2048` runs it with a 2 GiB attachment.
fn attachment_size() -> u64 {
    std::env::var("TRUC_EDXML_LARGE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200u64)
        << 20
}
/// Allowed growth of the peak resident set while 200 MiB stream through.
const BOUND: u64 = 32 << 20;

fn vm_hwm() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib << 10
}

/// Pseudo-random bytes, `len` of them, with their SHA-256.
struct Bytes {
    state: u64,
    left: u64,
    hash: Sha256Context,
}

impl Bytes {
    fn new(len: u64) -> Self {
        Bytes {
            state: 0x9E37_79B9_7F4A_7C15,
            left: len,
            hash: Sha256Context::new(&SHA256),
        }
    }
}

impl Read for Bytes {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize;
        for chunk in buf[..n].chunks_mut(8) {
            // xorshift64
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            chunk.copy_from_slice(&self.state.to_le_bytes()[..chunk.len()]);
        }
        self.hash.update(&buf[..n]);
        self.left -= n as u64;
        Ok(n)
    }
}

/// A package whose one attachment is `Bytes`, base64-encoded as it is read.
struct Package {
    head: Vec<u8>,
    body: Bytes,
    tail: Vec<u8>,
    buf: Vec<u8>,
    pos: usize,
    stage: u8,
}

impl Package {
    fn new(len: u64) -> Self {
        let head = r#"<?xml version="1.0" encoding="UTF-8"?>
<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016">
  <edXML:edXMLEnvelope xmlns:edXML="http://www.mic.gov.vn/TBT/QCVN_102_2016">
    <edXML:edXMLHeader><edXML:MessageHeader>
      <edXML:From><edXML:OrganId>000.00.00.G17</edXML:OrganId></edXML:From>
      <edXML:To><edXML:OrganId>000.00.00.H29</edXML:OrganId></edXML:To>
      <edXML:DocumentId>000.00.00.G17,2024/05/06,88/BXD-KHCN</edXML:DocumentId>
      <edXML:Subject>Hồ sơ thiết kế bản vẽ thi công (bản quét)</edXML:Subject>
    </edXML:MessageHeader></edXML:edXMLHeader>
    <edXML:edXMLBody><edXML:edXMLManifest version="1.0">
      <edXML:Reference><edXML:ContentId>cid:ban-ve</edXML:ContentId></edXML:Reference>
    </edXML:edXMLManifest></edXML:edXMLBody>
  </edXML:edXMLEnvelope>
  <AttachmentEncoded>
    <Attachment>
      <ContentId>cid:ban-ve</ContentId>
      <AttachmentName>ban-ve-thi-cong.pdf</AttachmentName>
      <ContentType>application/pdf</ContentType>
      <ContentTransferEncoded>"#;
        let tail = "</ContentTransferEncoded>\n    </Attachment>\n  </AttachmentEncoded>\n</edXML>\n";
        Package {
            head: head.into(),
            body: Bytes::new(len),
            tail: tail.into(),
            buf: Vec::new(),
            pos: 0,
            stage: 0,
        }
    }
}

impl Read for Package {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let src = self.fill_buf()?;
        let n = src.len().min(out.len());
        out[..n].copy_from_slice(&src[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for Package {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.pos == self.buf.len() && self.stage < 3 {
            self.pos = 0;
            self.buf.clear();
            match self.stage {
                0 => {
                    self.buf.extend_from_slice(&self.head);
                    self.stage = 1;
                }
                1 => {
                    // 57 bytes a line, as MIME writers wrap base64.
                    let mut raw = vec![0u8; 57 * 1024];
                    let n = self.body.read(&mut raw)?;
                    if n == 0 {
                        self.stage = 2;
                        continue;
                    }
                    for line in raw[..n].chunks(57) {
                        let mut text = String::new();
                        base64::Engine::encode_string(&base64::engine::general_purpose::STANDARD, line, &mut text);
                        self.buf.extend_from_slice(text.as_bytes());
                        self.buf.extend_from_slice(b"\r\n");
                    }
                }
                _ => {
                    self.buf.extend_from_slice(&self.tail);
                    self.stage = 3;
                }
            }
        }
        Ok(&self.buf[self.pos..])
    }

    fn consume(&mut self, amt: usize) {
        self.pos += amt;
    }
}

/// Counts and hashes what is written.
struct Hashing(u64, Sha256Context);

impl Write for Hashing {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        self.1.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct Generated(u64);

impl AttachmentSource for Generated {
    fn open(&mut self, _index: usize, _a: &Attachment) -> io::Result<Box<dyn Read + '_>> {
        Ok(Box::new(Bytes::new(self.0)))
    }
}

#[test]
fn a_large_attachment_streams_through_parser_and_writer_in_bounded_memory() {
    let size = attachment_size();
    let before = vm_hwm();

    // Parse: the sink hashes what it gets and keeps nothing.
    let mut input = Package::new(size);
    let mut got = Hashing(0, Sha256Context::new(&SHA256));
    let mut sink = |_: usize, chunk: &[u8]| got.write_all(chunk);
    let package = parse(&mut input, Limits::new(size * 2 + (1 << 20)), &mut sink).unwrap();
    let sent: [u8; 32] = input.body.hash.clone().finish().as_ref().try_into().unwrap();
    let received: [u8; 32] = got.1.clone().finish().as_ref().try_into().unwrap();
    assert_eq!(got.0, size);
    assert_eq!(received, sent);
    assert_eq!(package.attachments[0].size, size);
    assert_eq!(package.attachments[0].sha256, sent);

    // Write: the same package, its attachment read from a generator.
    let mut out = Hashing(0, Sha256Context::new(&SHA256));
    write(&package, &mut out, &mut Generated(size)).unwrap();
    assert!(out.0 > size / 3 * 4, "{} bytes written", out.0);

    let after = vm_hwm();
    let growth = after.saturating_sub(before);
    println!(
        "VmHWM before {} KiB, after {} KiB: peak grew by {} KiB while {} MiB were parsed and written",
        before >> 10,
        after >> 10,
        growth >> 10,
        size >> 20
    );
    assert!(
        growth < BOUND,
        "peak resident set grew by {} MiB (bound {} MiB)",
        growth >> 20,
        BOUND >> 20
    );

    // The measurement sees buffering: holding the attachment would have shown.
    let held = vec![1u8; 200 << 20];
    let control = vm_hwm().saturating_sub(before);
    assert!(control > 150 << 20, "control grew by {} MiB only", control >> 20);
    drop(held);
}
