//! Large documents: upload a file, or several files one after another (a
//! document's attachments), in chunks (resuming what the hub already has),
//! either payload first (hashed while it is sent, the header signed and
//! sent last: the files are read once) or header first (hashed, signed,
//! then sent), and download a payload to a file, or each attachment to a
//! file of its own (resuming partial files, checking each attachment as it
//! completes), all in bounded memory.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use prost::bytes::Bytes;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use truc_core::attachments::RangeHasher;
use truc_pki::Identity;
use truc_proto::v1::upload_request::Part;
use truc_proto::v1::{
    DocumentHeader, DownloadRequest, SendResponse, SignedDocument, UploadFinish, UploadOpen, UploadRequest,
    UploadStart, UploadStatusRequest,
};

use crate::{Client, ClientError};

/// Chunk size for uploads (the hub takes up to 4 MiB).
pub const CHUNK: usize = 4 << 20;
/// Bytes per read when a file is hashed.
const HASH_BUF: usize = 1 << 20;
/// Chunks read but not yet hashed by a payload-first upload.
const HASH_QUEUE: usize = 2;
/// Downloaded chunks received but not yet written.
const WRITE_QUEUE: usize = 2;

/// Progress of a transfer: bytes done so far of the total.
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Send + Sync);

/// How long a payload-first upload waits for another stream writing the
/// same upload (one just interrupted) to end before giving up.
pub const BUSY_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// Why one try of an upload ended without a response.
enum Attempt {
    /// The hub refused the open: another stream writes this upload.
    Busy(tonic::Status),
    /// Anything else.
    Failed(ClientError),
}

/// The signature of a payload-first upload, across its tries: asked for
/// once, when every byte has been read, and sent again by a later try of
/// the same bytes.
enum Signer<S> {
    Unsigned(S),
    Signed(Digests, SignedDocument),
    /// `sign` failed.
    Spent,
}

impl<S> Signer<S>
where
    S: FnOnce(&Digests) -> Result<SignedDocument, ClientError>,
{
    fn document(&mut self, digests: Digests) -> Result<SignedDocument, ClientError> {
        match std::mem::replace(self, Signer::Spent) {
            Signer::Unsigned(sign) => {
                let doc = sign(&digests)?;
                *self = Signer::Signed(digests, doc.clone());
                Ok(doc)
            }
            Signer::Signed(before, doc) if before == digests => {
                *self = Signer::Signed(before, doc.clone());
                Ok(doc)
            }
            Signer::Signed(..) => Err(ClientError::Transfer(
                "the files changed while they were being uploaded; send them again".into(),
            )),
            Signer::Spent => Err(ClientError::Transfer("signing the document failed before".into())),
        }
    }
}

/// A fresh id for a payload-first upload: 128 random bits in hex. Keep it
/// (with the document id) until the upload is accepted, to resume.
pub fn new_upload_id() -> String {
    let mut n = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut n).expect("system random");
    truc_core::hex(&n)
}

/// SHA-256 and size of a file, read once in chunks.
pub fn hash_file(path: &Path) -> std::io::Result<([u8; 32], u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; HASH_BUF];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
        size += n as u64;
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    Ok((out, size))
}

/// The files whose bytes, one after another, are a payload: a document's
/// attachments in manifest order (or one file), with the sizes they had
/// when opened. A file that changes size meanwhile fails the transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFiles(Vec<(PathBuf, u64)>);

impl SourceFiles {
    /// The files at `paths`, in this order, sized now.
    pub fn open(paths: &[PathBuf]) -> std::io::Result<SourceFiles> {
        paths
            .iter()
            .map(|p| Ok((p.clone(), std::fs::metadata(p)?.len())))
            .collect::<std::io::Result<Vec<_>>>()
            .map(SourceFiles)
    }

    /// Each file and its size.
    pub fn files(&self) -> &[(PathBuf, u64)] {
        &self.0
    }

    /// Each file's size, in order.
    pub fn sizes(&self) -> Vec<u64> {
        self.0.iter().map(|(_, s)| *s).collect()
    }

    /// The payload's size: all the files.
    pub fn total(&self) -> u64 {
        self.0.iter().map(|(_, s)| *s).sum()
    }

    /// Read them one after another from payload offset `from`, calling
    /// `each` with each block (at most [`CHUNK`] bytes, never two files'
    /// bytes in one block) and its payload offset, until `each` says stop
    /// (false). Returns the payload offset reached. Reads around the page
    /// cache where it can, each block into a buffer of its own.
    fn read(&self, from: u64, mut each: impl FnMut(u64, Bytes) -> bool) -> std::io::Result<u64> {
        let mut pos = 0u64;
        for (path, size) in &self.0 {
            if pos + size <= from {
                pos += size;
                continue;
            }
            let skip = from.saturating_sub(pos).min(*size);
            pos += skip;
            let mut f = truc_fileio::SeqReader::open_cache_first(path, skip)?;
            let mut done = skip;
            while done < *size {
                let (buf, range) = f.next_chunk(CHUNK.min((size - done) as usize))?;
                if range.is_empty() {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!(
                            "{} has {done} bytes, {size} when the send began: it changed; send again",
                            path.display()
                        ),
                    ));
                }
                let data = Bytes::from(buf).slice(range);
                done += data.len() as u64;
                let at = pos;
                pos += data.len() as u64;
                if !each(at, data) {
                    return Ok(pos);
                }
            }
        }
        Ok(pos)
    }
}

/// What one pass over a payload's files computes: the whole payload's
/// SHA-256 and size, and each file's SHA-256 (the attachments').
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    /// SHA-256 of the whole payload.
    pub sha256: [u8; 32],
    /// Its size.
    pub size: u64,
    /// SHA-256 of each file, in order.
    pub attachments: Vec<[u8; 32]>,
    /// Each file's size, in order.
    pub sizes: Vec<u64>,
}

/// Hash `files` in one pass: the whole payload and each file.
pub fn hash_files(files: &SourceFiles) -> std::io::Result<Digests> {
    let mut whole = ring::digest::Context::new(&ring::digest::SHA256);
    let mut ranges = RangeHasher::new(files.sizes());
    files.read(0, |_, data| {
        whole.update(&data);
        ranges.update(&data).is_ok()
    })?;
    digests(whole, ranges, files.sizes())
}

fn digests(whole: ring::digest::Context, ranges: RangeHasher, sizes: Vec<u64>) -> std::io::Result<Digests> {
    let size = ranges.position();
    let attachments = ranges
        .finish()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
    let mut sha256 = [0u8; 32];
    sha256.copy_from_slice(whole.finish().as_ref());
    Ok(Digests {
        sha256,
        size,
        attachments,
        sizes,
    })
}

/// What a sender says about one attached file: everything of its manifest
/// entry but where it lies in the payload and its digest, which the bytes
/// decide.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttachmentMeta {
    /// ContentId (unique in the document; may be empty).
    pub content_id: String,
    /// AttachmentName: a plain file name.
    pub name: String,
    /// Description, for people.
    pub description: String,
    /// ContentType, e.g. `application/pdf`.
    pub media_type: String,
}

/// The manifest of a payload made of files described by `meta` whose one
/// pass gave `digests`: each file a range, one after another from 0.
pub fn manifest(meta: &[AttachmentMeta], digests: &Digests) -> Vec<truc_proto::v1::Attachment> {
    let mut offset = 0u64;
    meta.iter()
        .zip(&digests.attachments)
        .zip(&digests.sizes)
        .map(|((m, sha), &size)| {
            let a = truc_proto::v1::Attachment {
                content_id: m.content_id.clone(),
                name: m.name.clone(),
                description: m.description.clone(),
                media_type: m.media_type.clone(),
                offset,
                size,
                sha256: sha.to_vec(),
            };
            offset += size;
            a
        })
        .collect()
}

/// Read `files` (small: an inline payload) into one payload, with its
/// digests.
pub fn read_inline(files: &SourceFiles) -> std::io::Result<(Vec<u8>, Digests)> {
    let mut payload = Vec::with_capacity(files.total() as usize);
    for (path, size) in files.files() {
        let bytes = std::fs::read(path)?;
        if bytes.len() as u64 != *size {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("{} changed while being read; send again", path.display()),
            ));
        }
        payload.extend_from_slice(&bytes);
    }
    let mut ranges = RangeHasher::new(files.sizes());
    ranges
        .update(&payload)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
    let attachments = ranges
        .finish()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
    let d = Digests {
        sha256: truc_core::sha256(&payload),
        size: payload.len() as u64,
        attachments,
        sizes: files.sizes(),
    };
    Ok((payload, d))
}

/// Sign a header for a payload of `size` bytes with digest `sha256` that is
/// not held in memory; the document travels with an empty payload.
pub fn sign_external(
    identity: &Identity,
    mut header: DocumentHeader,
    sha256: [u8; 32],
    size: u64,
) -> Result<SignedDocument, ClientError> {
    let signer = identity.signer()?;
    crate::sign_header(&signer, identity, &mut header, sha256, size, Vec::new())
}

impl Client {
    /// Upload `path` as the payload of `document` (signed with
    /// [`sign_external`]), resuming from what the hub already has.
    pub async fn upload_file(
        &self,
        document: SignedDocument,
        path: &Path,
        progress: Progress<'_>,
    ) -> Result<SendResponse, ClientError> {
        let files = SourceFiles::open(&[path.to_path_buf()]).map_err(|e| ClientError::file(path, e))?;
        self.upload_files(document, &files, progress).await
    }

    /// Upload `files`, one after another, as the payload of `document`
    /// (signed with [`sign_external`] over them: the attachments in
    /// manifest order), header first, resuming from what the hub already
    /// has.
    pub async fn upload_files(
        &self,
        document: SignedDocument,
        files: &SourceFiles,
        progress: Progress<'_>,
    ) -> Result<SendResponse, ClientError> {
        let header: DocumentHeader = prost::Message::decode(document.header.as_slice())
            .map_err(|e| truc_core::CoreError::MalformedHeader(e.to_string()))?;
        let status = self
            .axis
            .clone()
            .upload_status(UploadStatusRequest {
                document_id: header.document_id.clone(),
                payload_sha256: header.payload_sha256.clone(),
                upload_id: String::new(),
            })
            .await?
            .into_inner();
        let offset = if status.complete {
            header.payload_size
        } else {
            status.received.min(header.payload_size)
        };
        progress(offset, header.payload_size);
        let (tx, rx) = mpsc::channel::<UploadRequest>(4);
        let start = UploadRequest {
            part: Some(Part::Start(UploadStart {
                document: Some(document),
                offset,
            })),
        };
        tx.send(start)
            .await
            .map_err(|_| ClientError::Transfer("the upload stopped before it started".into()))?;
        let files = files.clone();
        let total = header.payload_size;
        let sent_so_far = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(offset));
        let counter = sent_so_far.clone();
        let reader = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            if offset >= total {
                return Ok(());
            }
            files.read(offset, |at, data| {
                let end = at + data.len() as u64;
                let sent = tx
                    .blocking_send(UploadRequest {
                        part: Some(Part::Chunk(data)),
                    })
                    .is_ok();
                counter.store(end, std::sync::atomic::Ordering::Relaxed);
                sent // false: the call ended
            })?;
            Ok(())
        });
        let mut axis = self.axis.clone();
        let call = axis.upload(ReceiverStream::new(rx));
        tokio::pin!(call);
        let resp = loop {
            tokio::select! {
                r = &mut call => break r,
                _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {
                    progress(sent_so_far.load(std::sync::atomic::Ordering::Relaxed), total);
                }
            }
        };
        match reader.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(ClientError::Transfer(format!("reading the files: {e}"))),
            Err(_) => return Err(ClientError::Transfer("the file reader stopped".into())),
        }
        progress(total, total);
        Ok(resp?.into_inner())
    }

    /// Upload `path` payload first under `upload_id` (see
    /// [`new_upload_id`]) for the recipients `to` (the header's; the hub
    /// refuses at once an upload it would refuse for them, before the
    /// bytes travel; empty: checked at the end only): resume from what the hub has for that id
    /// (hashing those bytes of the file here, not sending them), send the
    /// rest while hashing it, then call `sign` with the file's SHA-256 and
    /// size and send the signed document it returns (see [`sign_external`])
    /// last. The file is read once. If reading or `sign` fails, the upload
    /// stops with everything sent kept on the hub, to resume (and the
    /// error is `ABORTED`, as in [`Client::upload_file`]).
    pub async fn upload_file_payload_first<S>(
        &self,
        upload_id: &str,
        to: &[String],
        path: &Path,
        sign: S,
        progress: Progress<'_>,
    ) -> Result<SendResponse, ClientError>
    where
        S: FnOnce([u8; 32], u64) -> Result<SignedDocument, ClientError>,
    {
        let files = SourceFiles::open(&[path.to_path_buf()]).map_err(|e| ClientError::file(path, e))?;
        self.upload_files_payload_first(upload_id, to, &files, |d: &Digests| sign(d.sha256, d.size), progress)
            .await
    }

    /// [`Client::upload_file_payload_first`] for a payload of several files
    /// one after another (a document's attachments, in manifest order):
    /// their sizes are declared in UploadOpen so that the hub checks each
    /// attachment as its bytes arrive, and `sign` gets the whole payload's
    /// digest and each file's, computed in the one pass that sends them.
    ///
    /// The hub lets one stream at a time write an upload. A stream that
    /// was just interrupted (Ctrl-C, a dropped connection) may still be
    /// writing what it received when the same upload is resumed: the hub
    /// then answers `ABORTED`, and this waits for it to end and resumes
    /// from what it wrote, for up to [`BUSY_PATIENCE`].
    pub async fn upload_files_payload_first<S>(
        &self,
        upload_id: &str,
        to: &[String],
        files: &SourceFiles,
        sign: S,
        progress: Progress<'_>,
    ) -> Result<SendResponse, ClientError>
    where
        S: FnOnce(&Digests) -> Result<SignedDocument, ClientError>,
    {
        let mut signer = Signer::Unsigned(sign);
        let give_up = std::time::Instant::now() + BUSY_PATIENCE;
        let mut pause = std::time::Duration::from_millis(50);
        loop {
            match self
                .upload_payload_first_once(upload_id, to, files, &mut signer, progress)
                .await
            {
                // Refused at the open: the other stream has not ended yet.
                Err(Attempt::Busy(_)) if std::time::Instant::now() < give_up => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_secs(1));
                }
                Err(Attempt::Busy(status)) => return Err(status.into()),
                Err(Attempt::Failed(e)) => return Err(e),
                Ok(r) => return Ok(r),
            }
        }
    }

    /// One try of [`Client::upload_files_payload_first`]; the document is
    /// signed (or the earlier try's signature reused) once every byte has
    /// been read.
    async fn upload_payload_first_once<S>(
        &self,
        upload_id: &str,
        to: &[String],
        files: &SourceFiles,
        signer: &mut Signer<S>,
        progress: Progress<'_>,
    ) -> Result<SendResponse, Attempt>
    where
        S: FnOnce(&Digests) -> Result<SignedDocument, ClientError>,
    {
        let total = files.total();
        let status = self
            .axis
            .clone()
            .upload_status(UploadStatusRequest {
                upload_id: upload_id.to_string(),
                ..Default::default()
            })
            .await
            .map_err(|e| Attempt::Failed(e.into()))?
            .into_inner();
        // More than the file holds: the file changed; start over.
        let offset = if status.received <= total { status.received } else { 0 };
        progress(offset, total);
        let (tx, rx) = mpsc::channel::<UploadRequest>(4);
        let open = UploadOpen {
            upload_id: upload_id.to_string(),
            offset,
            size: total,
            to: to.to_vec(),
            attachment_sizes: if files.files().len() > 1 {
                files.sizes()
            } else {
                Vec::new()
            },
        };
        tx.send(UploadRequest {
            part: Some(Part::Open(open)),
        })
        .await
        .map_err(|_| Attempt::Failed(ClientError::Transfer("the upload stopped before it started".into())))?;
        let done = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(offset));
        let reader = {
            let (files, tx, done) = (files.clone(), tx.clone(), done.clone());
            tokio::task::spawn_blocking(move || read_and_hash(&files, offset, &tx, &done))
        };
        let mut axis = self.axis.clone();
        let call = axis.upload(ReceiverStream::new(rx));
        tokio::pin!(call);
        // The file is read and hashed on a blocking thread while the call
        // sends what it has read; then the header goes last.
        let feed = async {
            let digests = match reader.await {
                Ok(Ok(read)) => read,
                // The call ended under the reader: its answer says why.
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                Ok(Err(e)) => return Err(ClientError::Transfer(format!("reading the files: {e}"))),
                Err(_) => return Err(ClientError::Transfer("the file reader stopped".into())),
            };
            let doc = signer.document(digests)?;
            let finish = UploadRequest {
                part: Some(Part::Finish(UploadFinish { document: Some(doc) })),
            };
            // If the call has ended, its answer says why.
            let _ = tx.send(finish).await;
            drop(tx);
            Ok::<(), ClientError>(())
        };
        tokio::pin!(feed);
        let (mut fed, mut failed) = (false, None);
        let resp = loop {
            tokio::select! {
                r = &mut call => break r,
                r = &mut feed, if !fed => {
                    // On an error the stream is closed without the header,
                    // so the hub keeps what it has for a resume (and says
                    // the upload is incomplete: this error is the reason).
                    fed = true;
                    failed = r.err();
                }
                _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {
                    progress(done.load(std::sync::atomic::Ordering::Relaxed), total);
                }
            }
        };
        if let Some(e) = failed {
            return Err(Attempt::Failed(e));
        }
        let resp = match resp {
            Ok(r) => r.into_inner(),
            Err(s) if s.code() == tonic::Code::Aborted => return Err(Attempt::Busy(s)),
            Err(s) => return Err(Attempt::Failed(s.into())),
        };
        progress(total, total);
        Ok(resp)
    }

    /// Download the payload of `hub_document_id` into `part` (appending to
    /// what it already holds), then check its SHA-256 and size. Returns the
    /// number of bytes in the file.
    pub async fn download_to(
        &self,
        hub_document_id: u64,
        delivery_id: u64,
        part: &Path,
        expect_sha256: &[u8],
        expect_size: u64,
        progress: Progress<'_>,
    ) -> Result<u64, ClientError> {
        let parts = vec![(part.to_path_buf(), expect_size)];
        self.download_ranges(hub_document_id, delivery_id, parts, None, expect_sha256, progress)
            .await
    }

    /// Download the payload of `hub_document_id`, whose signed header is
    /// `header`, into `parts`: one file per attachment, in manifest order
    /// (one file for a header without attachments). Each file is appended
    /// to where it stopped (a partial download resumes); each attachment is
    /// checked against its signed SHA-256 the moment its last byte is
    /// written, and the whole payload against `payload_sha256` at the end.
    /// On a mismatch every part is removed (the next run starts over) and
    /// the error names the attachment. Memory: a few chunks, whatever the
    /// sizes. Returns the payload's size.
    pub async fn download_attachments(
        &self,
        hub_document_id: u64,
        delivery_id: u64,
        header: &DocumentHeader,
        parts: &[PathBuf],
        progress: Progress<'_>,
    ) -> Result<u64, ClientError> {
        let sizes = if header.attachments.is_empty() {
            vec![header.payload_size]
        } else {
            truc_core::attachments::sizes(header)
        };
        if sizes.len() != parts.len() {
            return Err(ClientError::Transfer(format!(
                "{} files for {} attachments",
                parts.len(),
                sizes.len()
            )));
        }
        let checker = (!truc_core::attachments::whole_payload_suffices(header)).then(|| RangeHasher::expecting(header));
        let parts = parts.iter().cloned().zip(sizes).collect();
        self.download_ranges(
            hub_document_id,
            delivery_id,
            parts,
            checker,
            &header.payload_sha256,
            progress,
        )
        .await
    }

    /// Download into `parts` (file, size) one after another, resuming, with
    /// each range checked by `checker` (if any) and the whole by
    /// `expect_sha256`.
    async fn download_ranges(
        &self,
        hub_document_id: u64,
        delivery_id: u64,
        parts: Vec<(PathBuf, u64)>,
        checker: Option<RangeHasher>,
        expect_sha256: &[u8],
        progress: Progress<'_>,
    ) -> Result<u64, ClientError> {
        let expect_size: u64 = parts.iter().map(|(_, s)| *s).sum();
        let io = |p: &Path, e: std::io::Error| ClientError::Transfer(format!("{}: {e}", p.display()));
        // What the files hold: whole files, then a partial one; anything
        // after a partial file starts over.
        let mut have = 0u64;
        let mut partial = false;
        for (path, size) in &parts {
            let len = if partial {
                0
            } else {
                std::fs::metadata(path).map(|m| m.len()).unwrap_or(0).min(*size)
            };
            if len < *size {
                partial = true;
            }
            have += len;
        }
        progress(have, expect_size);
        // Hash as the files grow (what they held first), so the ack follows
        // the last chunk at once, well inside the lease. Writing and hashing
        // run on a blocking task fed through a short queue, off the async
        // runtime and overlapped with receiving.
        let (chunks, mut queue) = mpsc::channel::<Bytes>(WRITE_QUEUE);
        let writer_parts = parts.clone();
        let writer = tokio::task::spawn_blocking(move || -> Result<ring::digest::Digest, WriteFailure> {
            let mut out = PartsWriter::open(writer_parts, have, checker)?;
            while let Some(data) = queue.blocking_recv() {
                out.write(&data)?;
            }
            out.finish()
        });
        let mut offset = have;
        let received = async {
            if have < expect_size {
                let req = DownloadRequest {
                    hub_document_id,
                    offset: have,
                    delivery_id,
                };
                let mut stream = self.axis.clone().download(req).await?.into_inner();
                while let Some(chunk) = stream.message().await? {
                    if chunk.offset != offset {
                        return Err(ClientError::Transfer(format!(
                            "hub sent offset {} where {offset} was due",
                            chunk.offset
                        )));
                    }
                    if offset + chunk.data.len() as u64 > expect_size {
                        return Err(ClientError::Transfer(format!(
                            "hub sent more than the signed {expect_size} bytes"
                        )));
                    }
                    offset += chunk.data.len() as u64;
                    if chunks.send(chunk.data).await.is_err() {
                        break; // the writer failed: its error is below
                    }
                    progress(offset, expect_size);
                }
            }
            Ok(())
        }
        .await;
        drop(chunks);
        let written = writer
            .await
            .map_err(|_| ClientError::Transfer("the file writer stopped".into()))?;
        let remove_all = || {
            // Start over next time rather than resume a bad prefix.
            for (p, _) in &parts {
                let _ = std::fs::remove_file(p);
            }
        };
        let sha = match written {
            Ok(sha) => sha,
            Err(WriteFailure::Io(p, e)) => return Err(io(&p, e)),
            Err(WriteFailure::Differs(e)) => {
                remove_all();
                return Err(ClientError::Transfer(format!(
                    "downloaded {e}; removed what was written"
                )));
            }
        };
        received?;
        let size = offset;
        if size != expect_size || sha.as_ref() != expect_sha256 {
            remove_all();
            let what = match parts.as_slice() {
                [(p, _)] => p.display().to_string(),
                _ => "the attachments' files".to_string(),
            };
            return Err(ClientError::Transfer(format!(
                "downloaded payload ({size} bytes) does not match the signed size and SHA-256; removed {what}"
            )));
        }
        Ok(size)
    }
}

/// Why writing a download stopped.
enum WriteFailure {
    Io(PathBuf, std::io::Error),
    /// An attachment differs from its signed digest.
    Differs(truc_core::CoreError),
}

/// Writes a payload's bytes into its parts one after another (each an
/// attachment, or one for the whole payload), hashing the whole and
/// checking each range.
struct PartsWriter {
    parts: Vec<(PathBuf, u64)>,
    /// The part being written, and how much of it is written.
    index: usize,
    written: u64,
    out: Option<truc_fileio::SeqWriter>,
    whole: ring::digest::Context,
    checker: Option<RangeHasher>,
}

impl PartsWriter {
    /// Open at payload offset `have` (the files hold that much): hash what
    /// they hold, truncate anything after it, open the part to append to.
    fn open(parts: Vec<(PathBuf, u64)>, have: u64, checker: Option<RangeHasher>) -> Result<Self, WriteFailure> {
        let mut w = PartsWriter {
            index: parts.len(),
            parts,
            written: 0,
            out: None,
            whole: ring::digest::Context::new(&ring::digest::SHA256),
            checker,
        };
        let mut left = have;
        let mut buf = vec![0u8; HASH_BUF];
        // Whole parts and the prefix of the partial one, read back.
        for i in 0..w.parts.len() {
            let (path, size) = w.parts[i].clone();
            let take = left.min(size);
            if take > 0 {
                let mut f = std::fs::File::open(&path).map_err(|e| WriteFailure::Io(path.clone(), e))?;
                let mut n_left = take;
                while n_left > 0 {
                    let n = f
                        .read(&mut buf[..HASH_BUF.min(n_left as usize)])
                        .map_err(|e| WriteFailure::Io(path.clone(), e))?;
                    if n == 0 {
                        return Err(WriteFailure::Io(path, std::io::ErrorKind::UnexpectedEof.into()));
                    }
                    w.hash(&buf[..n])?;
                    n_left -= n as u64;
                }
            }
            left -= take;
            if take < size {
                w.index = i;
                w.written = take;
                break;
            }
        }
        w.open_current()?;
        Ok(w)
    }

    fn hash(&mut self, data: &[u8]) -> Result<(), WriteFailure> {
        self.whole.update(data);
        match self.checker.as_mut() {
            Some(c) => c.update(data).map_err(WriteFailure::Differs),
            None => Ok(()),
        }
    }

    /// Open the current part to append at `written` (creating it, cutting
    /// off anything past that), and every part after it empty. Parts that
    /// are complete when opened (empty attachments) are closed at once.
    fn open_current(&mut self) -> Result<(), WriteFailure> {
        for (i, (path, _)) in self.parts.iter().enumerate() {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(path)
                .map_err(|e| WriteFailure::Io(path.clone(), e))?;
            if i >= self.index {
                let len = if i == self.index { self.written } else { 0 };
                file.set_len(len).map_err(|e| WriteFailure::Io(path.clone(), e))?;
            }
        }
        self.start_part()
    }

    /// Start writing the current part at `written` (it exists, that long).
    fn start_part(&mut self) -> Result<(), WriteFailure> {
        while let Some((path, size)) = self.parts.get(self.index).cloned() {
            if self.written < size {
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|e| WriteFailure::Io(path.clone(), e))?;
                file.seek(SeekFrom::Start(self.written))
                    .map_err(|e| WriteFailure::Io(path.clone(), e))?;
                // Around the page cache where the file system allows: the
                // copy into it is the largest cost of a download on some
                // machines, and the file is not read back here.
                self.out = Some(truc_fileio::SeqWriter::new(file, &path, self.written));
                return Ok(());
            }
            // Complete (or empty): synced, on to the next.
            std::fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(|e| WriteFailure::Io(path.clone(), e))?;
            self.index += 1;
            self.written = 0;
        }
        Ok(())
    }

    fn write(&mut self, mut data: &[u8]) -> Result<(), WriteFailure> {
        while !data.is_empty() {
            let Some((path, size)) = self.parts.get(self.index).cloned() else {
                return Err(WriteFailure::Io(
                    self.parts.last().map(|p| p.0.clone()).unwrap_or_default(),
                    std::io::Error::other("more bytes than the payload's size"),
                ));
            };
            let take = (size - self.written).min(data.len() as u64) as usize;
            let out = self.out.as_mut().expect("an open part while bytes are due");
            out.write(&data[..take])
                .map_err(|e| WriteFailure::Io(path.clone(), e))?;
            self.hash(&data[..take])?;
            self.written += take as u64;
            data = &data[take..];
            if self.written == size {
                self.close_part()?;
            }
        }
        Ok(())
    }

    /// The current part is complete: flush and sync it, go on to the next.
    fn close_part(&mut self) -> Result<(), WriteFailure> {
        if let Some(mut out) = self.out.take() {
            let path = self.parts[self.index].0.clone();
            out.finish().map_err(|e| WriteFailure::Io(path.clone(), e))?;
            out.file().sync_all().map_err(|e| WriteFailure::Io(path, e))?;
        }
        self.index += 1;
        self.written = 0;
        self.start_part()
    }

    /// Everything has come (or the stream ended): flush what is open and
    /// return the whole payload's digest (the caller checks it and the
    /// size). Ranges are checked as they complete; one left incomplete
    /// shows as a size mismatch.
    fn finish(mut self) -> Result<ring::digest::Digest, WriteFailure> {
        if let Some(mut out) = self.out.take() {
            let path = self.parts[self.index].0.clone();
            out.finish().map_err(|e| WriteFailure::Io(path.clone(), e))?;
            out.file().sync_all().map_err(|e| WriteFailure::Io(path, e))?;
        }
        Ok(self.whole.finish())
    }
}

/// The payload-first reader: hash `files` from the payload's start,
/// sending what lies at or after `offset` (the hub has the rest) through
/// `tx`. Returns the digests of what was read: the whole payload and each
/// file.
///
/// Three things overlap: reading (this thread, mostly waiting for the
/// device), hashing (a thread of its own, fed the same buffers) and
/// sending (the async runtime). Read then hash in one thread, the upload
/// could go no faster than the two added up.
fn read_and_hash(
    files: &SourceFiles,
    offset: u64,
    tx: &mpsc::Sender<UploadRequest>,
    done: &std::sync::atomic::AtomicU64,
) -> std::io::Result<Digests> {
    let (to_hash, hash_queue) = std::sync::mpsc::sync_channel::<Bytes>(HASH_QUEUE);
    let sizes = files.sizes();
    let sizes_out = sizes.clone();
    std::thread::scope(|s| {
        let hasher = s.spawn(move || {
            let mut whole = ring::digest::Context::new(&ring::digest::SHA256);
            let mut ranges = RangeHasher::new(sizes);
            for data in hash_queue {
                whole.update(&data);
                // The reader hands over exactly the files' bytes.
                let _ = ranges.update(&data);
                done.store(ranges.position().max(offset), std::sync::atomic::Ordering::Relaxed);
            }
            (whole, ranges)
        });
        let mut closed = false;
        let read = files.read(0, |pos, data| {
            let end = pos + data.len() as u64;
            if end > offset {
                let new = data.slice(offset.saturating_sub(pos) as usize..);
                if tx
                    .blocking_send(UploadRequest {
                        part: Some(Part::Chunk(new)),
                    })
                    .is_err()
                {
                    closed = true;
                    return false;
                }
            }
            // Cannot fail: the hasher ends when this sender goes.
            to_hash.send(data).is_ok()
        });
        drop(to_hash);
        let (whole, ranges) = hasher.join().expect("the hashing thread does not panic");
        if closed {
            // The call ended; its answer says why.
            return Err(std::io::ErrorKind::BrokenPipe.into());
        }
        read?;
        digests(whole, ranges, sizes_out)
    })
}
