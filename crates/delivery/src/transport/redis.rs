//! Redis Streams: `XADD stream [MAXLEN ~ n] * field value …`, acknowledged by
//! the entry id Redis gives back. Fields: the webhook headers and `body`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hookd_core::broker::BrokerTarget;
use redis::aio::MultiplexedConnection;

use super::{Broker, BrokerAuth, Publication};

pub struct RedisBroker {
    conn: MultiplexedConnection,
    /// Set once the connection failed (rather than Redis refusing a command).
    broken: AtomicBool,
}

impl RedisBroker {
    pub async fn connect(
        addr: SocketAddr,
        db: i64,
        auth: &BrokerAuth,
        timeout: Duration,
    ) -> Result<RedisBroker, String> {
        let mut url = url::Url::parse(&format!("redis://{addr}/{db}")).map_err(|e| e.to_string())?;
        if let Some(user) = &auth.user {
            let _ = url.set_username(user);
        }
        if let Some(password) = auth.password.as_ref().or(auth.token.as_ref()) {
            let _ = url.set_password(Some(password));
        }
        let client = redis::Client::open(url.as_str()).map_err(|e| format!("redis: {e}"))?;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| format!("redis: cannot connect: {e}"))?;
        Ok(RedisBroker { conn, broken: AtomicBool::new(false) })
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
        let id: String = cmd.query_async(&mut self.conn.clone()).await.map_err(|e| {
            if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() || e.is_unrecoverable_error() {
                self.broken.store(true, Ordering::Relaxed);
            }
            format!("redis: XADD failed: {e}")
        })?;
        Ok(format!("redis stream {stream}: entry {id}"))
    }

    fn usable(&self) -> bool {
        !self.broken.load(Ordering::Relaxed)
    }
}
