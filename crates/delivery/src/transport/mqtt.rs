//! MQTT 5: a publish at QoS 1 with the webhook headers as user properties and
//! `content-type` set, acknowledged by the broker's PUBACK. One publish is in
//! flight per connection (its PUBACK is matched to it by packet id); a PUBACK
//! with a failure reason fails the attempt, and so does "no matching
//! subscribers": the broker dropped the message. A connection whose event loop
//! failed, or whose publish gave up before its PUBACK, is not used again.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hookd_core::broker::BrokerTarget;
use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use rumqttc::Outgoing;
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinHandle;

use super::{Broker, BrokerAuth, Publication};

pub struct MqttBroker {
    client: AsyncClient,
    /// The event loop's events (or its error), read by one publish at a time;
    /// bounded: while no publish reads, what does not fit is dropped.
    events: Mutex<mpsc::Receiver<Result<Event, String>>>,
    /// Set when the event loop failed (it then ends).
    dead: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Drop for MqttBroker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MqttBroker {
    pub async fn connect(addr: SocketAddr, auth: &BrokerAuth, timeout: Duration) -> Result<MqttBroker, String> {
        let id = format!("hookd-{:016x}", rand::random::<u64>());
        let mut options = MqttOptions::new(id, addr.ip().to_string(), addr.port());
        options.set_keep_alive(Duration::from_secs(30));
        if let (Some(user), Some(password)) = (&auth.user, &auth.password) {
            options.set_credentials(user.clone(), password.clone());
        }
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        let (tx, mut rx) = mpsc::channel(256);
        let dead = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let dead = dead.clone();
            async move {
                loop {
                    match eventloop.poll().await {
                        Ok(event) => {
                            if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(Ok(event)) {
                                return;
                            }
                        }
                        Err(e) => {
                            // No reconnecting here: the next delivery makes a
                            // new connection (to an address vetted again).
                            dead.store(true, Ordering::Relaxed);
                            let _ = tx.send(Err(e.to_string())).await;
                            return;
                        }
                    }
                }
            }
        });
        // Connected once the broker's CONNACK is in.
        let connected = tokio::time::timeout(timeout, async {
            while let Some(event) = rx.recv().await {
                match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                    Ok(_) => {}
                    Err(e) => return Err(format!("mqtt: cannot connect: {e}")),
                }
            }
            Err("mqtt: the connection ended".to_string())
        })
        .await
        .unwrap_or_else(|_| Err("mqtt: no CONNACK in time".to_string()));
        if let Err(e) = connected {
            task.abort();
            return Err(e);
        }
        Ok(MqttBroker { client, events: Mutex::new(rx), dead, task })
    }
}

#[async_trait::async_trait]
impl Broker for MqttBroker {
    async fn publish(&self, target: &BrokerTarget, message: &Publication<'_>) -> Result<String, String> {
        let BrokerTarget::Mqtt { topic, .. } = target else { return Err("not an MQTT target".into()) };
        let mut events = self.events.lock().await;
        // Another publish gave up on this connection while this one waited.
        if self.dead.load(Ordering::Relaxed) {
            return Err("mqtt: the connection was given up; a new one is made for the next attempt".into());
        }
        // Events from before this publish (pings, say) are not its own.
        while let Ok(event) = events.try_recv() {
            event.map_err(|e| format!("mqtt: connection failed: {e}"))?;
        }
        let properties = PublishProperties {
            content_type: message.headers.iter().find(|(n, _)| *n == "content-type").map(|(_, v)| v.clone()),
            user_properties: message.headers.iter().map(|(n, v)| (n.to_string(), v.clone())).collect(),
            ..Default::default()
        };
        // Given up before the PUBACK (the caller's timeout), the connection
        // is not used again: that PUBACK could be taken for the next one's.
        let mut abandoned = Abandoned(Some(&self.dead));
        let payload = bytes::Bytes::copy_from_slice(message.body);
        self.client
            .publish_bytes_with_properties(topic.clone(), QoS::AtLeastOnce, false, payload, properties)
            .await
            .map_err(|e| format!("mqtt: publish failed: {e}"))?;
        let mut pkid = None;
        while let Some(event) = events.recv().await {
            match event.map_err(|e| format!("mqtt: connection failed: {e}"))? {
                Event::Outgoing(Outgoing::Publish(id)) if pkid.is_none() => pkid = Some(id),
                Event::Incoming(Packet::PubAck(ack)) if Some(ack.pkid) == pkid => {
                    abandoned.0 = None;
                    return match ack.reason {
                        PubAckReason::Success => Ok(format!("mqtt topic {topic}: PUBACK {}", ack.pkid)),
                        PubAckReason::NoMatchingSubscribers => {
                            Err(format!("mqtt: no subscriber matches topic {topic}; the broker dropped the message"))
                        }
                        other => Err(format!("mqtt: the broker refused the message ({other:?})")),
                    };
                }
                _ => {}
            }
        }
        Err("mqtt: the connection ended before the PUBACK".into())
    }

    fn usable(&self) -> bool {
        !self.dead.load(Ordering::Relaxed)
    }
}

/// Marks the connection dead when dropped still armed.
struct Abandoned<'a>(Option<&'a AtomicBool>);

impl Drop for Abandoned<'_> {
    fn drop(&mut self) {
        if let Some(dead) = self.0 {
            dead.store(true, Ordering::Relaxed);
        }
    }
}
