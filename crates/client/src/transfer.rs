//! Large documents: upload a file in chunks (resuming what the hub already
//! has), either payload first (hashed while it is sent, the header signed
//! and sent last: the file is read once) or header first (hashed, signed,
//! then sent), and download a payload to a file (resuming a partial file),
//! all in bounded memory.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use prost::bytes::Bytes;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use truc_core::CoreError;
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
        let header: DocumentHeader = prost::Message::decode(document.header.as_slice())
            .map_err(|e| CoreError::MalformedHeader(e.to_string()))?;
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
        let file = path.to_path_buf();
        let path = path.to_path_buf();
        let total = header.payload_size;
        let sent_so_far = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(offset));
        let counter = sent_so_far.clone();
        let reader = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            // Around the page cache where it can: each chunk is read into a
            // buffer of its own and handed over without a copy.
            let mut f = truc_fileio::SeqReader::open(&path, offset)?;
            let mut sent = offset;
            while sent < total {
                let want = CHUNK.min((total - sent) as usize);
                let (buf, range) = f.next_chunk(want)?;
                let n = range.len();
                if n == 0 {
                    break;
                }
                sent += n as u64;
                if tx
                    .blocking_send(UploadRequest {
                        part: Some(Part::Chunk(Bytes::from(buf).slice(range))),
                    })
                    .is_err()
                {
                    break; // the call ended
                }
                counter.store(sent, std::sync::atomic::Ordering::Relaxed);
            }
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
            Ok(Err(e)) => return Err(ClientError::file(&file, e)),
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
    /// stops with everything sent kept on the hub, to resume, and that
    /// failure is the error.
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
        let total = std::fs::metadata(path).map_err(|e| ClientError::file(path, e))?.len();
        let status = self
            .axis
            .clone()
            .upload_status(UploadStatusRequest {
                upload_id: upload_id.to_string(),
                ..Default::default()
            })
            .await?
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
        };
        tx.send(UploadRequest {
            part: Some(Part::Open(open)),
        })
        .await
        .map_err(|_| ClientError::Transfer("the upload stopped before it started".into()))?;
        let done = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(offset));
        let reader = {
            let (path, tx, done) = (path.to_path_buf(), tx.clone(), done.clone());
            tokio::task::spawn_blocking(move || read_and_hash(&path, offset, total, &tx, &done))
        };
        let mut axis = self.axis.clone();
        let call = axis.upload(ReceiverStream::new(rx));
        tokio::pin!(call);
        // The file is read and hashed on a blocking thread while the call
        // sends what it has read; then the header goes last.
        let feed = async {
            let (sha, size) = match reader.await {
                Ok(Ok(read)) => read,
                // The call ended under the reader: its answer says why.
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                Ok(Err(e)) => return Err(ClientError::file(path, e)),
                Err(_) => return Err(ClientError::Transfer("the file reader stopped".into())),
            };
            let doc = sign(sha, size)?;
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
            return Err(e);
        }
        let resp = resp?.into_inner();
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
        let have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0).min(expect_size);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(part)
            .map_err(|e| ClientError::file(part, e))?;
        file.set_len(have).map_err(|e| ClientError::file(part, e))?;
        file.seek(SeekFrom::Start(have))
            .map_err(|e| ClientError::file(part, e))?;
        progress(have, expect_size);
        // Hash as the file grows (the prefix of a resumed file first), so the
        // ack follows the last chunk at once, well inside the lease. Writing
        // and hashing run on a blocking task fed through a short queue, off
        // the async runtime and overlapped with receiving.
        let path = part.to_path_buf();
        let (chunks, mut queue) = mpsc::channel::<Bytes>(WRITE_QUEUE);
        let writer = tokio::task::spawn_blocking(move || -> std::io::Result<ring::digest::Digest> {
            let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
            if have > 0 {
                let mut f = std::fs::File::open(&path)?;
                let mut buf = vec![0u8; HASH_BUF];
                let mut left = have;
                while left > 0 {
                    let n = f.read(&mut buf[..HASH_BUF.min(left as usize)])?;
                    if n == 0 {
                        break;
                    }
                    ctx.update(&buf[..n]);
                    left -= n as u64;
                }
            }
            // Around the page cache where the file system allows: the
            // copy into it is the largest cost of a download on some
            // machines, and the file is not read back here.
            let mut out = truc_fileio::SeqWriter::new(file, &path, have);
            while let Some(data) = queue.blocking_recv() {
                out.write(&data)?;
                ctx.update(&data);
            }
            out.finish()?;
            out.file().sync_all()?;
            Ok(ctx.finish())
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
                        return Err(ClientError::Answer(format!(
                            "a chunk at offset {} where {offset} was due",
                            chunk.offset
                        )));
                    }
                    if offset + chunk.data.len() as u64 > expect_size {
                        return Err(ClientError::Answer(format!("more than the signed {expect_size} bytes")));
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
            .map_err(|_| ClientError::Transfer("the file writer stopped".into()))?
            .map_err(|e| ClientError::file(part, e));
        received?;
        let sha = written?;
        let size = offset;
        if size != expect_size || sha.as_ref() != expect_sha256 {
            // Start over next time rather than resume a bad prefix.
            let _ = std::fs::remove_file(part);
            return Err(ClientError::Transfer(format!(
                "downloaded payload ({size} bytes) does not match the signed size and SHA-256; removed {}",
                part.display()
            )));
        }
        Ok(size)
    }
}

/// The payload-first reader: hash `path` from its start, sending what lies
/// at or after `offset` (the hub has the rest) through `tx`, up to `total`
/// bytes. Returns the SHA-256 and size of what was read.
///
/// Three things overlap: reading (this thread, mostly waiting for the
/// device), hashing (a thread of its own, fed the same buffers) and
/// sending (the async runtime). Read then hash in one thread, the upload
/// could go no faster than the two added up.
fn read_and_hash(
    path: &Path,
    offset: u64,
    total: u64,
    tx: &mpsc::Sender<UploadRequest>,
    done: &std::sync::atomic::AtomicU64,
) -> std::io::Result<([u8; 32], u64)> {
    // Around the page cache where it can: each chunk is read into a buffer
    // of its own and handed over without a copy.
    let mut f = truc_fileio::SeqReader::open_cache_first(path, 0)?;
    let (to_hash, hash_queue) = std::sync::mpsc::sync_channel::<Bytes>(HASH_QUEUE);
    std::thread::scope(|s| {
        let hasher = s.spawn(move || {
            let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
            let mut hashed = 0u64;
            for data in hash_queue {
                ctx.update(&data);
                hashed += data.len() as u64;
                done.store(hashed.max(offset), std::sync::atomic::Ordering::Relaxed);
            }
            let mut sha = [0u8; 32];
            sha.copy_from_slice(ctx.finish().as_ref());
            sha
        });
        let read = (|| {
            let mut pos = 0u64;
            while pos < total {
                let (buf, range) = f.next_chunk(CHUNK.min((total - pos) as usize))?;
                if range.is_empty() {
                    break;
                }
                let data = Bytes::from(buf).slice(range);
                let end = pos + data.len() as u64;
                if end > offset {
                    let new = data.slice(offset.saturating_sub(pos) as usize..);
                    if tx
                        .blocking_send(UploadRequest {
                            part: Some(Part::Chunk(new)),
                        })
                        .is_err()
                    {
                        // The call ended; its answer says why.
                        return Err(std::io::ErrorKind::BrokenPipe.into());
                    }
                }
                if to_hash.send(data).is_err() {
                    break; // cannot happen: the hasher ends when this sender goes
                }
                pos = end;
            }
            Ok(pos)
        })();
        drop(to_hash);
        let sha = hasher.join().expect("the hashing thread does not panic");
        read.map(|pos| (sha, pos))
    })
}
