//! Submitting this hub's checkpoints to a peer's witness
//! (c2sp.org/tlog-witness, the client side) and keeping its cosignatures.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Limited};
use hyper::header::{CONNECTION, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::sync::watch;
use tracing::{debug, error, warn};
use truc_core::c2sp::witness::{self, AddCheckpoint, SIZE_CONTENT_TYPE};
use truc_core::c2sp::{Checkpoint, Note};
use truc_core::merkle::Hash;

use super::{PeerWitness, Witnessing};
use crate::Shared;

/// Longest one submission may take, connection included.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Largest answer read.
const MAX_ANSWER: usize = 64 * 1024;

/// Submit this hub's latest checkpoint to the witness of `peers[index]`
/// whenever the log has grown (checked a few times per interval) and at
/// least every interval, until stopped.
pub(crate) async fn run(shared: Arc<Shared>, index: usize, mut stop: watch::Receiver<bool>) {
    let w = shared.witness.clone();
    let Some(peer) = w.peers.get(index) else { return };
    let poll = (w.interval / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    // The size this witness last cosigned, as far as this hub knows (0 at
    // start: the witness answers 409 with it).
    let mut old = 0u64;
    let mut last: Option<((u64, Hash), Instant)> = None;
    loop {
        let note = match shared.federation.checkpoint(shared.store.as_ref()).await {
            Ok(n) => Some(n),
            Err(e) => {
                debug!(reason = %e, "no checkpoint to submit yet");
                None
            }
        };
        if let Some((note, head)) = note.and_then(|n| head_of(&n).map(|h| (n, h))) {
            let due = match &last {
                Some((h, at)) => *h != head || at.elapsed() >= w.interval,
                None => true,
            };
            if due {
                last = Some((head, Instant::now()));
                if let Err(why) = submit(&shared, &w, peer, &note, head, &mut old).await {
                    peer.failures.fetch_add(1, Ordering::Relaxed);
                    error!(witness = %peer.peer, url = %peer.url, size = head.0, "checkpoint not cosigned: {why}");
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = stop.changed() => return,
        }
    }
}

/// (size, root) of this hub's own note.
fn head_of(note: &str) -> Option<(u64, Hash)> {
    let n = Note::parse(note.as_bytes()).ok()?;
    let cp = Checkpoint::parse_text(&n.text).ok()?;
    Some((cp.size, cp.root))
}

/// One submission, with one retry from the size a 409 gives.
async fn submit(
    shared: &Shared,
    w: &Witnessing,
    peer: &PeerWitness,
    note: &str,
    (size, root): (u64, Hash),
    old: &mut u64,
) -> Result<(), String> {
    for _ in 0..2 {
        if *old > size {
            return Err(format!(
                "the witness has cosigned size {old} of this hub's log, which now has only {size} leaves: this \
                 hub's log was rolled back or replaced (a store restored from an older copy?). The witness will \
                 refuse it, and flag it once it signs a different tree of a size it cosigned",
                old = *old
            ));
        }
        let proof = if *old == 0 || *old == size {
            Vec::new()
        } else {
            shared
                .store
                .consistency_proof(*old, size)
                .await
                .map_err(|e| format!("cannot prove size {size} extends {old}: {e}", old = *old))?
        };
        let body = AddCheckpoint {
            old_size: *old,
            proof,
            note: note.to_string(),
        }
        .body();
        let (status, content_type, answer) = post(&peer.url, body).await?;
        match status {
            200 => {
                let line = cosignature_of(peer, note, &answer)?;
                w.cosigned.add(size, root, note, &peer.peer, line);
                *old = size;
                peer.cosigned_size.fetch_max(size, Ordering::Relaxed);
                debug!(witness = %peer.peer, size, "checkpoint cosigned");
                return Ok(());
            }
            409 if content_type.starts_with(SIZE_CONTENT_TYPE) => {
                let told = witness::parse_size_body(&answer)
                    .ok_or_else(|| format!("409 with a size that does not parse: {answer:?}"))?;
                debug!(witness = %peer.peer, old = *old, told, "the witness cosigned another size; submitting from it");
                *old = told;
            }
            _ => {
                return Err(format!(
                    "the witness answered {status}: {}{}",
                    answer.trim_end(),
                    match status {
                        404 =>
                            " (it is not configured to witness this hub: its peers entry for this hub needs \
                                checkpoint_key)",
                        403 =>
                            " (its checkpoint_key for this hub is not this hub's checkpoint key: compare it with \
                                `trucd check-config` here)",
                        409 | 422 => " (it has cosigned a checkpoint of this hub's log that this one does not extend)",
                        _ => "",
                    }
                ))
            }
        }
    }
    Err("the witness answered 409 twice; will try again".into())
}

/// The witness's cosignature of `note` in `answer`, verified with its key
/// (lines of other keys are ignored, as the specification says).
fn cosignature_of(peer: &PeerWitness, note: &str, answer: &str) -> Result<truc_core::c2sp::NoteSignature, String> {
    let lines = witness::parse_cosignature_body(answer).map_err(|e| format!("its answer: {e}"))?;
    let mut ours = lines
        .into_iter()
        .filter(|s| s.name == peer.key.name() && s.key_id == peer.key.key_id());
    let sig = ours
        .next()
        .ok_or_else(|| format!("its answer has no cosignature of its key {}", peer.key.key()))?;
    let mut cosigned = Note::parse(note.as_bytes()).map_err(|e| e.to_string())?;
    cosigned.signatures = vec![sig.clone()];
    cosigned
        .verify(&[&peer.key])
        .map_err(|e| format!("its cosignature does not verify with its key: {e}"))?;
    truc_core::c2sp::cosignature::timestamp(&sig).map_err(|e| e.to_string())?;
    Ok(sig)
}

/// POST `body` to `url`; (status, content type, body). One connection per
/// request, closed after it.
async fn post(url: &hyper::Uri, body: String) -> Result<(u16, String, String), String> {
    let exchange = async {
        let host = url.host().unwrap_or_default();
        let port = url.port_u16().unwrap_or(80);
        let tcp = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port))
            .await
            .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, String>(TokioIo::new(tcp))
            .await
            .map_err(|e| format!("HTTP handshake with {host}:{port}: {e}"))?;
        let req = Request::builder()
            .method(Method::POST)
            .uri(url.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
            .header(HOST, url.authority().map(|a| a.as_str()).unwrap_or_default())
            .header(CONTENT_TYPE, "text/plain; charset=utf-8")
            .header(CONNECTION, "close")
            .body(body)
            .map_err(|e| e.to_string())?;
        let call = async {
            let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
            let status = resp.status().as_u16();
            let ct = resp
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let bytes = Limited::new(resp.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| format!("reading the answer: {e}"))?
                .to_bytes();
            Ok::<_, String>((status, ct, String::from_utf8_lossy(&bytes).into_owned()))
        };
        tokio::pin!(call);
        tokio::pin!(conn);
        tokio::select! {
            r = &mut call => r,
            c = &mut conn => {
                if let Err(e) = c {
                    warn!(error = %e, "witness connection ended with an error");
                }
                call.await
            }
        }
    };
    tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| format!("no answer from {url} within {} s", TIMEOUT.as_secs()))?
}
