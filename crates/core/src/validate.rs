//! Validated values parsed at the API edge. Each parser returns a readable reason
//! that the API turns into a 422 naming the field.

/// Longest endpoint URL accepted.
pub const MAX_URL_LEN: usize = 2048;
pub const MAX_UID_LEN: usize = 256;
pub const MAX_NAME_LEN: usize = 256;
pub const MAX_EVENT_TYPE_LEN: usize = 256;
pub const MAX_CHANNEL_LEN: usize = 128;
pub const MAX_CHANNELS: usize = 10;
pub const MAX_HEADERS: usize = 64;
pub const MAX_HEADER_NAME_LEN: usize = 256;
pub const MAX_HEADER_VALUE_LEN: usize = 4096;
pub const MAX_DESCRIPTION_LEN: usize = 4096;

/// A URL hookd may deliver to: http or https, with a host, no credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointUrl(url::Url);

impl EndpointUrl {
    /// Parses and checks the URL. When `allow_private` is false a host that is a
    /// literal forbidden IP address is refused here; names are checked again after
    /// DNS resolution, on every connect.
    pub fn parse(s: &str, allow_private: bool) -> Result<Self, String> {
        if s.len() > MAX_URL_LEN {
            return Err(format!("URL is longer than {MAX_URL_LEN} characters"));
        }
        let url = url::Url::parse(s).map_err(|e| format!("not a valid URL: {e}"))?;
        // A `hookd listen` tunnel (see `relay`): no network address to check.
        if let Some(channel) = crate::relay::channel(&url) {
            channel?;
            return Ok(EndpointUrl(url));
        }
        // http(s), or a broker (see `broker`).
        crate::broker::BrokerTarget::parse(&url)?;
        let Some(host) = url.host() else {
            return Err("URL must have a host".into());
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err("URL must not carry credentials; use endpoint headers instead".into());
        }
        if !allow_private {
            let _ = host;
            if crate::net::literal_ip(&url).is_some_and(crate::net::is_forbidden) {
                return Err("URL points to a private, loopback or otherwise non-public address".into());
            }
        }
        Ok(EndpointUrl(url))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// A user-chosen uid: `^[a-zA-Z0-9\-_.]+$`, 1 to 256 characters (Svix's rule).
pub fn uid(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > MAX_UID_LEN {
        return Err(format!("uid must be 1 to {MAX_UID_LEN} characters"));
    }
    if !s.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.')) {
        return Err("uid may only contain letters, digits, '-', '_' and '.'".into());
    }
    Ok(())
}

/// An event type name: `^[a-zA-Z0-9\-_.]+$`, up to 256 characters (Svix's rule).
pub fn event_type_name(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > MAX_EVENT_TYPE_LEN {
        return Err(format!("event type must be 1 to {MAX_EVENT_TYPE_LEN} characters"));
    }
    if !s.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.')) {
        return Err("event type may only contain letters, digits, '-', '_' and '.'".into());
    }
    Ok(())
}

/// A channel name: `^[a-zA-Z0-9\-_.:]+$`, up to 128 characters.
pub fn channel(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > MAX_CHANNEL_LEN {
        return Err(format!("channel must be 1 to {MAX_CHANNEL_LEN} characters"));
    }
    if !s.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':')) {
        return Err("channel may only contain letters, digits, '-', '_', '.' and ':'".into());
    }
    Ok(())
}

/// Headers hookd sets itself; an endpoint's custom headers may not replace them.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "user-agent",
    "connection",
    "transfer-encoding",
    "te",
    "upgrade",
    "keep-alive",
    "proxy-connection",
    "expect",
];

/// A custom header an endpoint asks for: an HTTP token name that hookd does not
/// set itself, and a value without control characters (no CR/LF header injection).
pub fn custom_header(name: &str, value: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_HEADER_NAME_LEN {
        return Err(format!("header name must be 1 to {MAX_HEADER_NAME_LEN} characters"));
    }
    let token = |c: u8| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c);
    if !name.bytes().all(token) {
        return Err(format!("header name `{name}` is not a valid HTTP header name"));
    }
    let lower = name.to_ascii_lowercase();
    // `proxy-*` would pick the egress proxy's identity (`Proxy-Authorization`).
    if RESERVED_HEADERS.contains(&lower.as_str())
        || lower.starts_with("webhook-")
        || lower.starts_with("svix-")
        || lower.starts_with("proxy-")
    {
        return Err(format!("header `{name}` is set by hookd and cannot be overridden"));
    }
    if value.len() > MAX_HEADER_VALUE_LEN {
        return Err(format!("header `{name}` value is longer than {MAX_HEADER_VALUE_LEN} bytes"));
    }
    if value.bytes().any(|c| (c < 0x20 && c != b'\t') || c == 0x7f) {
        return Err(format!("header `{name}` value contains a control character (CR, LF or other)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_urls() {
        let table = [
            ("https://example.com/hook", false, true),
            ("http://example.com:8080/a?b=c", false, true),
            ("ftp://example.com/", false, false),
            ("redis://cache.example.com/0?stream=hooks", false, true),
            ("nats://nats.example.com/orders.created", false, true),
            ("redis://cache.example.com/0", false, false),
            ("nats://127.0.0.1/a.b", false, false),
            ("not a url", false, false),
            ("https://user:pw@example.com/", false, false),
            ("http://127.0.0.1:9000/", false, false),
            ("http://[::1]/", false, false),
            ("http://[::ffff:10.0.0.1]/", false, false),
            ("http://169.254.169.254/latest", false, false),
            ("http://127.0.0.1:9000/", true, true),
            ("http://localhost:9000/", false, true), // names are checked at connect time
        ];
        for (url, allow, ok) in table {
            assert_eq!(EndpointUrl::parse(url, allow).is_ok(), ok, "{url} allow={allow}");
        }
        assert!(EndpointUrl::parse(&format!("https://e.com/{}", "a".repeat(3000)), false).is_err());
    }

    #[test]
    fn uids_and_names() {
        assert!(uid("my-app_1.x").is_ok());
        assert!(uid("").is_err());
        assert!(uid("has space").is_err());
        assert!(uid(&"a".repeat(257)).is_err());
        assert!(event_type_name("invoice.paid").is_ok());
        assert!(event_type_name("invoice/paid").is_err());
        assert!(channel("project:123").is_ok());
        assert!(channel("a b").is_err());
    }

    #[test]
    fn custom_headers() {
        assert!(custom_header("X-Api-Key", "abc def").is_ok());
        assert!(custom_header("X-Evil", "a\r\nInjected: 1").is_err());
        assert!(custom_header("X-Evil", "a\nb").is_err());
        assert!(custom_header("Bad Name", "v").is_err());
        assert!(custom_header("webhook-signature", "v").is_err());
        assert!(custom_header("Content-Type", "v").is_err());
        assert!(custom_header("", "v").is_err());
    }
}

/// Deepest nesting of arrays and objects a message payload may have.
pub const MAX_JSON_DEPTH: usize = 64;

/// How deeply `json` (valid JSON text) nests arrays and objects, by one pass
/// over its bytes (brackets inside strings do not count).
pub fn json_depth(json: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in json {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod depth_tests {
    use super::*;

    #[test]
    fn counts_nesting_outside_strings() {
        assert_eq!(json_depth(br#"{}"#), 1);
        assert_eq!(json_depth(br#"{"a": [1, {"b": []}]}"#), 4);
        assert_eq!(json_depth(br#"{"a": "[[[[{{{", "b": "\"[["}"#), 1);
        assert_eq!(json_depth(br#"{"a": "\\", "b": [[]]}"#), 3);
    }
}
