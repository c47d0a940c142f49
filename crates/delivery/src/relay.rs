//! The relay: requests handed to a `hookd listen` connected to this node.
//!
//! A listener attaches to a channel (its WebSocket at `/relay/CHANNEL`) and
//! gets each request meant for it through the channel's bounded queue, with
//! a one-shot slot for the answer. Two kinds of request travel a channel:
//! deliveries to a `relay://CHANNEL` endpoint (the attempt's answer is the
//! local server's), and, on a channel attached in source mode, raw requests
//! posted to `/relay/in/CHANNEL/…` by any provider.
//!
//! Channels are an organisation's own: the same name attached by another
//! organisation is another channel, so none can take over or deliver to
//! another's. The same organisation attaching it again (a reconnecting
//! listener) replaces the old connection. Channels live in this
//! node's memory: a delivery made by a node the listener is not connected to
//! fails as "no listener" and is retried like any failed attempt.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

/// Requests a channel queues for its listener before it refuses more.
const QUEUE: usize = 64;

/// Most channels one node holds (each is one listener), and of one organisation.
const MAX_CHANNELS: usize = 10_000;
const MAX_ORG_CHANNELS: usize = 100;

/// What travels a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Deliveries to a `relay://CHANNEL` endpoint of the attaching organisation.
    Endpoint,
    /// Raw requests to `/relay/in/CHANNEL/…`.
    Source,
}

/// A request for the listener.
#[derive(Debug, Clone)]
pub struct RelayRequest {
    pub method: String,
    /// Path and query the local server gets (`/` for a delivery).
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: bytes::Bytes,
    /// For a delivery: the message id and its event type (for the listener's log).
    pub msg_id: Option<String>,
    pub event_type: Option<String>,
}

/// The listener's answer: the local server's response, or why there was none.
#[derive(Debug, Clone, Default)]
pub struct RelayResponse {
    pub status: Option<u16>,
    pub headers: Vec<(String, String)>,
    pub body: bytes::Bytes,
    pub error: Option<String>,
}

/// One request and where its answer goes.
pub struct RelayCall {
    pub request: RelayRequest,
    pub reply: oneshot::Sender<RelayResponse>,
}

struct Channel {
    mode: Mode,
    generation: u64,
    tx: mpsc::Sender<RelayCall>,
}

/// This node's attached channels.
#[derive(Default)]
pub struct RelayHub {
    /// By (organisation, channel name).
    channels: Mutex<HashMap<(String, String), Channel>>,
    generations: AtomicU64,
}

/// A listener's hold on its channel; the channel goes when it is dropped
/// (unless a newer connection has replaced it).
pub struct Attachment {
    hub: Arc<RelayHub>,
    channel: (String, String),
    generation: u64,
    pub calls: mpsc::Receiver<RelayCall>,
}

impl Drop for Attachment {
    fn drop(&mut self) {
        let mut channels = self.hub.channels.lock().unwrap_or_else(|e| e.into_inner());
        if channels.get(&self.channel).is_some_and(|c| c.generation == self.generation) {
            channels.remove(&self.channel);
        }
    }
}

/// Why a channel could not be attached: the node (or the organisation on
/// it) holds as many channels as it may.
#[derive(Debug, PartialEq, Eq)]
pub struct Full;

/// Why a request could not be relayed.
#[derive(Debug, PartialEq, Eq)]
pub enum RelayError {
    /// No listener holds the channel on this node.
    NoListener,
    /// The listener has `QUEUE` requests waiting already.
    Busy,
    /// The listener went away before answering.
    Gone,
    TimedOut,
}

impl std::fmt::Display for RelayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RelayError::NoListener => "no `hookd listen` is connected to this relay channel on this node",
            RelayError::Busy => "the `hookd listen` of this channel has too many requests waiting",
            RelayError::Gone => "the `hookd listen` disconnected before answering",
            RelayError::TimedOut => "timed out waiting for the `hookd listen`'s local server",
        })
    }
}

impl RelayHub {
    /// Attaches `channel` for `org_id`, replacing this organisation's earlier
    /// connection to it.
    pub fn attach(self: &Arc<Self>, org_id: &str, channel: &str, mode: Mode) -> Result<Attachment, Full> {
        let key = (org_id.to_string(), channel.to_string());
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if !channels.contains_key(&key) {
            let of_org = channels.keys().filter(|(o, _)| o == org_id).count();
            if channels.len() >= MAX_CHANNELS || of_org >= MAX_ORG_CHANNELS {
                return Err(Full);
            }
        }
        let generation = self.generations.fetch_add(1, Ordering::Relaxed);
        let (tx, calls) = mpsc::channel(QUEUE);
        channels.insert(key.clone(), Channel { mode, generation, tx });
        Ok(Attachment { hub: self.clone(), channel: key, generation, calls })
    }

    /// Hands `request` to the listener of `org_id`'s `channel` and waits up
    /// to `timeout` for its answer. `mode` says what the request is (a
    /// delivery, or a raw request to `/relay/in/…`), and must be the channel's.
    pub async fn forward(
        &self,
        org_id: &str,
        channel: &str,
        mode: Mode,
        request: RelayRequest,
        timeout: Duration,
    ) -> Result<RelayResponse, RelayError> {
        let tx = {
            let channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
            let key = (org_id.to_string(), channel.to_string());
            match channels.get(&key) {
                Some(c) if c.mode == mode => c.tx.clone(),
                _ => return Err(RelayError::NoListener),
            }
        };
        let (reply, answer) = oneshot::channel();
        tx.try_send(RelayCall { request, reply }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => RelayError::Busy,
            mpsc::error::TrySendError::Closed(_) => RelayError::Gone,
        })?;
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(_)) => Err(RelayError::Gone),
            Err(_) => Err(RelayError::TimedOut),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> RelayRequest {
        RelayRequest {
            method: "POST".into(),
            path: "/".into(),
            headers: vec![],
            body: bytes::Bytes::from_static(b"{}"),
            msg_id: None,
            event_type: None,
        }
    }

    #[tokio::test]
    async fn a_channel_answers_its_own_organisation_only() {
        let hub = Arc::new(RelayHub::default());
        let mut att = hub.attach("org_a", "chan-0123456789abcdef", Mode::Endpoint).unwrap();
        // Another organisation's channel of the same name is its own.
        let _other = hub.attach("org_b", "chan-0123456789abcdef", Mode::Endpoint).unwrap();
        tokio::spawn(async move {
            while let Some(call) = att.calls.recv().await {
                let _ = call.reply.send(RelayResponse { status: Some(204), ..Default::default() });
            }
        });
        let t = Duration::from_secs(5);
        let ok = hub.forward("org_a", "chan-0123456789abcdef", Mode::Endpoint, request(), t).await.unwrap();
        assert_eq!(ok.status, Some(204));
        let other = hub.forward("org_c", "chan-0123456789abcdef", Mode::Endpoint, request(), t).await;
        assert_eq!(other.err(), Some(RelayError::NoListener));
        // An endpoint channel takes no raw requests.
        let raw = hub.forward("org_a", "chan-0123456789abcdef", Mode::Source, request(), t).await;
        assert_eq!(raw.err(), Some(RelayError::NoListener));
    }

    #[tokio::test]
    async fn a_reconnect_replaces_the_old_connection_and_its_drop_keeps_the_new() {
        let hub = Arc::new(RelayHub::default());
        let old = hub.attach("org_a", "chan-0123456789abcdef", Mode::Source).unwrap();
        let mut new = hub.attach("org_a", "chan-0123456789abcdef", Mode::Source).unwrap();
        drop(old);
        tokio::spawn(async move {
            let call = new.calls.recv().await.unwrap();
            let _ = call.reply.send(RelayResponse { status: Some(200), ..Default::default() });
            // Held until the test ends.
            std::future::pending::<()>().await;
        });
        let ok = hub
            .forward("org_a", "chan-0123456789abcdef", Mode::Source, request(), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(ok.status, Some(200));
    }

    #[tokio::test]
    async fn no_answer_in_time_is_a_timeout_and_a_gone_listener_says_so() {
        let hub = Arc::new(RelayHub::default());
        let att = hub.attach("org_a", "chan-0123456789abcdef", Mode::Source).unwrap();
        let r = hub.forward("org_a", "chan-0123456789abcdef", Mode::Source, request(), Duration::from_millis(50)).await;
        assert_eq!(r.err(), Some(RelayError::TimedOut));
        drop(att);
        let r = hub.forward("org_a", "chan-0123456789abcdef", Mode::Source, request(), Duration::from_millis(50)).await;
        assert_eq!(r.err(), Some(RelayError::NoListener));
    }
}
