//! The leases this node holds: every delivery queued here, in flight, or whose
//! outcome is on its way to the store, with the fencing token its outcome must
//! carry.
//!
//! A delivery can be leased to this node again while it is still held: its
//! lease lapsed and it was rescued (a long database outage), or its outcome made
//! it due at once (a resend during the attempt) and the claim loop took it before
//! the outcome was acknowledged here. While a copy is still queued or in flight,
//! that copy goes on under the new token; once its outcome has left, the new
//! lease is new work, to be queued and sent.

use std::collections::HashMap;

#[derive(Debug, Clone, Copy)]
struct Held {
    /// When this node leased it (Unix ms, this node's clock).
    since: i64,
    token: i64,
    /// Its outcome has left for the recorder: nothing of it is queued or in flight.
    emitted: bool,
}

#[derive(Debug, Default)]
pub struct HeldLeases {
    by_id: HashMap<i64, Held>,
}

impl HeldLeases {
    /// True when a copy of the delivery is queued or in flight here: it goes on
    /// under `token`, and the new lease needs no other copy.
    pub fn renew_if_held(&mut self, id: i64, token: i64, now: i64) -> bool {
        match self.by_id.get_mut(&id) {
            Some(h) if !h.emitted => {
                *h = Held { since: now, token, emitted: false };
                true
            }
            _ => false,
        }
    }

    /// A delivery about to be queued here under `token`.
    pub fn hold(&mut self, id: i64, token: i64, now: i64) {
        self.by_id.insert(id, Held { since: now, token, emitted: false });
    }

    /// The outcome of a held delivery leaves for the recorder: the token it must
    /// carry (the newest this node holds it by), or `token` when not held.
    pub fn emitted(&mut self, id: i64, token: i64) -> i64 {
        match self.by_id.get_mut(&id) {
            Some(h) => {
                h.emitted = true;
                h.token
            }
            None => token,
        }
    }

    /// An outcome carrying `token` is written: the delivery is let go, unless it
    /// was leased here again since (then the new lease is still held).
    pub fn written(&mut self, id: i64, token: i64) {
        if self.by_id.get(&id).is_some_and(|h| h.token == token) {
            self.by_id.remove(&id);
        }
    }

    pub fn since(&self, id: i64) -> Option<i64> {
        self.by_id.get(&id).map(|h| h.since)
    }

    pub fn ids(&self) -> Vec<i64> {
        self.by_id.keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_taken_again_while_queued_goes_on_under_the_new_token() {
        let mut held = HeldLeases::default();
        held.hold(7, 1, 100);
        assert!(held.renew_if_held(7, 2, 200), "the queued copy goes on");
        assert_eq!(held.emitted(7, 1), 2, "its outcome carries the newest token");
        held.written(7, 2);
        assert!(held.ids().is_empty());
    }

    #[test]
    fn a_lease_taken_again_after_its_outcome_left_is_new_work() {
        let mut held = HeldLeases::default();
        held.hold(7, 1, 100);
        assert_eq!(held.emitted(7, 1), 1);
        // Due again at once (a resend arrived during the attempt) and claimed
        // before the first outcome was acknowledged here.
        assert!(!held.renew_if_held(7, 2, 200), "nothing of it is queued: it must be queued again");
        held.hold(7, 2, 200);
        held.written(7, 1);
        assert_eq!(held.ids(), vec![7], "the first outcome written does not let go of the new lease");
        assert_eq!(held.since(7), Some(200));
        assert_eq!(held.emitted(7, 2), 2);
        held.written(7, 2);
        assert!(held.ids().is_empty());
    }

    #[test]
    fn an_outcome_of_a_delivery_not_held_keeps_its_own_token() {
        let mut held = HeldLeases::default();
        assert_eq!(held.emitted(9, 5), 5);
        held.written(9, 5);
        assert!(held.ids().is_empty());
    }
}
