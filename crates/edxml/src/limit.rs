//! The input wrapper that enforces the caller's size limits.

use std::io::{self, BufRead, Read};

/// Size limits applied while a package is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The whole package, in bytes, attachments' base64 included. Reading stops with
    /// [`crate::Error::TooLarge`] as soon as more is offered.
    pub max_package_bytes: u64,
    /// Everything except the base64 text of attachments (which is streamed to the sink
    /// and never held): the header, manifest and any unmodelled element are read into
    /// memory, so they are bounded separately. Any DOCTYPE is refused outright; this
    /// limit also bounds how much of one is read before it is.
    pub max_markup_bytes: u64,
}

impl Limits {
    /// The default markup limit: 16 MiB, far above any real MessageHeader.
    pub const DEFAULT_MAX_MARKUP_BYTES: u64 = 16 << 20;

    /// Limits for a package of at most `max_package_bytes`, with the default markup limit
    /// (or `max_package_bytes` if that is smaller).
    pub fn new(max_package_bytes: u64) -> Self {
        Limits {
            max_package_bytes,
            max_markup_bytes: Self::DEFAULT_MAX_MARKUP_BYTES.min(max_package_bytes),
        }
    }
}

/// Which limit was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trip {
    Package,
    Markup,
}

/// A `BufRead` that counts what is consumed and refuses to offer more than the limits.
pub(crate) struct Guarded<R> {
    inner: R,
    limits: Limits,
    total: u64,
    markup: u64,
    /// True while attachment base64 is being streamed: it counts against the package
    /// limit only.
    pub(crate) streaming: bool,
    pub(crate) tripped: Option<Trip>,
}

impl<R: BufRead> Guarded<R> {
    pub(crate) fn new(inner: R, limits: Limits) -> Self {
        Guarded {
            inner,
            limits,
            total: 0,
            markup: 0,
            streaming: false,
            tripped: None,
        }
    }

    fn allowance(&self) -> (u64, Trip) {
        let package = self.limits.max_package_bytes.saturating_sub(self.total);
        let markup = self.limits.max_markup_bytes.saturating_sub(self.markup);
        if self.streaming || package <= markup {
            (package, Trip::Package)
        } else {
            (markup, Trip::Markup)
        }
    }
}

impl<R: BufRead> BufRead for Guarded<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        let (allow, which) = self.allowance();
        let available = self.inner.fill_buf()?.len();
        if available == 0 {
            return Ok(&[]);
        }
        if allow == 0 {
            self.tripped = Some(which);
            return Err(io::Error::other("package over the size limit"));
        }
        let n = available.min(usize::try_from(allow).unwrap_or(usize::MAX));
        Ok(&self.inner.fill_buf()?[..n])
    }

    fn consume(&mut self, amt: usize) {
        self.inner.consume(amt);
        self.total += amt as u64;
        if !self.streaming {
            self.markup += amt as u64;
        }
    }
}

impl<R: BufRead> Read for Guarded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let src = self.fill_buf()?;
        let n = src.len().min(buf.len());
        buf[..n].copy_from_slice(&src[..n]);
        self.consume(n);
        Ok(n)
    }
}
