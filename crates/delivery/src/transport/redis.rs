//! Redis Streams: `XADD stream [MAXLEN ~ n] * field value …`, acknowledged by
//! the entry id Redis gives back. Fields: the webhook headers and `body`.

use std::net::SocketAddr;

use hookd_core::broker::BrokerTarget;
use redis::aio::MultiplexedConnection;

use super::{Broker, BrokerAuth, Publication};

pub struct RedisBroker {
    conn: MultiplexedConnection,
}

impl RedisBroker {
    pub async fn connect(addr: SocketAddr, db: i64, auth: &BrokerAuth) -> Result<RedisBroker, String> {
        let mut url = url::Url::parse(&format!("redis://{addr}/{db}")).map_err(|e| e.to_string())?;
        if let Some(user) = &auth.user {
            let _ = url.set_username(user);
        }
        if let Some(password) = auth.password.as_ref().or(auth.token.as_ref()) {
            let _ = url.set_password(Some(password));
        }
        let client = redis::Client::open(url.as_str()).map_err(|e| format!("redis: {e}"))?;
        let conn =
            client.get_multiplexed_async_connection().await.map_err(|e| format!("redis: cannot connect: {e}"))?;
        Ok(RedisBroker { conn })
    }
}

#[async_trait::async_trait]
impl Broker for RedisBroker {
    async fn publish(&self, target: &BrokerTarget, message: &Publication<'_>) -> Result<String, String> {
        let BrokerTarget::Redis { stream, maxlen, .. } = target else { return Err("not a Redis target".into()) };
        let mut cmd = redis::cmd("XADD");
        cmd.arg(stream);
        if let Some(n) = maxlen {
            cmd.arg("MAXLEN").arg("~").arg(*n);
        }
        cmd.arg("*");
        for (name, value) in &message.headers {
            cmd.arg(*name).arg(value);
        }
        cmd.arg("body").arg(message.body);
        let id: String =
            cmd.query_async(&mut self.conn.clone()).await.map_err(|e| format!("redis: XADD failed: {e}"))?;
        Ok(format!("redis stream {stream}: entry {id}"))
    }
}
