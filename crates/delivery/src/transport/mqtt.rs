//! MQTT 5: a publish at QoS 1 with the webhook headers as user properties and
//! `content-type` set, acknowledged by the broker's PUBACK. One publish is in
//! flight per connection (its PUBACK is matched to it by packet id); a PUBACK
//! with a failure reason fails the attempt.

use std::net::SocketAddr;
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
    /// The event loop's events (or its errors), read by one publish at a time.
    events: Mutex<mpsc::UnboundedReceiver<Result<Event, String>>>,
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
        let (tx, mut rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                let event = eventloop.poll().await.map_err(|e| e.to_string());
                let failed = event.is_err();
                if tx.send(event).is_err() {
                    return;
                }
                if failed {
                    // The event loop reconnects on the next poll; not in a spin.
                    tokio::time::sleep(Duration::from_millis(500)).await;
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
        Ok(MqttBroker { client, events: Mutex::new(rx), task })
    }
}

#[async_trait::async_trait]
impl Broker for MqttBroker {
    async fn publish(&self, target: &BrokerTarget, message: &Publication<'_>) -> Result<String, String> {
        let BrokerTarget::Mqtt { topic, .. } = target else { return Err("not an MQTT target".into()) };
        let mut events = self.events.lock().await;
        // Events left over from an earlier publish that gave up are not ours.
        while events.try_recv().is_ok() {}
        let properties = PublishProperties {
            content_type: message.headers.iter().find(|(n, _)| *n == "content-type").map(|(_, v)| v.clone()),
            user_properties: message.headers.iter().map(|(n, v)| (n.to_string(), v.clone())).collect(),
            ..Default::default()
        };
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
                    return match ack.reason {
                        PubAckReason::Success => Ok(format!("mqtt topic {topic}: PUBACK {}", ack.pkid)),
                        PubAckReason::NoMatchingSubscribers => {
                            Ok(format!("mqtt topic {topic}: PUBACK {} (no matching subscribers)", ack.pkid))
                        }
                        other => Err(format!("mqtt: the broker refused the message ({other:?})")),
                    };
                }
                _ => {}
            }
        }
        Err("mqtt: the connection ended before the PUBACK".into())
    }
}
