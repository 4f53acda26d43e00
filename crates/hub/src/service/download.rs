//! Ranged download of a payload, in bounded memory: a task reads the file
//! in order, one chunk at a time on a blocking thread, and feeds the stream.
//! No thread waits for the client: between two reads the task waits on the
//! stream's channel, so a thousand slow downloads hold no blocking thread
//! (the runtime's are capped, `daemon.rs`) and cannot stall store reads.

use std::sync::Arc;

use prost::bytes::Bytes;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use truc_proto::v1::{DownloadChunk, DownloadRequest};
use truc_store::PayloadRef;

use crate::{auth, status, Shared};

/// Size of the chunks Download sends: under 4 MiB with the message's own
/// fields, so a client with gRPC's default receive limit takes them, and a
/// whole number of 4 KiB blocks for `O_DIRECT` reads.
pub(crate) const DOWNLOAD_CHUNK: usize = (4 << 20) - (64 << 10);

pub(crate) async fn download(
    shared: &Arc<Shared>,
    req: Request<DownloadRequest>,
) -> Result<Response<ReceiverStream<Result<DownloadChunk, Status>>>, Status> {
    let (_, caller) = auth::agency(&req)?;
    let r = req.into_inner();
    let payload = shared
        .store
        .payload(r.hub_document_id, caller.clone())
        .await
        .map_err(status::from_store)?;
    let (tx, rx) = mpsc::channel(2);
    let shared = shared.clone();
    // The channel's two slots bound the memory and let the next read
    // overlap the sending of the last chunk.
    tokio::spawn(async move {
        let mut offset = r.offset;
        let mut file = None;
        loop {
            let chunk = match &payload {
                PayloadRef::Inline(bytes) => {
                    let start = (offset as usize).min(bytes.len());
                    Ok(Bytes::copy_from_slice(
                        &bytes[start..(start + DOWNLOAD_CHUNK).min(bytes.len())],
                    ))
                }
                PayloadRef::External { size, .. } if offset >= *size => Ok(Bytes::new()),
                PayloadRef::External { sha256, .. } => {
                    let (files, sha256, reader) = (shared.payloads.clone(), sha256.clone(), file.take());
                    let read = tokio::task::spawn_blocking(move || {
                        let mut reader = match reader {
                            Some(r) => r,
                            None => files.reader(&sha256, offset)?,
                        };
                        let (buf, range) = reader
                            .next_chunk(DOWNLOAD_CHUNK)
                            .map_err(|e| truc_store::StoreError::unavailable_from("reading a payload", e))?;
                        // The bytes stay where they were read: no copy.
                        Ok((reader, Bytes::from(buf).slice(range)))
                    })
                    .await;
                    match read {
                        Ok(Ok((reader, data))) => {
                            file = Some(reader);
                            Ok(data)
                        }
                        Ok(Err(e)) => Err(status::from_store(e)),
                        Err(_) => Err(Status::unavailable("the hub is shutting down")),
                    }
                }
            };
            let data = match chunk {
                Ok(d) if d.is_empty() => return,
                Ok(d) => d,
                Err(s) => {
                    let _ = tx.send(Err(s)).await;
                    return;
                }
            };
            let n = data.len() as u64;
            if tx.send(Ok(DownloadChunk { offset, data })).await.is_err() {
                return; // the client went away
            }
            offset += n;
            if r.delivery_id != 0 {
                shared.engine.extend_lease(&caller, r.delivery_id);
            }
        }
    });
    Ok(Response::new(ReceiverStream::new(rx)))
}
