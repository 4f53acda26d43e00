//! Federation routing, the pure part: for a recipient's agency code, is it
//! delivered here, forwarded to a peer hub, or not routable at all; and the
//! hop rules (a trace of hub ids, loops and a hop limit).
//!
//! No I/O: the hub builds a [`RoutingTable`] from its configuration
//! (`[[peers]]` and `[federation]`) and asks it with the set of agencies
//! registered here.
//!
//! The order of the decision, most specific first:
//!
//! 1. an agency registered at this hub is [`Route::Local`];
//! 2. an exact code listed by a peer (or by this hub's own `serves`);
//! 3. the pattern with the most groups that matches ([`CodePattern`]):
//!    `*.04.G14` before `*.G14`;
//! 4. the default peer, if one is set;
//! 5. otherwise [`Route::Unroutable`].
//!
//! A code this hub serves by its own patterns but has not registered is
//! unroutable rather than sent on: the default route would only bring it
//! back. Two routes of equal specificity for one code cannot exist: a code
//! is matched either by suffix patterns (QCVN 102) or by prefix patterns
//! (QĐ 20), and two such patterns with as many groups matching one code are
//! the same pattern, which [`RoutingTable::new`] refuses in two places.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;

use crate::agency::{clip, CodeFormat};
use crate::AgencyCode;

mod hops;
mod pattern;
mod trace;

pub use hops::{check_arrival, check_forward, HopError, DEFAULT_MAX_HOPS};
pub use pattern::{CodePattern, PatternError, Specificity};
pub use trace::{hop_message, trace_id_of, traceparent, verify_trace, TraceError};

/// A hub's id: the name in its certificate's `urn:truc:hub:<id>`
/// (`[a-z0-9][a-z0-9._-]{0,63}`, e.g. `national`, `h49`, `g12`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HubId(String);

impl HubId {
    /// Validates a hub id.
    pub fn parse(s: &str) -> Result<HubId, RoutingError> {
        if crate::principal::is_name(s) {
            Ok(HubId(s.to_string()))
        } else {
            Err(RoutingError::BadHubId(clip(s)))
        }
    }

    /// The id as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The hub's principal, `urn:truc:hub:<id>`.
    pub fn principal(&self) -> crate::Principal {
        crate::Principal::Hub(self.0.clone())
    }
}

impl fmt::Display for HubId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for HubId {
    type Err = RoutingError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HubId::parse(s)
    }
}

/// Where a document for one recipient goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// The agency is registered here: its own outbox.
    Local,
    /// Forward to this peer hub.
    Peer(HubId),
    /// Nowhere: the sender is told why.
    Unroutable(Unroutable),
}

/// Why a code has no route.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unroutable {
    /// This hub serves the code (by `pattern` of its own) but no such agency
    /// is registered here.
    #[error("{code} is served by this hub ({pattern}) but is not registered here")]
    NotRegisteredHere {
        /// The code.
        code: AgencyCode,
        /// This hub's pattern that matched it.
        pattern: CodePattern,
    },
    /// No peer serves the code and there is no default peer.
    #[error("no hub serves {0}: it is not registered here, no peer's pattern matches it and no default_peer is set")]
    NoRoute(AgencyCode),
}

/// A routing table that cannot be built, naming the peer and the pattern.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RoutingError {
    /// A hub id that is not `[a-z0-9][a-z0-9._-]{0,63}`.
    #[error("hub id {0:?}: expected lower-case letters, digits, '.', '_' and '-' (at most 64, starting with a letter or digit), as in urn:truc:hub:<id>")]
    BadHubId(String),
    /// Two peers with one id.
    #[error("peer {0} is configured twice")]
    DuplicatePeer(HubId),
    /// A peer with this hub's own id.
    #[error("peer {0} has this hub's own id")]
    PeerIsSelf(HubId),
    /// One route lists a pattern twice.
    #[error("{route} lists {pattern} twice")]
    Repeated {
        /// `peer <id>` or `this hub`.
        route: String,
        /// The pattern.
        pattern: CodePattern,
    },
    /// Two routes claim the same codes equally specifically.
    #[error("{pattern} is served by both {first} and {second}: a code must have one route; remove it from one of them or list the codes that go to each exactly")]
    Tie {
        /// The pattern both list.
        pattern: CodePattern,
        /// `peer <id>` or `this hub`, in configuration order.
        first: String,
        /// The other.
        second: String,
    },
    /// `default_peer` names no configured peer.
    #[error("default_peer {0} is not one of the configured peers")]
    UnknownDefaultPeer(HubId),
}

/// A route's target inside the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    /// This hub's own `serves`.
    Here,
    /// `peers[i]`.
    Peer(usize),
}

/// The routing decision for every code, built once from the configuration.
#[derive(Clone, Debug)]
pub struct RoutingTable {
    peers: Vec<HubId>,
    default_peer: Option<usize>,
    /// Every pattern, by kind, to its target: one lookup per group count.
    exact: HashMap<AgencyCode, (Target, CodePattern)>,
    suffix: HashMap<String, (Target, CodePattern)>,
    prefix: HashMap<String, (Target, CodePattern)>,
}

impl RoutingTable {
    /// Builds the table: `own` is this hub's id (`None` before it is known:
    /// a configuration checked before the hub certificate is read), `serves` the patterns this
    /// hub serves itself (may be empty), `peers` each peer's id and
    /// patterns in configuration order, `default_peer` the route for codes
    /// nothing else matches.
    ///
    /// Refuses duplicate or self-named peers, a pattern listed twice by one
    /// route, a pattern listed by two routes (naming both), and a default
    /// peer that is not configured.
    pub fn new(
        own: Option<&HubId>,
        serves: &[CodePattern],
        peers: &[(HubId, Vec<CodePattern>)],
        default_peer: Option<&HubId>,
    ) -> Result<RoutingTable, RoutingError> {
        let mut table = RoutingTable {
            peers: Vec::with_capacity(peers.len()),
            default_peer: None,
            exact: HashMap::new(),
            suffix: HashMap::new(),
            prefix: HashMap::new(),
        };
        for (id, _) in peers {
            if Some(id) == own {
                return Err(RoutingError::PeerIsSelf(id.clone()));
            }
            if table.peers.contains(id) {
                return Err(RoutingError::DuplicatePeer(id.clone()));
            }
            table.peers.push(id.clone());
        }
        let routes = std::iter::once((Target::Here, serves)).chain(
            peers
                .iter()
                .enumerate()
                .map(|(i, (_, p))| (Target::Peer(i), p.as_slice())),
        );
        for (target, patterns) in routes {
            for p in patterns {
                table.insert(target, p)?;
            }
        }
        if let Some(d) = default_peer {
            let i = table
                .peers
                .iter()
                .position(|p| p == d)
                .ok_or_else(|| RoutingError::UnknownDefaultPeer(d.clone()))?;
            table.default_peer = Some(i);
        }
        Ok(table)
    }

    fn name(&self, t: Target) -> String {
        match t {
            Target::Here => "this hub".to_string(),
            Target::Peer(i) => format!("peer {}", self.peers[i]),
        }
    }

    fn insert(&mut self, target: Target, p: &CodePattern) -> Result<(), RoutingError> {
        let existing = match p {
            CodePattern::Exact(c) => self.exact.insert(c.clone(), (target, p.clone())),
            CodePattern::Suffix(s) => self.suffix.insert(s.clone(), (target, p.clone())),
            CodePattern::Prefix(s) => self.prefix.insert(s.clone(), (target, p.clone())),
        };
        match existing {
            None => Ok(()),
            Some((t, _)) if t == target => Err(RoutingError::Repeated {
                route: self.name(target),
                pattern: p.clone(),
            }),
            Some((t, _)) => Err(RoutingError::Tie {
                pattern: p.clone(),
                first: self.name(t),
                second: self.name(target),
            }),
        }
    }

    /// The configured peers, in configuration order.
    pub fn peers(&self) -> &[HubId] {
        &self.peers
    }

    /// The default peer, if any.
    pub fn default_peer(&self) -> Option<&HubId> {
        self.default_peer.map(|i| &self.peers[i])
    }

    /// The most specific pattern matching `code` and where it leads, if
    /// any pattern does (the default route and registrations aside).
    fn most_specific(&self, code: &AgencyCode) -> Option<&(Target, CodePattern)> {
        if let Some(hit) = self.exact.get(code) {
            return Some(hit);
        }
        let c = code.as_str();
        let dots: Vec<usize> = c.match_indices('.').map(|(i, _)| i).collect();
        match code.format() {
            // The longest tail first: the whole code, then from each dot on.
            CodeFormat::Qcvn102 => std::iter::once(c)
                .chain(dots.iter().map(|&i| &c[i + 1..]))
                .find_map(|tail| self.suffix.get(tail)),
            // The longest head first: the whole code, then up to each dot.
            CodeFormat::Qd20 => std::iter::once(c)
                .chain(dots.iter().rev().map(|&i| &c[..i]))
                .find_map(|head| self.prefix.get(head)),
        }
    }

    /// Where a document for `code` goes, given whether `code` is
    /// registered at this hub (`registered_here`).
    pub fn route(&self, code: &AgencyCode, registered_here: bool) -> Route {
        if registered_here {
            return Route::Local;
        }
        match self.most_specific(code) {
            Some((Target::Here, pattern)) => Route::Unroutable(Unroutable::NotRegisteredHere {
                code: code.clone(),
                pattern: pattern.clone(),
            }),
            Some((Target::Peer(i), _)) => Route::Peer(self.peers[*i].clone()),
            None => match self.default_peer {
                Some(i) => Route::Peer(self.peers[i].clone()),
                None => Route::Unroutable(Unroutable::NoRoute(code.clone())),
            },
        }
    }

    /// The routes of several recipients grouped by next hop, so that a
    /// document goes once to each peer whatever the number of its
    /// recipients there. `registered_here` says which codes are local.
    pub fn plan<'a>(
        &self,
        recipients: impl IntoIterator<Item = &'a AgencyCode>,
        registered_here: impl Fn(&AgencyCode) -> bool,
    ) -> Plan {
        let mut plan = Plan::default();
        for code in recipients {
            match self.route(code, registered_here(code)) {
                Route::Local => plan.local.push(code.clone()),
                Route::Peer(p) => plan.peers.entry(p).or_default().push(code.clone()),
                Route::Unroutable(why) => plan.unroutable.push(why),
            }
        }
        plan
    }
}

/// Recipients of one document by next hop ([`RoutingTable::plan`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Delivered here.
    pub local: Vec<AgencyCode>,
    /// Forwarded, one copy per peer, with the recipients it is for.
    pub peers: BTreeMap<HubId, Vec<AgencyCode>>,
    /// Without a route, and why.
    pub unroutable: Vec<Unroutable>,
}

#[cfg(test)]
mod tests;
