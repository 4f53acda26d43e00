//! Ranged download of a payload, in bounded memory: one blocking task reads
//! the file in order and feeds the stream.

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
    // One blocking task reads the file in order and feeds the stream; the
    // channel's two slots bound the memory and let reading overlap sending.
    tokio::task::spawn_blocking(move || {
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
                PayloadRef::External { sha256, size } => {
                    if offset >= *size {
                        Ok(Bytes::new())
                    } else {
                        let reader = match file.take() {
                            Some(r) => Ok(r),
                            None => shared.payloads.reader(sha256, offset),
                        };
                        reader
                            .and_then(|mut r| {
                                let data = r
                                    .next_chunk(DOWNLOAD_CHUNK)
                                    .map_err(|e| truc_store::StoreError::unavailable_from("reading a payload", e));
                                file = Some(r);
                                data
                            })
                            // The bytes stay where they were read: no copy.
                            .map(|(buf, range)| Bytes::from(buf).slice(range))
                            .map_err(status::from_store)
                    }
                }
            };
            let data = match chunk {
                Ok(d) if d.is_empty() => return,
                Ok(d) => d,
                Err(s) => {
                    let _ = tx.blocking_send(Err(s));
                    return;
                }
            };
            let n = data.len() as u64;
            if tx.blocking_send(Ok(DownloadChunk { offset, data })).is_err() {
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
