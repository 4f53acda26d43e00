//! The engine of the store's view (`store.engine`): a new store takes the
//! configured one, an existing store keeps its own whatever the setting
//! says, and what it holds survives a restart either way.

use truc_hub::config::StoreEngine;
use truc_tests::{drain, header, sign, TestHub};

const G22: &str = "000.00.00.G22";
const H26: &str = "000.00.00.H26";

/// Start on `created`, queue a document, restart configured for `then`:
/// the store is still on `created` and the document is delivered.
async fn keeps_its_engine(created: StoreEngine, then: StoreEngine) {
    let mut hub = TestHub::start_sled_with(|c| c.store.engine = created).await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    let id = "000.00.00.G22,2026/12/07,7/VPCP";
    g22.send(sign(&g22, header(&[H26], id), b"luu giu")).await.unwrap();
    drop((g22, h26));

    let fjall_dir = hub.config.data_dir.join("fjall");
    let sled_file = hub.config.data_dir.join("conf");
    let on_fjall = || (fjall_dir.exists(), sled_file.exists());
    let expected = match created {
        StoreEngine::Fjall => (true, false),
        StoreEngine::Sled => (false, true),
    };
    assert_eq!(
        on_fjall(),
        expected,
        "(fjall/, sled's conf) in {}",
        hub.config.data_dir.display()
    );

    hub.config.store.engine = then;
    hub.restart().await;
    assert_eq!(on_fjall(), expected, "the store changed engine on restart");
    let h26 = hub.agency(H26).await;
    let got = drain(&h26, 4).await;
    assert_eq!(got.len(), 1, "the queued document after the restart");
}

#[tokio::test]
async fn a_new_store_on_fjall_stays_on_fjall() {
    keeps_its_engine(StoreEngine::Fjall, StoreEngine::Sled).await;
}

#[tokio::test]
async fn a_new_store_on_sled_stays_on_sled() {
    keeps_its_engine(StoreEngine::Sled, StoreEngine::Fjall).await;
}

#[tokio::test]
async fn fjall_keeps_every_document_across_restarts() {
    let mut hub = TestHub::start_sled_with(|c| c.store.engine = StoreEngine::Fjall).await;
    let g22 = hub.agency(G22).await;
    drop(hub.agency(H26).await);
    for n in 0..50 {
        let id = format!("000.00.00.G22,2026/12/07,{n}/VPCP");
        g22.send(sign(&g22, header(&[H26], &id), format!("van ban {n}").as_bytes()))
            .await
            .unwrap();
    }
    drop(g22);
    hub.restart().await;
    let h26 = hub.agency(H26).await;
    let mut got = Vec::new();
    while got.len() < 50 {
        let batch = drain(&h26, 64).await;
        assert!(
            !batch.is_empty(),
            "only {} of 50 documents after the restart",
            got.len()
        );
        got.extend(batch);
    }
    assert_eq!(got.len(), 50);
}
