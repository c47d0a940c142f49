//! Which HTTP headers hold credentials: their values are never shown by the API
//! nor stored with an attempt.

/// `authorization`, `cookie`, and any name with `token`, `secret`, `key`,
/// `password` or `auth` in it (`x-api-key`, `x-auth-token`…).
pub fn is_sensitive(name: &str) -> bool {
    let n = name.as_bytes();
    let has = |word: &str| n.windows(word.len()).any(|w| w.eq_ignore_ascii_case(word.as_bytes()));
    name.eq_ignore_ascii_case("cookie") || ["token", "secret", "key", "password", "auth"].into_iter().any(has)
}

#[cfg(test)]
mod tests {
    use super::is_sensitive;

    #[test]
    fn credentials_are_sensitive() {
        for name in ["Authorization", "cookie", "X-Api-Key", "x-auth-token", "client_secret", "Proxy-Authorization"] {
            assert!(is_sensitive(name), "{name}");
        }
        for name in ["content-type", "webhook-id", "webhook-signature", "x-tenant", "user-agent"] {
            assert!(!is_sensitive(name), "{name}");
        }
    }
}
