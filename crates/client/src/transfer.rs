//! Large documents: hash a file, sign its header, upload it in chunks
//! (resuming what the hub already has), and download a payload to a file
//! (resuming a partial file), all in bounded memory.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use prost::bytes::Bytes;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use truc_pki::Identity;
use truc_proto::v1::upload_request::Part;
use truc_proto::v1::{
    DocumentHeader, DownloadRequest, SendResponse, SignedDocument, UploadRequest, UploadStart, UploadStatusRequest,
};

use crate::{Client, ClientError};

/// Chunk size for uploads (the hub takes up to 4 MiB).
pub const CHUNK: usize = 4 << 20;
/// Bytes per read when a file is hashed.
const HASH_BUF: usize = 1 << 20;
/// Downloaded chunks received but not yet written.
const WRITE_QUEUE: usize = 2;

/// Progress of a transfer: bytes done so far of the total.
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Send + Sync);

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
    if let Some(code) = identity.principal.agency() {
        if header.from.is_empty() {
            header.from = code.to_string();
        }
    }
    header.payload_sha256 = sha256.to_vec();
    header.payload_size = size;
    if header.signed_at_unix_ms == 0 {
        header.signed_at_unix_ms = truc_core::now_unix_ms();
    }
    let bytes = prost::Message::encode_to_vec(&header);
    let signature = signer.sign(&bytes)?;
    Ok(SignedDocument {
        header: bytes,
        signature,
        signature_scheme: signer.scheme(),
        signer_chain: vec![identity.cert_der.clone()],
        payload: Vec::new(),
    })
}

impl Client {
    /// Upload `path` as the payload of `document` (signed with
    /// [`sign_external`]), resuming from what the hub already has.
    pub async fn upload_file(
        &self,
        document: SignedDocument,
        path: &Path,
        progress: Progress<'_>,
    ) -> Result<SendResponse, Status> {
        let header: DocumentHeader = prost::Message::decode(document.header.as_slice())
            .map_err(|_| Status::invalid_argument("document header does not decode"))?;
        let status = self
            .axis
            .clone()
            .upload_status(UploadStatusRequest {
                document_id: header.document_id.clone(),
                payload_sha256: header.payload_sha256.clone(),
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
        tx.send(start).await.map_err(|_| Status::cancelled("upload stopped"))?;
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
            Ok(Err(e)) => return Err(Status::aborted(format!("reading the file: {e}"))),
            Err(_) => return Err(Status::aborted("file reader stopped")),
        }
        progress(total, total);
        Ok(resp?.into_inner())
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
            .map_err(|e| ClientError::Transfer(format!("{}: {e}", part.display())))?;
        file.set_len(have)
            .map_err(|e| ClientError::Transfer(format!("{}: {e}", part.display())))?;
        file.seek(SeekFrom::Start(have))
            .map_err(|e| ClientError::Transfer(format!("{}: {e}", part.display())))?;
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
                let mut stream = self.axis.clone().download(req).await.map_err(status_err)?.into_inner();
                while let Some(chunk) = stream.message().await.map_err(status_err)? {
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
            .map_err(|_| ClientError::Transfer("the file writer stopped".into()))?
            .map_err(|e| ClientError::Transfer(format!("{}: {e}", part.display())));
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

fn status_err(s: Status) -> ClientError {
    ClientError::Transfer(format!("{:?}: {}", s.code(), s.message()))
}
