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
/// bearer (a token) credentials. Its `Debug` names which are set, never them.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct BrokerAuth {
    pub user: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
}

impl std::fmt::Debug for BrokerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerAuth")
            .field("user", &self.user.as_ref().map(|_| "…"))
            .field("password", &self.password.as_ref().map(|_| "…"))
            .field("token", &self.token.as_ref().map(|_| "…"))
            .finish()
    }
}

/// One broker connection.
#[async_trait::async_trait]
pub trait Broker: Send + Sync {
    /// Publishes and waits for the broker's acknowledgement; `Ok` says what
    /// acknowledged it (kept as the attempt's response).
    async fn publish(&self, target: &BrokerTarget, message: &Publication<'_>) -> Result<String, String>;

    /// Whether the connection can still be used: after a failed publish, a
    /// connection that is not is dropped and made anew next time (one that is
    /// stays: a refusal of one message says nothing about the next).
    fn usable(&self) -> bool;
}

type Key = (BrokerTarget, BrokerAuth);

/// A connection and the address it was made to (checked again against the
/// policy of each delivery that reuses it).
#[derive(Clone)]
struct Connection {
    broker: Arc<dyn Broker>,
    addr: SocketAddr,
}

/// Most broker connections kept.
const MAX_CONNECTIONS: usize = 1024;

#[derive(Default)]
pub struct Brokers {
    connections: Mutex<HashMap<Key, Connection>>,
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
        let deadline = tokio::time::Instant::now() + timeout;
        let key = (connection_key(target), auth.clone());
        let connection =
            match tokio::time::timeout_at(deadline, self.connection(&key, target, auth, policy, timeout)).await {
                Ok(c) => c?,
                Err(_) => return Err("timed out".to_string()),
            };
        let result = match tokio::time::timeout_at(deadline, connection.broker.publish(target, message)).await {
            Ok(Ok(ack)) => return Ok(ack),
            Ok(Err(e)) if connection.broker.usable() => return Err(e),
            Ok(Err(e)) => Err(e),
            // Whatever the broker says later about this message is not
            // waited for: the connection goes with it.
            Err(_) => Err("timed out".to_string()),
        };
        let mut connections = self.connections.lock().await;
        if connections.get(&key).is_some_and(|c| Arc::ptr_eq(&c.broker, &connection.broker)) {
            connections.remove(&key);
        }
        result
    }

    async fn connection(
        &self,
        key: &Key,
        target: &BrokerTarget,
        auth: &BrokerAuth,
        policy: &DestinationPolicy,
        timeout: Duration,
    ) -> Result<Connection, String> {
        {
            let mut connections = self.connections.lock().await;
            if let Some(c) = connections.get(key) {
                if !c.broker.usable() {
                    // It broke while idle: made anew below.
                    connections.remove(key);
                } else if !policy.checks_addresses() || policy.check_ip(c.addr.ip()).is_ok() {
                    // Made under another delivery's policy, perhaps: reused
                    // only when this one allows its address too.
                    return Ok(c.clone());
                }
            }
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
        // Connected without the map locked: a slow broker holds up only its
        // own deliveries.
        let broker: Arc<dyn Broker> = match target {
            BrokerTarget::Redis { db, .. } => Arc::new(redis::RedisBroker::connect(addr, *db, auth, timeout).await?),
            BrokerTarget::Nats { .. } => Arc::new(nats::NatsBroker::connect(addr, auth, timeout).await?),
            BrokerTarget::Amqp { vhost, .. } => Arc::new(amqp::AmqpBroker::connect(addr, vhost, auth).await?),
            BrokerTarget::Mqtt { .. } => Arc::new(mqtt::MqttBroker::connect(addr, auth, timeout).await?),
        };
        let connection = Connection { broker, addr };
        let mut connections = self.connections.lock().await;
        if connections.len() >= MAX_CONNECTIONS {
            connections.clear();
        }
        connections.insert(key.clone(), connection.clone());
        Ok(connection)
    }
}

/// A target without what varies per message: one connection per broker,
/// database and credentials whatever the stream, subject or topic. AMQP keeps
/// the exchange: a publish to a missing exchange closes its channel, and that
/// should cost no other exchange its channel.
fn connection_key(target: &BrokerTarget) -> BrokerTarget {
    match target {
        BrokerTarget::Redis { host, port, db, .. } => {
            BrokerTarget::Redis { host: host.clone(), port: *port, db: *db, stream: String::new(), maxlen: None }
        }
        BrokerTarget::Nats { host, port, .. } => {
            BrokerTarget::Nats { host: host.clone(), port: *port, subject: String::new() }
        }
        BrokerTarget::Amqp { host, port, vhost, exchange, .. } => BrokerTarget::Amqp {
            host: host.clone(),
            port: *port,
            vhost: vhost.clone(),
            exchange: exchange.clone(),
            routing_key: String::new(),
        },
        BrokerTarget::Mqtt { host, port, .. } => {
            BrokerTarget::Mqtt { host: host.clone(), port: *port, topic: String::new() }
        }
    }
}
