//! Broker destinations: endpoints whose URL names a message broker (see
//! `hookd_core::broker`) get each message published there instead of POSTed,
//! with the same guarantees as HTTP: an attempt is a success only once the
//! broker acknowledged the message (a Redis stream entry id, a JetStream ack),
//! anything else fails it and it is retried on the endpoint's schedule.
//!
//! Each broker is one file implementing [`Broker`]; a new one (Kafka, say) is
//! one more file and one more arm in [`Brokers::publish`]. Connections are
//! made to an address vetted by the destination policy (resolved here, like
//! the HTTP client's guarded resolver) and kept per broker and credentials.

mod amqp;
mod mqtt;
mod nats;
mod redis;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hookd_core::broker::BrokerTarget;
use hookd_core::policy::DestinationPolicy;
use tokio::sync::Mutex;

/// What is published: the signed body and the headers an HTTP receiver would
/// get (`webhook-id`, `webhook-timestamp`, `webhook-signature`, `content-type`).
pub struct Publication<'a> {
    pub headers: Vec<(&'static str, String)>,
    pub body: &'a [u8],
}

/// Credentials for a broker: the endpoint's basic (user and password) or
/// bearer (a token) credentials.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct BrokerAuth {
    pub user: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
}

/// One broker connection.
#[async_trait::async_trait]
pub trait Broker: Send + Sync {
    /// Publishes and waits for the broker's acknowledgement; `Ok` says what
    /// acknowledged it (kept as the attempt's response).
    async fn publish(&self, target: &BrokerTarget, message: &Publication<'_>) -> Result<String, String>;
}

type Key = (BrokerTarget, BrokerAuth);

/// Most broker connections kept.
const MAX_CONNECTIONS: usize = 1024;

#[derive(Default)]
pub struct Brokers {
    connections: Mutex<HashMap<Key, Arc<dyn Broker>>>,
}

impl Brokers {
    /// Publishes `message` to `target` within `timeout`; a connection is made
    /// (to an address `policy` allows) when there is none.
    pub async fn publish(
        &self,
        target: &BrokerTarget,
        auth: &BrokerAuth,
        policy: &DestinationPolicy,
        message: &Publication<'_>,
        timeout: Duration,
    ) -> Result<String, String> {
        let work = async {
            let broker = self.connection(target, auth, policy, timeout).await?;
            let result = broker.publish(target, message).await;
            if result.is_err() {
                // A broken connection is made anew next time.
                self.connections.lock().await.remove(&(connection_key(target), auth.clone()));
            }
            result
        };
        tokio::time::timeout(timeout, work).await.unwrap_or_else(|_| Err("timed out".to_string()))
    }

    async fn connection(
        &self,
        target: &BrokerTarget,
        auth: &BrokerAuth,
        policy: &DestinationPolicy,
        timeout: Duration,
    ) -> Result<Arc<dyn Broker>, String> {
        let key = (connection_key(target), auth.clone());
        let mut connections = self.connections.lock().await;
        if let Some(b) = connections.get(&key) {
            return Ok(b.clone());
        }
        let (host, port) = match target {
            BrokerTarget::Redis { host, port, .. }
            | BrokerTarget::Nats { host, port, .. }
            | BrokerTarget::Amqp { host, port, .. }
            | BrokerTarget::Mqtt { host, port, .. } => (host, *port),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let addr: SocketAddr = *crate::ssrf::resolve_vetted(policy, host, port)
            .await
            .map_err(|r| r.0)?
            .first()
            .ok_or_else(|| format!("{host} resolves to no address"))?;
        let broker: Arc<dyn Broker> = match target {
            BrokerTarget::Redis { db, .. } => Arc::new(redis::RedisBroker::connect(addr, *db, auth).await?),
            BrokerTarget::Nats { .. } => Arc::new(nats::NatsBroker::connect(addr, auth, timeout).await?),
            BrokerTarget::Amqp { vhost, .. } => Arc::new(amqp::AmqpBroker::connect(addr, vhost, auth).await?),
            BrokerTarget::Mqtt { .. } => Arc::new(mqtt::MqttBroker::connect(addr, auth, timeout).await?),
        };
        if connections.len() >= MAX_CONNECTIONS {
            connections.clear();
        }
        connections.insert(key, broker.clone());
        Ok(broker)
    }
}

/// A target without what varies per message (one connection per broker,
/// database and credentials, whatever the stream or subject).
fn connection_key(target: &BrokerTarget) -> BrokerTarget {
    match target {
        BrokerTarget::Redis { host, port, db, .. } => {
            BrokerTarget::Redis { host: host.clone(), port: *port, db: *db, stream: String::new(), maxlen: None }
        }
        BrokerTarget::Nats { host, port, .. } => {
            BrokerTarget::Nats { host: host.clone(), port: *port, subject: String::new() }
        }
        BrokerTarget::Amqp { host, port, vhost, .. } => BrokerTarget::Amqp {
            host: host.clone(),
            port: *port,
            vhost: vhost.clone(),
            exchange: String::new(),
            routing_key: String::new(),
        },
        BrokerTarget::Mqtt { host, port, .. } => {
            BrokerTarget::Mqtt { host: host.clone(), port: *port, topic: String::new() }
        }
    }
}
