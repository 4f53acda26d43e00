//! Where attachment bytes go when parsing, and come from when writing.

use std::io::{self, Read};

use crate::model::Attachment;

/// Receives the decoded bytes of each attachment while the package is parsed, so that no
/// attachment is ever held whole in memory by the parser.
///
/// Attachments are numbered from 0 in `AttachmentEncoded` order, the order of
/// [`crate::Package::attachments`]. `write` is called with consecutive chunks of one
/// attachment (never interleaved with another's); `finish` once the attachment's element
/// is closed, with its metadata, size and SHA-256. A closure `FnMut(usize, &[u8]) ->
/// io::Result<()>` is a sink.
///
/// ```no_run
/// use std::fs::File;
/// use std::io::{BufReader, Write};
/// use truc_edxml::{parse, Limits};
///
/// // Each attachment into its own file: attachment-0, attachment-1, …
/// let mut current: Option<(usize, File)> = None;
/// let mut to_files = |index: usize, chunk: &[u8]| -> std::io::Result<()> {
///     match &mut current {
///         Some((i, file)) if *i == index => file.write_all(chunk),
///         _ => {
///             let mut file = File::create(format!("attachment-{index}"))?;
///             file.write_all(chunk)?;
///             current = Some((index, file));
///             Ok(())
///         }
///     }
/// };
/// let input = BufReader::new(File::open("package.edxml")?);
/// let package = parse(input, Limits::new(2 << 30), &mut to_files)?;
/// for a in &package.attachments {
///     println!("{:?}: {} bytes", a.name, a.size);
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait AttachmentSink {
    /// The next decoded chunk of attachment `index`.
    fn write(&mut self, index: usize, chunk: &[u8]) -> io::Result<()>;

    /// Attachment `index` is complete (also called for an attachment with no content).
    fn finish(&mut self, index: usize, attachment: &Attachment) -> io::Result<()> {
        let _ = (index, attachment);
        Ok(())
    }
}

impl<F> AttachmentSink for F
where
    F: FnMut(usize, &[u8]) -> io::Result<()>,
{
    fn write(&mut self, index: usize, chunk: &[u8]) -> io::Result<()> {
        self(index, chunk)
    }
}

/// Gives the bytes of each attachment when a package is written, read in a streaming way.
pub trait AttachmentSource {
    /// A reader over the bytes of attachment `index` (position in
    /// [`crate::Package::attachments`]).
    fn open(&mut self, index: usize, attachment: &Attachment) -> io::Result<Box<dyn Read + '_>>;
}

/// A sink that discards the bytes: for callers that only need the metadata, size and
/// SHA-256 the parser records.
#[derive(Debug, Default, Clone, Copy)]
pub struct Discard;

impl AttachmentSink for Discard {
    fn write(&mut self, _index: usize, _chunk: &[u8]) -> io::Result<()> {
        Ok(())
    }
}

/// Attachments held in memory: a sink and a source, for small packages and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MemoryAttachments(pub Vec<Vec<u8>>);

impl AttachmentSink for MemoryAttachments {
    fn write(&mut self, index: usize, chunk: &[u8]) -> io::Result<()> {
        self.slot(index).extend_from_slice(chunk);
        Ok(())
    }

    fn finish(&mut self, index: usize, _attachment: &Attachment) -> io::Result<()> {
        self.slot(index);
        Ok(())
    }
}

impl MemoryAttachments {
    fn slot(&mut self, index: usize) -> &mut Vec<u8> {
        if self.0.len() <= index {
            self.0.resize_with(index + 1, Vec::new);
        }
        &mut self.0[index]
    }
}

impl AttachmentSource for MemoryAttachments {
    fn open(&mut self, index: usize, _attachment: &Attachment) -> io::Result<Box<dyn Read + '_>> {
        match self.0.get(index) {
            Some(bytes) => Ok(Box::new(bytes.as_slice())),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no attachment {index}"),
            )),
        }
    }
}
