//! How many Sends one client lets be in the hub's hands at once, learnt
//! from the hub's pushbacks.
//!
//! A hub bounds what it holds (`limits.max_streams_per_connection`,
//! `limits.max_request_bytes_per_connection`, `limits.max_request_memory`
//! hub-wide) and pushes back what would go past it, unread
//! ([`crate::reconnect::pushback`]). A pushed-back request costs the hub
//! a stream and an answer, and the client a round trip: with deep windows
//! (100 agencies × 256 Sends in flight against a hub that holds ~900) most
//! attempts would be pushbacks, and the hub would spend its CPU refusing.
//! So each client keeps a limit of its own, as TCP keeps a congestion
//! window: it grows by one after a limit's worth of Sends accepted (sent
//! since the last halving) and halves at a pushback (once per round:
//! pushbacks of requests sent before the last halving do not halve it
//! again); a refusal or a broken connection leaves it as it is. Sends past
//! the limit wait here, in order, costing nothing on the wire; clients
//! sharing a hub converge to fair shares of what it holds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tokio::sync::{Semaphore, SemaphorePermit};
use truc_core::sync::Locked;

/// The limit a client starts from. Below the hub's default stream limit
/// per connection (128, which h2 enforces anyway): many clients starting
/// at once would otherwise meet the hub-wide memory bound with a round of
/// pushbacks each. A busy client grows past it within a few thousand
/// accepted Sends.
const START: u32 = 32;
/// The most Sends a client ever lets be in the hub's hands at once.
const MAX: u32 = 4096;

/// A client's limit on Sends in the hub's hands, and its pushbacks.
#[derive(Debug)]
pub(crate) struct Admission {
    slots: Semaphore,
    state: Mutex<State>,
    pushbacks: AtomicU64,
}

#[derive(Debug)]
struct State {
    limit: u32,
    /// Sends accepted since the limit last grew.
    accepted: u32,
    /// Bumped at every halving.
    round: u64,
    /// Slots to take away as they come back (a halving takes the free
    /// ones at once, the rest when their Sends are answered).
    owed: u32,
}

/// How a Send let through ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// The hub took it.
    Accepted,
    /// The hub pushed it back, unread.
    PushedBack,
    /// Anything else (a refusal, a broken connection): no news of the
    /// hub's limits.
    Other,
}

/// One Send let through: give it back with [`Admission::done`].
#[derive(Debug)]
pub(crate) struct Slot<'a> {
    permit: SemaphorePermit<'a>,
    round: u64,
}

impl Default for Admission {
    fn default() -> Self {
        Admission {
            slots: Semaphore::new(START as usize),
            state: Mutex::new(State {
                limit: START,
                accepted: 0,
                round: 0,
                owed: 0,
            }),
            pushbacks: AtomicU64::new(0),
        }
    }
}

impl Admission {
    /// Wait for a slot (in arrival order).
    pub(crate) async fn slot(&self) -> Slot<'_> {
        let permit = self.slots.acquire().await.expect("the semaphore is never closed");
        let round = self.state.locked().round;
        Slot { permit, round }
    }

    /// `slot`'s Send was answered.
    pub(crate) fn done(&self, slot: Slot<'_>, answer: Answer) {
        let mut s = self.state.locked();
        if answer == Answer::PushedBack {
            self.pushbacks.fetch_add(1, Ordering::Relaxed);
            if slot.round == s.round && s.limit > 1 {
                let cut = s.limit - s.limit / 2;
                s.limit -= cut;
                s.round += 1;
                s.accepted = 0;
                let free = self.slots.forget_permits(cut as usize) as u32;
                s.owed += cut - free;
            }
        } else if answer == Answer::Accepted && slot.round == s.round && s.owed == 0 && s.limit < MAX {
            s.accepted += 1;
            if s.accepted >= s.limit {
                s.accepted = 0;
                s.limit += 1;
                self.slots.add_permits(1);
            }
        }
        if s.owed > 0 {
            s.owed -= 1;
            slot.permit.forget();
        }
    }

    /// Pushbacks so far.
    pub(crate) fn pushbacks(&self) -> u64 {
        self.pushbacks.load(Ordering::Relaxed)
    }

    #[cfg(test)]
    fn limit(&self) -> u32 {
        self.state.locked().limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_pushback_halves_the_limit_once_per_round_and_acceptances_grow_it_back() {
        let a = Admission::default();
        let mut held = Vec::new();
        for _ in 0..START {
            held.push(a.slot().await);
        }
        assert_eq!(a.slots.available_permits(), 0);
        // Every Send in flight is pushed back: one halving, not five.
        for _ in 0..5 {
            a.done(held.pop().unwrap(), Answer::PushedBack);
        }
        assert_eq!(a.limit(), START / 2);
        assert_eq!(a.pushbacks(), 5);
        // The rest come back accepted: slots owed are taken first, so what
        // is free never exceeds the limit.
        while let Some(s) = held.pop() {
            a.done(s, Answer::Accepted);
        }
        assert_eq!(a.slots.available_permits(), (START / 2) as usize);
        // A limit's worth of acceptances: one more slot.
        for _ in 0..START / 2 {
            let s = a.slot().await;
            a.done(s, Answer::Accepted);
        }
        assert_eq!(a.limit(), START / 2 + 1);
        assert_eq!(a.slots.available_permits(), (START / 2 + 1) as usize);
    }

    #[tokio::test]
    async fn failures_that_are_not_pushbacks_leave_the_limit_alone() {
        let a = Admission::default();
        for _ in 0..START * 2 {
            let s = a.slot().await;
            a.done(s, Answer::Other);
        }
        assert_eq!(a.limit(), START);
        assert_eq!(a.pushbacks(), 0);
        assert_eq!(a.slots.available_permits(), START as usize);
    }

    #[tokio::test]
    async fn the_limit_never_falls_below_one() {
        let a = Admission::default();
        for _ in 0..20 {
            let s = a.slot().await;
            a.done(s, Answer::PushedBack);
        }
        assert_eq!(a.limit(), 1);
        assert_eq!(a.slots.available_permits(), 1);
    }
}
