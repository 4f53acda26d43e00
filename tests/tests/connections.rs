//! `Ops.ListConnections`: the client connections the hub holds, as an
//! operator sees them; refused to agencies.

use tonic::Code;
use truc_proto::v1::Connection;
use truc_tests::{eventually, TestHub};

const G22: &str = "000.00.00.G22";
const H26: &str = "000.00.00.H26";

fn of<'a>(list: &'a [Connection], urn: &str) -> Vec<&'a Connection> {
    list.iter().filter(|c| c.principal == urn).collect()
}

#[tokio::test]
async fn an_operator_sees_each_connected_agency_and_its_open_stream() {
    let hub = TestHub::start().await;
    let before = truc_core::now_unix_ms();
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    // G22 has made a call and holds its connection, idle; H26 keeps a
    // Receive stream open (open from the hub's side once its headers came).
    g22.inbox_state().await.unwrap();
    let stream = h26.receive(4, true).await.unwrap();
    let ops = hub.operator().await;
    let list = ops.connections().await.unwrap();
    let after = truc_core::now_unix_ms();

    let g = of(&list, &format!("urn:truc:agency:{G22}"));
    let h = of(&list, &format!("urn:truc:agency:{H26}"));
    assert_eq!((g.len(), h.len()), (1, 1), "{list:#?}");
    let (g, h) = (g[0], h[0]);
    assert_eq!(g.open_requests, 0, "{g:?}");
    assert!(g.requests_total >= 1, "{g:?}");
    assert_eq!(h.open_requests, 1, "the Receive stream: {h:?}");
    for c in [g, h] {
        assert!(
            (before..=after).contains(&c.connected_at_unix_ms),
            "{c:?} not in {before}..={after}"
        );
        assert!(c.peer_address.starts_with("127.0.0.1:"), "{c:?}");
        assert!(c.tls_version == "TLSv1.3" || c.tls_version == "TLSv1.2", "{c:?}");
        assert!(!c.cipher_suite.is_empty(), "{c:?}");
        assert!(!c.caller, "{c:?}");
    }
    // The caller's own connection, marked, with this call open on it.
    let own: Vec<_> = list.iter().filter(|c| c.caller).collect();
    assert_eq!(own.len(), 1, "{list:#?}");
    assert_eq!(own[0].principal, "urn:truc:operator:ops");
    assert!(own[0].open_requests >= 1, "{:?}", own[0]);
    // Ordered by principal.
    let principals: Vec<_> = list.iter().map(|c| c.principal.clone()).collect();
    let mut sorted = principals.clone();
    sorted.sort();
    assert_eq!(principals, sorted);

    // The stream ends: nothing open on H26's connection any more. G22
    // goes: its connection leaves the list.
    drop(stream);
    drop(g22);
    let urn_g22 = format!("urn:truc:agency:{G22}");
    let urn_h26 = format!("urn:truc:agency:{H26}");
    eventually("G22 gone and H26 idle", || {
        let ops = ops.clone();
        let (urn_g22, urn_h26) = (urn_g22.clone(), urn_h26.clone());
        async move {
            let list = ops.connections().await.unwrap();
            of(&list, &urn_g22).is_empty() && of(&list, &urn_h26).iter().all(|c| c.open_requests == 0)
        }
    })
    .await;
    assert_eq!(of(&ops.connections().await.unwrap(), &urn_h26).len(), 1);
}

#[tokio::test]
async fn agencies_and_auditors_may_not_list_connections() {
    let hub = TestHub::start().await;
    let g22 = hub.agency(G22).await;
    let e = g22.connections().await.unwrap_err();
    assert_eq!(e.code(), Some(Code::PermissionDenied), "{e:?}");
    assert!(e.to_string().contains("is not an operator"), "{e}");
    let auditor = truc_core::Principal::parse_uri("urn:truc:auditor:a1").unwrap();
    let dir = hub.pki.identity_with(&auditor, &Default::default());
    let e = hub.connect(&dir).await.connections().await.unwrap_err();
    assert_eq!(e.code(), Some(Code::PermissionDenied), "{e:?}");
}
