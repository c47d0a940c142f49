//! Whether a node must write to take an endpoint's queue before leasing work
//! for it (decision 1: one node at a time owns an endpoint's queue). Shared by
//! both backends' fan-out, which reads the holder without a lock first.

use crate::model::Lease;

/// Who holds an endpoint's queue, as last read.
#[derive(Debug, Clone)]
pub struct Holder {
    pub owner: String,
    pub expires_at: i64,
}

/// What a node must do about an endpoint's queue before leasing work for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// It holds the queue with more than half a lease left: nothing to write.
    Holds,
    /// The queue is free, expired, or its own and close to expiry: take (renew) it.
    Take,
    /// Another node holds the queue.
    Other,
}

/// Decides from an unlocked read, with `now` the database's time of that read.
/// Skipping the write while the node holds the queue comfortably keeps `enqueue`
/// off the `endpoint_owner` row lock: an upsert per message would make every
/// message to one endpoint wait for the previous one's commit.
pub fn standing(holder: Option<&Holder>, lease: &Lease, now: i64) -> Standing {
    match holder {
        None => Standing::Take,
        Some(h) if h.owner == lease.owner => {
            if h.expires_at - now > lease.duration_ms / 2 {
                Standing::Holds
            } else {
                Standing::Take
            }
        }
        Some(h) if h.expires_at < now => Standing::Take,
        Some(_) => Standing::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(owner: &str, expires_at: i64) -> Holder {
        Holder { owner: owner.into(), expires_at }
    }

    #[test]
    fn a_queue_is_written_only_when_free_expired_or_close_to_expiry() {
        let now = 1_000_000;
        let lease = Lease { owner: "n1".into(), duration_ms: 60_000 };
        let cases = [
            (None, Standing::Take),
            (Some(holder("n1", now + 59_000)), Standing::Holds),
            (Some(holder("n1", now + 30_001)), Standing::Holds),
            (Some(holder("n1", now + 30_000)), Standing::Take),
            (Some(holder("n1", now - 1)), Standing::Take),
            (Some(holder("n2", now + 1)), Standing::Other),
            (Some(holder("n2", now)), Standing::Other),
            (Some(holder("n2", now - 1)), Standing::Take),
        ];
        for (h, want) in cases {
            assert_eq!(standing(h.as_ref(), &lease, now), want, "{h:?}");
        }
    }
}
