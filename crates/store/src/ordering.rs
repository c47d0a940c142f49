//! Ordered endpoints in the store (see `hookd_core::ordering`): each delivery
//! to an ordered endpoint carries its ordering key, and within (endpoint, key)
//! the deliveries go in id order, which is creation order (enqueues to an
//! ordered endpoint are serialised: SQLite's one writer; a transaction lock
//! per key on PostgreSQL).
//!
//! The rule both backends enforce in their claim: a delivery with a key is
//! sent only when no earlier delivery of its key is still scheduled, leased or
//! paused. A delivery made behind another waits *parked* (scheduled, with no
//! due time, so claims never scan it); when the one before it is done (its
//! outcome recorded, canceled, or removed), the first parked one is made due.
//! The retention sweep also frees any head left parked (its predecessor was
//! deleted).

use crate::model::{Endpoint, Message};

/// The ordering key of `msg`'s delivery to `ep`; `None` when `ep` is unordered.
/// A sealed payload is opened to read a JSON Pointer key (an unreadable one
/// gives the empty key).
pub fn key_for(ep: &Endpoint, msg: &Message) -> Option<String> {
    let ordering = ep.control.ordering.as_ref()?;
    let payload = msg.payload.as_deref();
    let opened;
    let payload = match payload {
        Some(p) if ordering.key.as_deref().is_some_and(|k| k.starts_with('/')) && crate::crypt::is_sealed(p) => {
            opened = crate::crypt::open_body(p, &format!("{}:payload", msg.id)).ok();
            opened.as_deref()
        }
        other => other,
    };
    Some(ordering.key_of(msg.channels.as_deref(), payload))
}
