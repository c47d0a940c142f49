//! Relay endpoints: `relay://CHANNEL`, an endpoint whose deliveries travel down
//! a `hookd listen` tunnel (a WebSocket to the server's `/relay/CHANNEL`)
//! instead of over the network to a public URL. The channel is a random name
//! the listener chose; it is the endpoint's host.

/// The URL scheme of relay endpoints.
pub const SCHEME: &str = "relay";

/// A channel name: 16 to 64 of `[A-Za-z0-9_-]`, random enough not to be guessed.
pub fn valid_channel(s: &str) -> bool {
    (16..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The channel of a relay URL; `None` for any other URL, an error for a relay
/// URL that is not just `relay://CHANNEL`.
pub fn channel(url: &url::Url) -> Option<Result<String, String>> {
    if url.scheme() != SCHEME {
        return None;
    }
    let host = url.host_str().unwrap_or_default();
    let bare = matches!(url.path(), "" | "/") && url.query().is_none() && url.fragment().is_none();
    let bare = bare && url.port().is_none() && url.username().is_empty() && url.password().is_none();
    Some(if valid_channel(host) && bare {
        // The host of a `relay://` URL is opaque: kept as written.
        Ok(host.to_string())
    } else {
        Err("a relay URL is relay://CHANNEL (16 to 64 of a-z, 0-9, - and _), made by `hookd listen`".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_urls_name_one_channel() {
        let url = |s: &str| url::Url::parse(s).unwrap();
        assert_eq!(channel(&url("relay://abcdefghij0123456789")), Some(Ok("abcdefghij0123456789".into())));
        assert!(channel(&url("relay://short")).unwrap().is_err());
        assert!(channel(&url("relay://abcdefghij0123456789/path")).unwrap().is_err());
        assert!(channel(&url("relay://abcdefghij0123456789:80")).unwrap().is_err());
        assert!(channel(&url("https://abcdefghij0123456789")).is_none());
    }
}
