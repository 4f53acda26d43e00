//! Large edXML packages through the real `truc` and `trucd`, sizes from
//! the environment (issue 15 asks for 1 GiB and 2 GiB; CI runs smaller):
//!
//! - `TRUC_EDXML_LARGE_MIB` (default 192): the suite's new document with
//!   its three attachments and one of this many MiB goes `truc send
//!   --edxml` → hub → `truc inbox --format edxml` and compares equal, the
//!   large attachment byte for byte (SHA-256); the time and peak memory of
//!   both commands are printed, and the peaks stay under a bound that does
//!   not grow with the size.
//! - `TRUC_EDXML_HUGE_BASE64_MIB` (default 256; 2048 is the 2 GiB):
//!   a package whose one attachment is that much base64, written into a
//!   named pipe as `truc send --edxml` reads it (never on disk whole, nor
//!   in the test's memory), with a fault in its last four characters: truc
//!   streams it all, refuses it naming the element and the offset of the
//!   fault, in bounded memory, removes what it decoded from TMPDIR, and the
//!   hub stores nothing.
//!
//! `TRUC_EDXML_LARGE_MIB=1024 TRUC_EDXML_HUGE_BASE64_MIB=2048 cargo test -p
//! truc --test edxml_large -- --nocapture` is the full-size run (README,
//! "Connecting a QLVB&ĐH system", has its figures); it needs about 6 GiB
//! free in TMPDIR.

mod support;

use std::io::{Read, Write};
use std::path::Path;
use std::time::Instant;

use support::edxml::{difference_after, fixture, read, read_digests, receive_edxml};
use support::{run_measured, text, truc_command, Hub, G22, H26};
use truc_edxml::{Attachment, AttachmentSource, Reference};

const MIB: u64 = 1 << 20;

/// A size in MiB from the environment, or `default`.
fn mib(var: &str, default: u64) -> u64 {
    match std::env::var(var) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{var}={v:?}: a number of MiB")),
        Err(_) => default,
    }
}

/// The peak resident set either command may reach, whatever the size: the
/// chunked transfer's buffers, the edXML reader's and writer's; holding a
/// 192 MiB attachment (the default) would pass it.
const PEAK_BOUND_KIB: u64 = 128 * 1024;

/// `len` bytes that do not repeat within a block and differ from block to
/// block, made as they are read: a fixed 1 MiB pseudo-random block with the
/// block's number in its first 8 bytes.
struct Generated {
    block: Vec<u8>,
    len: u64,
    at: u64,
}

impl Generated {
    fn new(len: u64) -> Self {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let block = (0..MIB)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        Generated { block, len, at: 0 }
    }
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.len - self.at;
        if left == 0 {
            return Ok(0);
        }
        let in_block = (self.at % MIB) as usize;
        if in_block == 0 {
            self.block[..8].copy_from_slice(&(self.at / MIB).to_le_bytes());
        }
        let n = buf.len().min(self.block.len() - in_block).min(left as usize);
        buf[..n].copy_from_slice(&self.block[in_block..in_block + n]);
        self.at += n as u64;
        Ok(n)
    }
}

/// The small attachments from memory, then the large one generated.
struct Source {
    small: Vec<Vec<u8>>,
    large: u64,
}

impl AttachmentSource for Source {
    fn open(&mut self, index: usize, _: &Attachment) -> std::io::Result<Box<dyn Read + '_>> {
        Ok(match self.small.get(index) {
            Some(bytes) => Box::new(bytes.as_slice()),
            None => Box::new(Generated::new(self.large)),
        })
    }
}

/// `truc args` as `who`, timed and its peak memory sampled: (seconds, KiB).
fn measured(hub: &Hub, who: &str, args: &[&str]) -> (f64, u64) {
    let started = Instant::now();
    let (o, kib) = run_measured(truc_command(hub.tmp.path(), &hub.as_who(who, args)));
    let secs = started.elapsed().as_secs_f64();
    assert!(o.status.success(), "{args:?}: {}", text(&o));
    (secs, kib)
}

#[test]
fn a_large_attachment_among_three_round_trips_in_bounded_memory() {
    let size = mib("TRUC_EDXML_LARGE_MIB", 192) * MIB;
    let hub = Hub::start();
    // The suite's new document, with a fourth attachment of `size` bytes.
    let sent_small = fixture("suite/doc_0_new_prefixed.edxml");
    let (mut p, small) = read(&sent_small);
    let (cid, name, kind) = ("cid:ban-do", "Bản đồ hiện trạng lưu trữ.tif", "image/tiff");
    p.manifest.as_mut().unwrap().references.push(Reference {
        content_id: Some(cid.into()),
        content_type: Some(kind.into()),
        description: Some("Bản đồ số hoá hiện trạng kho lưu trữ (ảnh quét độ phân giải cao)".into()),
        attachment_name: Some(name.into()),
        ..Reference::default()
    });
    p.attachments.push(Attachment {
        content_id: Some(cid.into()),
        name: Some(name.into()),
        description: Some("Bản đồ số hoá hiện trạng kho lưu trữ (ảnh quét độ phân giải cao)".into()),
        content_type: Some(kind.into()),
        ..Attachment::default()
    });
    let package = hub.path("large.edxml");
    let out = std::io::BufWriter::with_capacity(MIB as usize, std::fs::File::create(&package).unwrap());
    let mut source = Source {
        small: small.0,
        large: size,
    };
    truc_edxml::write(&p, out, &mut source).unwrap().flush().unwrap();
    let package_bytes = std::fs::metadata(&package).unwrap().len();

    let before = truc_core::now_unix_ms();
    let (send_s, send_kib) = measured(&hub, G22, &["send", "--edxml", &package]);
    let dir = hub.path("inbox-large");
    let (inbox_s, inbox_kib) = measured(&hub, H26, &["inbox", "--format", "edxml", "--out", &dir]);
    let got = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "edxml"))
        .expect("the package received");
    // The same field by field, every attachment by size and SHA-256.
    if let Some(d) = difference_after(&hub, &got, Path::new(&package), before, |_| {}) {
        panic!("{}: differs from what was sent: {d}", got.display());
    }
    let q = read_digests(&got);
    assert_eq!(q.attachments[3].size, size);
    // A changed byte of the large one would show.
    let d = difference_after(&hub, &got, Path::new(&package), before, |q| {
        q.attachments[3].sha256[31] ^= 1
    })
    .expect("a changed attachment is a difference");
    assert!(d.element.contains("Attachment[4]"), "{d}");

    let report = format!(
        "edXML round trip: attachment {} MiB (+3 small), package {:.1} MiB: truc send --edxml {send_s:.1} s, peak \
         {:.1} MiB; truc inbox --format edxml {inbox_s:.1} s, peak {:.1} MiB",
        size / MIB,
        package_bytes as f64 / MIB as f64,
        send_kib as f64 / 1024.0,
        inbox_kib as f64 / 1024.0
    );
    eprintln!("{report}");
    assert!(send_kib < PEAK_BOUND_KIB && inbox_kib < PEAK_BOUND_KIB, "{report}");
    // What the commands decoded and staged is gone; the package stays.
    std::fs::remove_file(&package).unwrap();
    std::fs::remove_file(&got).unwrap();
}

#[test]
fn a_huge_base64_attachment_is_streamed_and_refused_in_bounded_memory() {
    let base64_len = mib("TRUC_EDXML_HUGE_BASE64_MIB", 256) * MIB;
    let hub = Hub::start();
    let before = hub.json("ops", &["ops", "status"])["tree_size"].as_u64().unwrap();
    // The package: the suite's new document with one attachment of
    // `base64_len` characters, written into a pipe as truc reads it.
    let good = std::fs::read_to_string(fixture("suite/doc_0_new_prefixed.edxml")).unwrap();
    let open = "<ContentTransferEncoded>";
    let first = good.find(open).unwrap() + open.len();
    let first_end = first + good[first..].find("</ContentTransferEncoded>").unwrap();
    // Only the first attachment (the others and their references go).
    let last = good.find("    <Attachment>\n      <ContentId>cid:pl-1").unwrap();
    let tail = &good[good.find("  </AttachmentEncoded>").unwrap()..];
    let cut_refs = |s: &str| {
        let a = s
            .find("        <edXML:Reference xmlns:xlink=\"http://www.w3.org/1999/xlink\" xlink:href=\"cid:pl-1\">")
            .unwrap();
        let b = s.find("      </edXML:edXMLManifest>").unwrap();
        format!("{}{}", &s[..a], &s[b..])
    };
    let head = cut_refs(&good[..first]);
    let after = format!("{}{}", &good[first_end..last], tail);

    let pipe = hub.path("huge.edxml");
    let made = std::process::Command::new("mkfifo")
        .arg(&pipe)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let writer = {
        let pipe = pipe.clone();
        std::thread::spawn(move || -> std::io::Result<u64> {
            let mut w = std::fs::OpenOptions::new().write(true).open(&pipe)?;
            w.write_all(head.as_bytes())?;
            // Valid base64 in lines of 76, 1 MiB at a time; the last four
            // characters are not base64.
            let line: String = (0..76)
                .map(|i| b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[(i * 7) % 64] as char)
                .collect();
            let mut block = String::new();
            while block.len() < MIB as usize {
                block.push_str(&line);
                block.push('\n');
            }
            let per_block = (block.len() / 77 * 76) as u64;
            let mut chars = 0u64;
            while chars + per_block <= base64_len - 4 {
                w.write_all(block.as_bytes())?;
                chars += per_block;
            }
            let rest = (base64_len - 4 - chars) as usize;
            let mut last = String::new();
            for (i, c) in line.chars().cycle().take(rest).enumerate() {
                if i > 0 && i % 76 == 0 {
                    last.push('\n');
                }
                last.push(c);
            }
            w.write_all(last.as_bytes())?;
            w.write_all(b"!!!!")?;
            // The client stops at the first bad character and may close
            // the pipe before the rest of the package is written: that is
            // not a short read (the error it prints names the character).
            match w.write_all(after.as_bytes()) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                other => other?,
            }
            Ok(base64_len)
        })
    };
    let tmpdir = hub.path("tmpdir");
    std::fs::create_dir(&tmpdir).unwrap();
    let mut cmd = truc_command(hub.tmp.path(), &hub.as_who(G22, &["send", "--edxml", &pipe]));
    cmd.env("TMPDIR", &tmpdir);
    let started = Instant::now();
    let (o, kib) = run_measured(cmd);
    let secs = started.elapsed().as_secs_f64();
    let written = writer.join().unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert_eq!(written.ok(), Some(base64_len), "the whole package was read");
    let at = format!(
        "edXML/AttachmentEncoded/Attachment[1]/ContentTransferEncoded: base64 does not decode (at base64 character \
         {})",
        base64_len - 4
    );
    assert!(t.contains(&at) && t.contains("nothing was sent"), "{t}");
    let report = format!(
        "{} MiB of base64 through a pipe: refused after {secs:.1} s at its last characters, truc send --edxml peak \
         {:.1} MiB",
        base64_len / MIB,
        kib as f64 / 1024.0
    );
    eprintln!("{report}");
    assert!(kib < PEAK_BOUND_KIB, "{report}");
    // What was decoded is gone from TMPDIR; the hub has nothing.
    let left: Vec<_> = std::fs::read_dir(&tmpdir).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(left.is_empty(), "left in TMPDIR: {left:?}");
    assert_eq!(
        hub.json("ops", &["ops", "status"])["tree_size"].as_u64().unwrap(),
        before
    );
    let storage = hub.json("ops", &["ops", "storage"]);
    assert_eq!(storage["uploads_incomplete"], 0, "{storage}");
    assert!(receive_edxml(&hub, H26, &[]).documents.is_empty());
}
