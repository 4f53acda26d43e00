use super::*;

fn id(s: &str) -> HubId {
    HubId::parse(s).unwrap()
}

fn code(s: &str) -> AgencyCode {
    AgencyCode::parse(s).unwrap()
}

fn pats(list: &[&str]) -> Vec<CodePattern> {
    list.iter().map(|p| CodePattern::parse(p).unwrap()).collect()
}

/// The province hub H49 of the example: serves its own units in
/// both formats, sends the Ministry of Finance's units to g12 directly,
/// everything else to the national hub.
fn h49() -> RoutingTable {
    RoutingTable::new(
        Some(&id("h49")),
        &pats(&["*.H49", "H49.*"]),
        &[
            (id("national"), pats(&["*.G22", "G22.*"])),
            (id("g12"), pats(&["*.G12", "G12.*", "000.00.00.G22"])),
        ],
        Some(&id("national")),
    )
    .unwrap()
}

#[test]
fn the_documented_order_of_decision() {
    let t = h49();
    let peer = |s: &str| Route::Peer(id(s));
    // Registered here: local, whatever the patterns say.
    assert_eq!(t.route(&code("000.00.00.G12"), true), Route::Local);
    // An exact code beats the pattern of another peer.
    assert_eq!(t.route(&code("000.00.00.G22"), false), peer("g12"));
    assert_eq!(t.route(&code("000.00.01.G22"), false), peer("national"));
    assert_eq!(t.route(&code("000.00.04.G12"), false), peer("g12"));
    assert_eq!(t.route(&code("G12.04"), false), peer("g12"));
    assert_eq!(t.route(&code("G12"), false), peer("g12"));
    // Nothing matches: the default peer.
    assert_eq!(t.route(&code("000.00.00.H29"), false), peer("national"));
    assert_eq!(t.route(&code("H29.01"), false), peer("national"));
    // Served here by pattern but not registered: unroutable, not sent up.
    match t.route(&code("001.00.00.H49"), false) {
        Route::Unroutable(why) => assert_eq!(
            why.to_string(),
            "001.00.00.H49 is served by this hub (*.H49) but is not registered here"
        ),
        other => panic!("{other:?}"),
    }
    assert!(matches!(t.route(&code("H49.02"), false), Route::Unroutable(_)));
}

#[test]
fn more_groups_win_in_both_formats() {
    let t = RoutingTable::new(
        Some(&id("national")),
        &[],
        &[
            (id("g14"), pats(&["*.G14", "G14.*"])),
            (id("g14-04"), pats(&["*.04.G14", "G14.04.*"])),
        ],
        None,
    )
    .unwrap();
    assert_eq!(t.route(&code("000.00.04.G14"), false), Route::Peer(id("g14-04")));
    assert_eq!(t.route(&code("000.00.05.G14"), false), Route::Peer(id("g14")));
    assert_eq!(t.route(&code("G14.04.9"), false), Route::Peer(id("g14-04")));
    assert_eq!(t.route(&code("G14.05"), false), Route::Peer(id("g14")));
    assert_eq!(t.route(&code("G14"), false), Route::Peer(id("g14")));
    // No default peer: said plainly.
    match t.route(&code("000.00.00.H29"), false) {
        Route::Unroutable(Unroutable::NoRoute(c)) => assert_eq!(c, code("000.00.00.H29")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_document_goes_once_to_each_next_hop() {
    let t = h49();
    let to: Vec<AgencyCode> = [
        "000.00.00.G12",
        "000.00.01.G12",
        "000.00.00.H29",
        "001.00.00.H49",
        "002.00.00.H49",
    ]
    .iter()
    .map(|s| code(s))
    .collect();
    let plan = t.plan(&to, |c| c.as_str() == "002.00.00.H49");
    assert_eq!(plan.local, vec![code("002.00.00.H49")]);
    assert_eq!(plan.peers.len(), 2);
    assert_eq!(
        plan.peers[&id("g12")],
        vec![code("000.00.00.G12"), code("000.00.01.G12")]
    );
    assert_eq!(plan.peers[&id("national")], vec![code("000.00.00.H29")]);
    assert_eq!(plan.unroutable.len(), 1);
}

#[test]
fn configuration_errors_name_the_peers_and_the_pattern() {
    let own = id("h49");
    let build = |serves: &[&str], peers: &[(&str, &[&str])], default: Option<&str>| {
        let peers: Vec<(HubId, Vec<CodePattern>)> = peers.iter().map(|(i, p)| (id(i), pats(p))).collect();
        RoutingTable::new(Some(&own), &pats(serves), &peers, default.map(id).as_ref())
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        build(&[], &[("national", &["*.G22"]), ("g12", &["*.G22"])], None),
        "*.G22 is served by both peer national and peer g12: a code must have one route; remove it from one of them \
         or list the codes that go to each exactly"
    );
    assert_eq!(
        build(&["H49.*"], &[("national", &["H49.*"])], None),
        "H49.* is served by both this hub and peer national: a code must have one route; remove it from one of them \
         or list the codes that go to each exactly"
    );
    assert!(build(&[], &[("a", &["G09.01"]), ("b", &["G09.01"])], None)
        .contains("G09.01 is served by both peer a and peer b"));
    assert_eq!(
        build(&[], &[("national", &["*.G22", "*.G22"])], None),
        "peer national lists *.G22 twice"
    );
    assert_eq!(
        build(&[], &[("national", &[]), ("national", &[])], None),
        "peer national is configured twice"
    );
    assert_eq!(build(&[], &[("h49", &[])], None), "peer h49 has this hub's own id");
    // Before the hub's own id is known, only that check is left out.
    RoutingTable::new(None, &[], &[(id("h49"), vec![])], None).unwrap();
    assert_eq!(
        build(&[], &[("national", &[])], Some("nationl")),
        "default_peer nationl is not one of the configured peers"
    );
    // Overlapping but not equal patterns are fine: the more specific wins.
    RoutingTable::new(
        Some(&own),
        &[],
        &[
            (id("a"), pats(&["*.G14"])),
            (id("b"), pats(&["*.04.G14", "000.00.04.G14"])),
        ],
        None,
    )
    .unwrap();
}

#[test]
fn hub_ids_follow_the_principal_name_rule() {
    for ok in ["national", "h49", "g12", "0", "a.b_c-d"] {
        let h = HubId::parse(ok).unwrap();
        assert_eq!(h.principal().uri(), format!("urn:truc:hub:{ok}"));
    }
    for bad in ["", "H49", "-a", "a b", "a/b", &"a".repeat(65)] {
        let e = HubId::parse(bad).unwrap_err().to_string();
        assert!(e.contains("hub id") && e.contains("lower-case"), "{bad:?}: {e}");
    }
}
