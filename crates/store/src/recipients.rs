//! Which endpoints a message goes to at fan-out: those that subscribe to it
//! (event types, channels; see [`Endpoint::accepts`]) and whose filter, if
//! they have one, holds for it. The payload is parsed at most once per
//! message, and only when a filter reads it.

use std::cell::OnceCell;

use hookd_core::filter::FilterInput;

use crate::model::{Endpoint, Message};

pub struct Recipients<'a> {
    msg: &'a Message,
    payload: OnceCell<Option<serde_json::Value>>,
}

impl<'a> Recipients<'a> {
    pub fn new(msg: &'a Message) -> Self {
        Recipients { msg, payload: OnceCell::new() }
    }

    /// Whether `ep` gets the message: it is enabled and [`Recipients::matches`].
    pub fn wants(&self, ep: &Endpoint) -> bool {
        !ep.disabled && self.matches(ep)
    }

    /// Whether `ep` subscribes to the message and its filter holds, enabled or not.
    pub fn matches(&self, ep: &Endpoint) -> bool {
        let msg = self.msg;
        if !ep.matches(&msg.event_type, msg.channels.as_deref()) {
            return false;
        }
        let Some(filter) = &ep.control.filter else { return true };
        let payload = if filter.reads_payload() { self.payload() } else { None };
        filter.matches(&FilterInput {
            event_type: &msg.event_type,
            event_id: msg.event_id.as_deref(),
            msg_id: &msg.id,
            channels: msg.channels.as_deref(),
            tags: msg.tags.as_deref(),
            payload,
        })
    }

    /// The payload as JSON (a sealed one opened); `None` when there is none or
    /// it is not JSON (a raw payload).
    fn payload(&self) -> Option<&serde_json::Value> {
        self.payload
            .get_or_init(|| {
                let bytes = self.msg.payload.as_deref()?;
                if crate::crypt::is_sealed(bytes) {
                    let opened = crate::crypt::open_body(bytes, &format!("{}:payload", self.msg.id)).ok()?;
                    serde_json::from_slice(&opened).ok()
                } else {
                    serde_json::from_slice(bytes).ok()
                }
            })
            .as_ref()
    }
}
