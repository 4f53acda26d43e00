//! Property tests of the federation routing table against a brute-force
//! model: every pattern of every route is tried against the code, and the
//! most specific match must be unique and be what the table answers.
//!
//! Codes and patterns are drawn from a few groups so that they overlap
//! often (the same province in both formats, nested units).

use proptest::prelude::*;
use truc_core::routing::{CodePattern, HubId, Route, RoutingError, RoutingTable, Unroutable};
use truc_core::AgencyCode;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

const LEVEL1: [&str; 3] = ["H49", "G12", "Z01"];
const LOW_102: [&str; 2] = ["00", "01"];
const LOW_QD20: [&str; 2] = ["01", "AB"];

/// A QCVN 102 code: up to three lower groups, the level-1 code last.
fn qcvn102() -> impl Strategy<Value = String> {
    (
        prop::sample::select(LEVEL1.to_vec()),
        prop::collection::vec(prop::sample::select(LOW_102.to_vec()), 0..=3),
    )
        .prop_map(|(l1, low)| {
            let mut g: Vec<&str> = low;
            g.push(l1);
            g.join(".")
        })
}

/// A QĐ 20 code: the level-1 code first (not Z), up to three groups after.
fn qd20() -> impl Strategy<Value = String> {
    (
        prop::sample::select(LEVEL1[..2].to_vec()),
        prop::collection::vec(prop::sample::select(LOW_QD20.to_vec()), 0..=3),
    )
        .prop_map(|(l1, rest)| {
            let mut g = vec![l1];
            g.extend(rest);
            g.join(".")
        })
}

fn code() -> impl Strategy<Value = AgencyCode> {
    prop_oneof![qcvn102(), qd20()].prop_map(|s| AgencyCode::parse(&s).expect("generated codes are valid"))
}

/// An exact code, a suffix of a QCVN 102 code, or a prefix of a QĐ 20 code.
fn pattern() -> impl Strategy<Value = CodePattern> {
    let suffix = (qcvn102(), 1usize..=4).prop_map(|(c, n)| {
        let g: Vec<&str> = c.split('.').collect();
        let n = n.min(g.len());
        format!("*.{}", g[g.len() - n..].join("."))
    });
    let prefix = (qd20(), 1usize..=4).prop_map(|(c, n)| {
        let g: Vec<&str> = c.split('.').collect();
        format!("{}.*", g[..n.min(g.len())].join("."))
    });
    prop_oneof![code().prop_map(|c| c.to_string()), suffix, prefix]
        .prop_map(|s| CodePattern::parse(&s).expect("generated patterns are valid"))
}

fn id(s: &str) -> HubId {
    HubId::parse(s).unwrap()
}

/// Routes as generated: (index of the route, its pattern); route 0 is this
/// hub, route i > 0 is peer `p<i>`. Repeated patterns are kept only the
/// first time, so the table must build.
fn routes() -> impl Strategy<Value = Vec<(usize, CodePattern)>> {
    prop::collection::vec((0usize..4, pattern()), 0..24).prop_map(|v| {
        let mut seen = std::collections::HashSet::new();
        v.into_iter().filter(|(_, p)| seen.insert(p.clone())).collect()
    })
}

fn build(routes: &[(usize, CodePattern)], default: Option<usize>) -> Result<RoutingTable, RoutingError> {
    let serves: Vec<CodePattern> = routes.iter().filter(|(r, _)| *r == 0).map(|(_, p)| p.clone()).collect();
    let peers: Vec<(HubId, Vec<CodePattern>)> = (1..4)
        .map(|i| {
            let pats = routes.iter().filter(|(r, _)| *r == i).map(|(_, p)| p.clone()).collect();
            (id(&format!("p{i}")), pats)
        })
        .collect();
    RoutingTable::new(
        Some(&id("here")),
        &serves,
        &peers,
        default.map(|i| id(&format!("p{i}"))).as_ref(),
    )
}

proptest! {
    #![proptest_config(config())]

    /// A code is matched by at most one most-specific route, and the table
    /// answers it; an exact code beats every pattern; without a match the
    /// default peer (or nothing) takes it; a registered code is local.
    #[test]
    fn the_most_specific_route_is_unique_and_is_the_answer(
        routes in routes(),
        default in prop::option::of(1usize..4),
        code in code(),
        registered in any::<bool>(),
    ) {
        let table = build(&routes, default).expect("distinct patterns build");
        let matching: Vec<&(usize, CodePattern)> = routes.iter().filter(|(_, p)| p.matches(&code)).collect();
        let best = matching.iter().map(|(_, p)| p.specificity()).max();
        let winners: Vec<usize> = matching
            .iter()
            .filter(|(_, p)| Some(p.specificity()) == best)
            .map(|(r, _)| *r)
            .collect();
        prop_assert!(winners.len() <= 1, "{code} has {} equally specific routes: {matching:?}", winners.len());
        if let Some((_, exact)) = matching.iter().find(|(_, p)| matches!(p, CodePattern::Exact(_))) {
            prop_assert_eq!(Some(exact.specificity()), best, "an exact code beats every pattern");
        }
        let expected = match (registered, winners.first(), default) {
            (true, _, _) => Route::Local,
            (false, Some(0), _) => Route::Unroutable(Unroutable::NotRegisteredHere {
                code: code.clone(),
                pattern: matching
                    .iter()
                    .find(|(r, p)| *r == 0 && Some(p.specificity()) == best)
                    .map(|(_, p)| p.clone())
                    .unwrap(),
            }),
            (false, Some(&r), _) => Route::Peer(id(&format!("p{r}"))),
            (false, None, Some(d)) => Route::Peer(id(&format!("p{d}"))),
            (false, None, None) => Route::Unroutable(Unroutable::NoRoute(code.clone())),
        };
        prop_assert_eq!(table.route(&code, registered), expected);
    }

    /// A pattern given to two different routes is refused at load time,
    /// naming both; given twice to one route, naming it.
    #[test]
    fn a_pattern_in_two_routes_is_refused_naming_both(
        routes in routes(),
        extra in pattern(),
        a in 0usize..4,
        b in 0usize..4,
    ) {
        let mut routes: Vec<(usize, CodePattern)> = routes.into_iter().filter(|(_, p)| p != &extra).collect();
        routes.push((a, extra.clone()));
        routes.push((b, extra.clone()));
        let name = |r: usize| if r == 0 { "this hub".to_string() } else { format!("peer p{r}") };
        let err = build(&routes, None).unwrap_err().to_string();
        if a == b {
            prop_assert_eq!(err, format!("{} lists {extra} twice", name(a)));
        } else {
            // Routes are read in configuration order: this hub, then p1, p2, p3.
            let (first, second) = (name(a.min(b)), name(a.max(b)));
            prop_assert!(err.starts_with(&format!("{extra} is served by both {first} and {second}")), "{err}");
        }
    }
}
