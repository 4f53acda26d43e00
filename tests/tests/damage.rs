//! Damage at rest: the hub either refuses to start, naming the file and
//! what would be lost, or starts and serves only correct data. No
//! acknowledged document is lost without a named refusal, and no second,
//! different tree head of a size is ever signed without an operator's
//! explicit `trucd repair --accept-loss` (which the log then records).
//!
//! Each case works on a crash image: a copy of a running hub's data
//! directory taken right after its sends were acknowledged, with sled's
//! own background flush held off (`store.sled_flush_ms`), so the image is
//! what a SIGKILL or a power cut would leave: the acknowledged batches in
//! the store's log and not yet in sled. The embedded store only: a
//! JetStream hub's directory is a view rebuilt from the shared log.

use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use prost::Message;
use tempfile::TempDir;
use truc_client::Client;
use truc_hub::config::StoreEngine;
use truc_hub::{Config, RunningHub};
use truc_proto::v1::{SendResponse, TreeHead};
use truc_tests::{copy_dir, drain, header, sign, TestHub};

const G22: &str = "000.00.00.G22";
const H26: &str = "000.00.00.H26";
const H29: &str = "000.00.00.H29";
/// Documents sent before the image is taken.
const SENT: usize = 12;

/// Every tree head the test saw, by size: a second, different head of a
/// size already seen fails the test.
#[derive(Default)]
struct Heads(BTreeMap<u64, Vec<u8>>);

impl Heads {
    fn note(&mut self, r: &SendResponse) {
        let sth = r
            .receipt
            .as_ref()
            .and_then(|p| p.tree_head.as_ref())
            .expect("tree head");
        let th = TreeHead::decode(sth.tree_head.as_slice()).expect("tree head decodes");
        if let Some(root) = self.0.get(&th.tree_size) {
            assert_eq!(
                root, &th.root_hash,
                "a second, different tree head of size {}",
                th.tree_size
            );
        }
        self.0.insert(th.tree_size, th.root_hash);
    }
}

/// A crash image of a hub that accepted `SENT` documents from G22: to
/// H26, except document 5, which goes to H29 alone.
struct Image {
    hub: TestHub,
    _dir: TempDir,
    config: Config,
    heads: Heads,
}

fn payload(i: usize) -> Vec<u8> {
    format!("DOCUMENT-{i:04}-").repeat(40).into_bytes()
}

fn to(i: usize) -> &'static str {
    if i == 5 {
        H29
    } else {
        H26
    }
}

/// A crash image on the engine `TRUC_TEST_ENGINE` names.
async fn crash_image() -> Image {
    crash_image_on(truc_tests::test_engine()).await
}

/// A crash image whose database is on `engine`.
async fn crash_image_on(engine: StoreEngine) -> Image {
    let mut hub = TestHub::start_sled_with(|c| {
        c.store.engine = engine;
        c.store.sled_flush_ms = 3_600_000;
    })
    .await;
    hub.agency(G22).await;
    hub.agency(H26).await;
    hub.agency(H29).await;
    // A graceful restart: sled's files hold everything so far, with a
    // snapshot. Then the image's database is taken, before the sends…
    hub.restart().await;
    // The first batch in the new segment has the older one's batch records
    // freed (after a sled flush: `store/sled/punch.rs`): wait for that, so
    // the image's database is as new as the log says it must be.
    hub.agency("000.00.00.H30").await;
    let marker = hub.config.data_dir.join("bodies").join("punched");
    truc_tests::eventually("the old segment is punched", || {
        let done = std::fs::read_to_string(&marker).is_ok_and(|m| m.trim() == "2");
        async move { done }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("store");
    copy_dir(&hub.config.data_dir, &image);
    let g22 = hub.connect(&hub.pki.agency_dir(G22)).await;
    let mut heads = Heads::default();
    for i in 0..SENT {
        let r = g22
            .send(sign(&g22, header(&[to(i)], &format!("dmg/{i}")), &payload(i)))
            .await
            .expect("send");
        heads.note(&r);
    }
    // …and its log after them: what a crash leaves when sled had written
    // none of the acknowledged batches (the log holds them all).
    std::fs::remove_dir_all(image.join("bodies")).unwrap();
    copy_dir(&hub.config.data_dir.join("bodies"), &image.join("bodies"));
    std::fs::copy(hub.config.data_dir.join("signed-head"), image.join("signed-head")).unwrap();
    hub.stop().await;
    let mut config = hub.config.clone();
    config.data_dir = image;
    Image {
        hub,
        _dir: dir,
        config,
        heads,
    }
}

/// The log's segments, oldest first.
fn segments(data: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(data.join("bodies"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    v.sort();
    v
}

/// The records of a segment: (offset, kind, length of kind + content),
/// as crates/store/src/sled/log.rs writes them.
fn records(seg: &Path) -> Vec<(u64, u8, u64)> {
    let b = std::fs::read(seg).unwrap();
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + 9 <= b.len() {
        let len = u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize;
        if len == 0 || at + 8 + len > b.len() {
            break;
        }
        out.push((at as u64, b[at + 8], len as u64));
        at += 8 + len;
    }
    out
}

/// Batch records (kind 2) of the segment that holds the most.
fn batch_records(data: &Path) -> (PathBuf, Vec<(u64, u64)>) {
    segments(data)
        .into_iter()
        .map(|s| {
            let b = records(&s)
                .into_iter()
                .filter(|r| r.1 == 2)
                .map(|r| (r.0, r.2))
                .collect::<Vec<_>>();
            (s, b)
        })
        .max_by_key(|(_, b)| b.len())
        .unwrap()
}

fn flip(path: &Path, at: u64) {
    let f = std::fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x04], at).unwrap();
}

/// Start a hub on the image: the error's text, or the running hub.
async fn start(config: &Config) -> Result<RunningHub, String> {
    truc_hub::start(config.clone()).await.map_err(|e| {
        assert!(e.is_damage() || !e.to_string().is_empty());
        e.to_string()
    })
}

async fn connect(running: &RunningHub, dir: &Path) -> Client {
    Client::connect_dir(&running.addr.to_string(), dir)
        .await
        .expect("connect")
}

/// Every document of the image that is not in `lost` reaches its
/// recipient, byte for byte; nothing else arrives.
async fn all_arrive(img: &Image, running: &RunningHub, lost: &[usize]) {
    for code in [H26, H29] {
        let c = connect(running, &img.hub.pki.agency_dir(code)).await;
        let mut got: Vec<(String, Vec<u8>)> = drain(&c, 64)
            .await
            .iter()
            .map(|d| (truc_tests::document_id(d), d.document.as_ref().unwrap().payload.clone()))
            .collect();
        got.sort();
        let mut want: Vec<(String, Vec<u8>)> = (0..SENT)
            .filter(|i| to(*i) == code && !lost.contains(i))
            .map(|i| (format!("dmg/{i}"), payload(i)))
            .collect();
        want.sort();
        assert_eq!(got, want, "what {code} received");
    }
}

/// Send more after a start and check the heads against every one seen.
async fn more_sends(img: &mut Image, running: &RunningHub, tag: &str) {
    let g22 = connect(running, &img.hub.pki.agency_dir(G22)).await;
    for i in 0..3 {
        let r = g22
            .send(sign(&g22, header(&[H26], &format!("{tag}/{i}")), b"after"))
            .await
            .expect("send after restart");
        img.heads.note(&r);
    }
}

fn assert_named_refusal(err: &str, file: &Path) {
    assert!(err.contains(&file.display().to_string()), "names the file: {err}");
    assert!(err.contains("trucd repair"), "says how to recover: {err}");
    assert!(err.contains("lose"), "says what would be lost: {err}");
}

#[tokio::test]
async fn a_flipped_bit_in_the_newest_batch_record_refuses_to_start_and_repair_records_the_loss() {
    let img = crash_image().await;
    let (seg, batches) = batch_records(&img.config.data_dir);
    let &(offset, len) = batches.last().unwrap();
    flip(&seg, offset + 8 + len / 2);
    let before = std::fs::read(&seg).unwrap();
    let err = start(&img.config).await.err().expect("refuses to start");
    assert_named_refusal(&err, &seg);
    assert!(err.contains(&format!("offset {offset}")), "names the offset: {err}");
    // A refusal changes nothing; so does a repair without --accept-loss.
    assert_eq!(std::fs::read(&seg).unwrap(), before);
    let e = truc_hub::repair(&img.config, false).await.unwrap_err();
    assert!(e.is_damage(), "{e}");
    assert_eq!(std::fs::read(&seg).unwrap(), before);

    // Accepting the loss: the last document is gone, the rest is there,
    // and the repair is a receipt in the log.
    let r = truc_hub::repair(&img.config, true).await.expect("repair");
    assert!(!r.dropped.is_empty());
    let lost_dir = std::fs::read_dir(img.config.data_dir.join("bodies"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("lost-"));
    assert!(lost_dir.is_some(), "the damaged part is kept aside");
    let running = start(&img.config).await.expect("starts after the repair");
    all_arrive(&img, &running, &[SENT - 1]).await;
    let ops = connect(&running, &img.hub.pki.operator_dir("ops")).await;
    let receipts = ops
        .list_receipts(truc_proto::v1::ListReceiptsRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .expect("receipts");
    let texts: Vec<String> = receipts
        .receipts
        .iter()
        .map(|p| format!("{:?}", truc_proto::v1::Receipt::decode(p.receipt.as_slice()).unwrap()))
        .collect();
    assert!(
        texts.iter().any(|t| t.contains("repair: accepted the loss")),
        "the repair is recorded: {texts:?}"
    );
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_flipped_bit_in_an_older_batch_record_refuses_to_start() {
    let img = crash_image().await;
    let (seg, batches) = batch_records(&img.config.data_dir);
    let &(offset, len) = &batches[batches.len() - 4];
    flip(&seg, offset + 8 + len / 2);
    let err = start(&img.config).await.err().expect("refuses to start");
    assert_named_refusal(&err, &seg);
    assert!(err.contains(&format!("offset {offset}")), "names the offset: {err}");
    assert!(err.contains("other records follow"), "{err}");
}

#[tokio::test]
async fn a_truncated_newest_segment_refuses_to_start() {
    let img = crash_image().await;
    let (seg, batches) = batch_records(&img.config.data_dir);
    let cut = batches[batches.len() - 3].0 + 5;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(cut)
        .unwrap();
    let err = start(&img.config).await.err().expect("refuses to start");
    assert_named_refusal(&err, &seg);
    assert!(err.contains("acknowledged batches are missing"), "{err}");
}

#[tokio::test]
async fn a_deleted_segment_refuses_to_start() {
    let img = crash_image().await;
    let (seg, _) = batch_records(&img.config.data_dir);
    std::fs::remove_file(&seg).unwrap();
    let err = start(&img.config).await.err().expect("refuses to start");
    assert!(err.contains("trucd repair"), "{err}");
    assert!(
        err.contains(&seg.display().to_string()) || err.contains("signed-head") || err.contains("missing"),
        "names what is missing: {err}"
    );
}

#[tokio::test]
async fn a_flipped_byte_in_a_body_starts_and_serves_only_correct_data() {
    let mut img = crash_image().await;
    // Document 5 (to H29 alone): its payload's bytes in the log.
    let needle = payload(5);
    let (seg, at) = segments(&img.config.data_dir)
        .into_iter()
        .find_map(|s| {
            let b = std::fs::read(&s).unwrap();
            b.windows(needle.len()).position(|w| w == needle).map(|p| (s, p as u64))
        })
        .expect("the body is in the log");
    flip(&seg, at + 100);
    let running = start(&img.config)
        .await
        .expect("starts: one body is damaged, not the log");
    // Everything else arrives intact; document 5 never arrives altered.
    for code in [H26] {
        let c = connect(&running, &img.hub.pki.agency_dir(code)).await;
        let got = drain(&c, 64).await;
        assert_eq!(got.len(), SENT - 1, "{code}");
        for d in &got {
            let i: usize = truc_tests::document_id(d)["dmg/".len()..].parse().unwrap();
            assert_eq!(d.document.as_ref().unwrap().payload, payload(i));
        }
    }
    let h29 = connect(&running, &img.hub.pki.agency_dir(H29)).await;
    if let Ok(mut s) = h29.receive(8, false).await {
        while let Ok(Some(d)) = s.message().await {
            if let Some(doc) = &d.document {
                assert_ne!(truc_tests::document_id(&d), "dmg/5", "the damaged body was delivered");
                let _ = doc;
            }
        }
    }
    more_sends(&mut img, &running, "after-body").await;
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn damage_in_the_database_file_is_refused_or_replayed_never_silently_lost() {
    // A few bytes in one place, and many spread over the file.
    for (n, flips) in [(1u64, 16u64), (2, 16), (3, 16), (4, 200), (5, 200), (6, 200)] {
        let mut img = crash_image_on(StoreEngine::Sled).await;
        let db = img.config.data_dir.join("db");
        scatter(&db, n, n, flips);
        refused_or_whole(&mut img, &format!("database damage case {n}")).await;
    }
}

/// Flip bytes of `file`: `flips` of them, 37 bytes apart from a point that
/// `n` chooses (16 or fewer), or spread over the file by a generator seeded
/// with `seed`.
fn scatter(file: &Path, n: u64, seed: u64, flips: u64) {
    let size = std::fs::metadata(file).unwrap().len();
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let base = size * n / 7;
    for k in 0..flips.min(size) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let at = if flips > 16 {
            x % size
        } else {
            (base + k * 37).min(size - 1)
        };
        flip(file, at);
    }
}

/// Start on the damaged image: a refusal that names the data directory,
/// or a hub that delivers every document and takes more.
async fn refused_or_whole(img: &mut Image, case: &str) {
    let outcome = start(&img.config).await;
    eprintln!("{case}: {:?}", outcome.as_ref().map(|_| "started"));
    match outcome {
        Err(err) => assert!(
            err.contains(&img.config.data_dir.display().to_string()),
            "{case}: the refusal names the data directory: {err}"
        ),
        Ok(running) => {
            all_arrive(img, &running, &[]).await;
            let tag = format!("after-{}", case.replace([' ', '/'], "-"));
            more_sends(img, &running, &tag).await;
            running.shutdown().await.unwrap();
        }
    }
}

/// Every file under `dir`, largest first.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort_by_key(|p| std::cmp::Reverse(std::fs::metadata(p).unwrap().len()));
    out
}

#[tokio::test]
async fn damage_in_fjall_files_is_refused_or_replayed_never_silently_lost() {
    // Each of fjall's files in turn (journals, sorted tables, their
    // metadata), a few bytes in one place and many spread over it.
    let listed = crash_image_on(StoreEngine::Fjall).await;
    let files: Vec<PathBuf> = files_under(&listed.config.data_dir.join("fjall"))
        .into_iter()
        .filter(|p| std::fs::metadata(p).unwrap().len() > 0 && !p.ends_with("truc.lock"))
        .map(|p| p.strip_prefix(&listed.config.data_dir).unwrap().to_path_buf())
        .collect();
    drop(listed);
    assert!(!files.is_empty(), "fjall wrote files");
    for (i, rel) in files.iter().enumerate() {
        for (n, flips) in [(1u64, 16u64), (4, 200)] {
            let mut img = crash_image_on(StoreEngine::Fjall).await;
            let file = img.config.data_dir.join(rel);
            if std::fs::metadata(&file).map_or(true, |m| m.len() == 0) {
                continue;
            }
            scatter(&file, n, n + i as u64, flips);
            refused_or_whole(&mut img, &format!("fjall damage {} case {n}", rel.display())).await;
        }
    }
}

#[tokio::test]
async fn a_deleted_database_snapshot_starts_and_serves_everything() {
    let mut img = crash_image_on(StoreEngine::Sled).await;
    let snaps: Vec<PathBuf> = std::fs::read_dir(&img.config.data_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("snap."))
        .collect();
    assert!(!snaps.is_empty(), "sled wrote a snapshot when it opened");
    for s in &snaps {
        std::fs::remove_file(s).unwrap();
    }
    let running = start(&img.config).await.expect("starts without a snapshot");
    all_arrive(&img, &running, &[]).await;
    more_sends(&mut img, &running, "after-snap").await;
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_undamaged_crash_image_starts_and_loses_nothing() {
    let mut img = crash_image().await;
    let r = truc_hub::repair(&img.config, false).await.expect("a sound store");
    assert!(r.dropped.is_empty());
    let running = start(&img.config).await.expect("starts");
    all_arrive(&img, &running, &[]).await;
    more_sends(&mut img, &running, "after-crash").await;
    running.shutdown().await.unwrap();
}
