//! Endpoints that are message brokers rather than HTTP servers: the URL forms
//! hookd accepts for them. Credentials are never in the URL (they are the
//! endpoint's basic or bearer credentials, sealed at rest).
//!
//! - `redis://host:port/DB?stream=NAME[&maxlen=N]`: an `XADD` to a Redis stream
//!   (trimmed to about `maxlen` entries when given).
//! - `nats://host:port/SUBJECT`: a JetStream publish to `SUBJECT`, acknowledged
//!   by the stream that captures it.
//! - `amqp://host:port/VHOST?exchange=X&routingKey=K`: a persistent publish to
//!   an exchange (the default one when `exchange` is left out), confirmed by
//!   the broker and refused when no queue is bound (mandatory).
//! - `mqtt://host:port/TOPIC`: an MQTT 5 publish at QoS 1 to `TOPIC` (which may
//!   hold `/`), the webhook headers as user properties, acknowledged by PUBACK.

/// Where a broker endpoint delivers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BrokerTarget {
    Redis { host: String, port: u16, db: i64, stream: String, maxlen: Option<u64> },
    Nats { host: String, port: u16, subject: String },
    Amqp { host: String, port: u16, vhost: String, exchange: String, routing_key: String },
    Mqtt { host: String, port: u16, topic: String },
}

/// The URL schemes of broker endpoints.
pub const BROKER_SCHEMES: [&str; 4] = ["redis", "nats", "amqp", "mqtt"];

const MAX_NAME: usize = 256;

fn name_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_NAME && s.bytes().all(|b| b.is_ascii_graphic() && !b"*>\"\\".contains(&b))
}

impl BrokerTarget {
    /// The broker target of `url`; `Ok(None)` for an http(s) URL.
    pub fn parse(url: &url::Url) -> Result<Option<BrokerTarget>, String> {
        let host = || url.host_str().map(str::to_string).ok_or_else(|| "the URL must have a host".to_string());
        if url.fragment().is_some() && url.scheme() != "http" && url.scheme() != "https" {
            return Err("a broker URL has no fragment (`#`)".into());
        }
        match url.scheme() {
            "redis" => {
                let db = match url.path().trim_start_matches('/') {
                    "" => 0,
                    d => d
                        .parse::<i64>()
                        .ok()
                        .filter(|d| (0..=15).contains(d))
                        .ok_or("the path is a database number, 0 to 15")?,
                };
                let query = |k: &str| url.query_pairs().find(|(n, _)| n == k).map(|(_, v)| v.into_owned());
                let stream = query("stream").filter(|s| name_ok(s)).ok_or("`?stream=NAME` names the Redis stream")?;
                let maxlen = match query("maxlen") {
                    None => None,
                    Some(n) => Some(n.parse::<u64>().ok().filter(|n| *n > 0).ok_or("`maxlen` is a positive number")?),
                };
                Ok(Some(BrokerTarget::Redis { host: host()?, port: url.port().unwrap_or(6379), db, stream, maxlen }))
            }
            "nats" => {
                let subject = url.path().trim_start_matches('/').to_string();
                let tokens_ok = subject.split('.').all(|t| !t.is_empty());
                if !name_ok(&subject) || !tokens_ok || url.query().is_some() {
                    return Err("the path is the NATS subject (dot-separated tokens, no wildcards)".into());
                }
                Ok(Some(BrokerTarget::Nats { host: host()?, port: url.port().unwrap_or(4222), subject }))
            }
            "amqp" => {
                let query = |k: &str| url.query_pairs().find(|(n, _)| n == k).map(|(_, v)| v.into_owned());
                let path = url.path().trim_start_matches('/');
                let vhost = percent_decode(path).ok_or("the path is the virtual host (percent-encoded)")?;
                let vhost = if vhost.is_empty() { "/".to_string() } else { vhost };
                let exchange = query("exchange").unwrap_or_default();
                if !exchange.is_empty() && !name_ok(&exchange) {
                    return Err("`exchange` is an exchange name".into());
                }
                let routing_key =
                    query("routingKey").filter(|k| name_ok(k)).ok_or("`?routingKey=KEY` is the routing key")?;
                Ok(Some(BrokerTarget::Amqp {
                    host: host()?,
                    port: url.port().unwrap_or(5672),
                    vhost,
                    exchange,
                    routing_key,
                }))
            }
            "mqtt" => {
                let topic = percent_decode(url.path().trim_start_matches('/')).unwrap_or_default();
                let ok = !topic.is_empty()
                    && topic.len() <= MAX_NAME
                    && !topic.contains(['+', '#'])
                    && !topic.chars().any(char::is_control)
                    && url.query().is_none();
                if !ok {
                    return Err("the path is the MQTT topic (no wildcards `+`, `#`)".into());
                }
                Ok(Some(BrokerTarget::Mqtt { host: host()?, port: url.port().unwrap_or(1883), topic }))
            }
            "http" | "https" => Ok(None),
            other => Err(format!(
                "`{other}` is not a scheme hookd delivers to (http, https, redis, nats, amqp, mqtt, relay)"
            )),
        }
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next()?, bytes.next()?];
            out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Option<BrokerTarget>, String> {
        BrokerTarget::parse(&url::Url::parse(s).unwrap())
    }

    #[test]
    fn broker_urls() {
        assert_eq!(
            parse("redis://cache.internal:6380/2?stream=hooks&maxlen=1000").unwrap(),
            Some(BrokerTarget::Redis {
                host: "cache.internal".into(),
                port: 6380,
                db: 2,
                stream: "hooks".into(),
                maxlen: Some(1000)
            })
        );
        assert_eq!(
            parse("nats://127.0.0.1/orders.created").unwrap(),
            Some(BrokerTarget::Nats { host: "127.0.0.1".into(), port: 4222, subject: "orders.created".into() })
        );
        assert_eq!(
            parse("amqp://rabbit:5673/%2Fprod?exchange=hooks&routingKey=orders.created").unwrap(),
            Some(BrokerTarget::Amqp {
                host: "rabbit".into(),
                port: 5673,
                vhost: "/prod".into(),
                exchange: "hooks".into(),
                routing_key: "orders.created".into()
            })
        );
        assert_eq!(
            parse("mqtt://broker:1884/acme/orders").unwrap(),
            Some(BrokerTarget::Mqtt { host: "broker".into(), port: 1884, topic: "acme/orders".into() })
        );
        let default = parse("amqp://rabbit/?routingKey=q").unwrap();
        assert!(
            matches!(default, Some(BrokerTarget::Amqp { ref vhost, ref exchange, .. }) if vhost == "/" && exchange.is_empty())
        );
        assert_eq!(parse("https://example.com/x").unwrap(), None);
        for bad in [
            "redis://h/0",
            "redis://h/99?stream=s",
            "redis://h/0?stream=s&maxlen=0",
            "nats://h/",
            "nats://h/a.*",
            "nats://h/a..b",
            "amqp://h/",
            "mqtt://h/",
            "mqtt://h/a/+/b",
            "mqtt://h/a/#",
            "amqp://h/%zz?routingKey=q",
            "ftp://h/x",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
