//! NATS JetStream: a publish to the subject with the webhook headers as NATS
//! headers, acknowledged by the stream that captures the subject (a subject no
//! stream captures fails the attempt). `Nats-Msg-Id` is the message id, so
//! JetStream drops a resend within its duplicate window.

use std::net::SocketAddr;
use std::time::Duration;

use async_nats::jetstream;
use hookd_core::broker::BrokerTarget;

use super::{Broker, BrokerAuth, Publication};

pub struct NatsBroker {
    client: async_nats::Client,
    js: jetstream::Context,
}

impl NatsBroker {
    pub async fn connect(addr: SocketAddr, auth: &BrokerAuth, timeout: Duration) -> Result<NatsBroker, String> {
        // Only the vetted address: servers a cluster announces are not
        // followed (they were never checked against the destination policy).
        let mut options = async_nats::ConnectOptions::new()
            .connection_timeout(timeout)
            .ignore_discovered_servers()
            .max_reconnects(Some(10))
            .name("hookd");
        if let (Some(user), Some(password)) = (&auth.user, &auth.password) {
            options = options.user_and_password(user.clone(), password.clone());
        } else if let Some(token) = &auth.token {
            options = options.token(token.clone());
        }
        let client = options.connect(addr.to_string()).await.map_err(|e| format!("nats: cannot connect: {e}"))?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(timeout);
        Ok(NatsBroker { client, js })
    }
}

#[async_trait::async_trait]
impl Broker for NatsBroker {
    async fn publish(&self, target: &BrokerTarget, message: &Publication<'_>) -> Result<String, String> {
        let BrokerTarget::Nats { subject, .. } = target else { return Err("not a NATS target".into()) };
        let mut headers = async_nats::HeaderMap::new();
        for (name, value) in &message.headers {
            headers.insert(*name, value.as_str());
            if *name == "webhook-id" {
                headers.insert("Nats-Msg-Id", value.as_str());
            }
        }
        let body = bytes::Bytes::copy_from_slice(message.body);
        let ack = self
            .js
            .publish_with_headers(subject.clone(), headers, body)
            .await
            .map_err(|e| format!("nats: publish failed: {e}"))?
            .await
            .map_err(|e| format!("nats: no JetStream acknowledgement: {e}"))?;
        let duplicate = if ack.duplicate { ", a duplicate" } else { "" };
        Ok(format!("nats stream {}: sequence {}{duplicate}", ack.stream, ack.sequence))
    }

    /// The client reconnects by itself; one that is disconnected is
    /// replaced all the same (it may have given up).
    fn usable(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }
}
