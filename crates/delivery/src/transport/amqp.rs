//! RabbitMQ (AMQP 0-9-1): a persistent, mandatory publish to the exchange with
//! the routing key, on a channel in confirm mode. The attempt succeeds only on
//! the broker's ack; a nack, or a message returned because no queue is bound,
//! fails it. The webhook headers travel as message headers, the message id as
//! `message-id`.

use std::net::SocketAddr;

use hookd_core::broker::BrokerTarget;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};

use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};

use super::{Broker, BrokerAuth, Publication};

pub struct AmqpBroker {
    channel: Channel,
    /// Kept open as long as the channel is used.
    _connection: Connection,
}

impl AmqpBroker {
    pub async fn connect(addr: SocketAddr, vhost: &str, auth: &BrokerAuth) -> Result<AmqpBroker, String> {
        let mut uri = url::Url::parse(&format!("amqp://{addr}/")).map_err(|e| e.to_string())?;
        if let (Some(user), Some(password)) = (&auth.user, &auth.password) {
            let _ = uri.set_username(user);
            let _ = uri.set_password(Some(password));
        }
        let vhost: String = url::form_urlencoded::byte_serialize(vhost.as_bytes()).collect();
        let uri = format!("{}{vhost}", uri.as_str());
        let connection = Connection::connect(&uri, ConnectionProperties::default())
            .await
            .map_err(|e| format!("amqp: cannot connect: {e}"))?;
        let channel = connection.create_channel().await.map_err(|e| format!("amqp: cannot open a channel: {e}"))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| format!("amqp: publisher confirms refused: {e}"))?;
        Ok(AmqpBroker { channel, _connection: connection })
    }
}

#[async_trait::async_trait]
impl Broker for AmqpBroker {
    async fn publish(&self, target: &BrokerTarget, message: &Publication<'_>) -> Result<String, String> {
        let BrokerTarget::Amqp { exchange, routing_key, .. } = target else { return Err("not an AMQP target".into()) };
        let mut headers = FieldTable::default();
        let mut properties = BasicProperties::default().with_delivery_mode(2);
        for (name, value) in &message.headers {
            match *name {
                "content-type" => properties = properties.with_content_type(ShortString::from(value.clone())),
                "webhook-id" => properties = properties.with_message_id(ShortString::from(value.clone())),
                _ => {}
            }
            headers.insert(ShortString::from(*name), AMQPValue::LongString(LongString::from(value.clone())));
        }
        let options = BasicPublishOptions { mandatory: true, ..Default::default() };
        let confirm = self
            .channel
            .basic_publish(
                ShortString::from(exchange.clone()),
                ShortString::from(routing_key.clone()),
                options,
                message.body,
                properties.with_headers(headers),
            )
            .await
            .map_err(|e| format!("amqp: publish failed: {e}"))?
            .await
            .map_err(|e| format!("amqp: no confirmation: {e}"))?;
        let exchange = if exchange.is_empty() { "(default)" } else { exchange };
        match confirm {
            Confirmation::Ack(None) => Ok(format!("amqp exchange {exchange}, routing key {routing_key}: confirmed")),
            Confirmation::Ack(Some(_)) => {
                Err(format!("amqp: returned unroutable: no queue is bound to {routing_key} on {exchange}"))
            }
            Confirmation::Nack(_) => Err("amqp: the broker refused the message (nack)".into()),
            Confirmation::NotRequested => Err("amqp: the broker gave no confirmation".into()),
        }
    }

    /// A channel error (a missing exchange, say) closes the channel.
    fn usable(&self) -> bool {
        self.channel.status().connected()
    }
}
