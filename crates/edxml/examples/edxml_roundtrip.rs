//! Reads an edXML package, prints what it holds, and writes it back to standard output.
//!
//! Usage: `cargo run -p truc-edxml --example edxml_roundtrip -- PACKAGE.edxml [default|prefixed]`

use std::io::{BufReader, Write as _};

use truc_edxml::{parse, write, Limits, MemoryAttachments, Message, PrefixStyle};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: edxml_roundtrip PACKAGE.edxml [default|prefixed]")?;
    let file = BufReader::new(std::fs::File::open(&path)?);
    let mut files = MemoryAttachments::default();
    let mut package = parse(file, Limits::new(2 << 30), &mut files)?;
    match &package.message {
        Message::Document(h) => {
            eprintln!(
                "document {} from {} to {} recipient(s)",
                h.document_id,
                h.from.organ_id,
                h.to.len()
            );
            for w in h.warnings() {
                eprintln!("warning: {}: {}", w.element, w.reason);
            }
        }
        Message::Status(s) => eprintln!("status {} from {}", s.status.code(), s.from.organ_id),
    }
    for d in &package.dropped {
        eprintln!("not kept: {}: {}", d.element, d.reason);
    }
    for a in &package.attachments {
        eprintln!("attachment {:?}: {} bytes", a.name, a.size);
    }
    match args.next().as_deref() {
        Some("default") => package.style = PrefixStyle::Default,
        Some("prefixed") => package.style = PrefixStyle::Prefixed,
        _ => {}
    }
    write(&package, std::io::stdout().lock(), &mut files)?.flush()?;
    Ok(())
}
