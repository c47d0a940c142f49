//! A message's payload as stored: JSON (what the API takes by default), or a
//! raw body of any content type (Svix's `transformationsParams.rawPayload`),
//! kept with its content type and sent byte for byte.
//!
//! A raw payload is stored as [`RAW_MARK`], the content type, a NUL, then the
//! body. A JSON payload is an object and starts with `{`, so the two never mix.

/// How a stored raw payload starts.
pub const RAW_MARK: &[u8] = b"\0raw\0";
/// The content type of a raw payload that names none.
pub const DEFAULT_RAW_CONTENT_TYPE: &str = "application/json";

/// A stored payload, read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload<'a> {
    Json(&'a [u8]),
    Raw { content_type: &'a str, body: &'a [u8] },
}

impl<'a> Payload<'a> {
    /// Reads stored bytes (opened, when they were sealed).
    pub fn read(stored: &'a [u8]) -> Payload<'a> {
        let Some(rest) = stored.strip_prefix(RAW_MARK) else { return Payload::Json(stored) };
        let Some(end) = rest.iter().position(|b| *b == 0) else { return Payload::Json(stored) };
        match std::str::from_utf8(&rest[..end]) {
            Ok(content_type) => Payload::Raw { content_type, body: &rest[end + 1..] },
            Err(_) => Payload::Json(stored),
        }
    }

    /// The bytes that go out.
    pub fn body(&self) -> &'a [u8] {
        match self {
            Payload::Json(b) | Payload::Raw { body: b, .. } => b,
        }
    }

    pub fn content_type(&self) -> &'a str {
        match self {
            Payload::Json(_) => "application/json",
            Payload::Raw { content_type, .. } => content_type,
        }
    }

    pub fn is_raw(&self) -> bool {
        matches!(self, Payload::Raw { .. })
    }
}

/// The stored form of a raw payload.
pub fn store_raw(content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(RAW_MARK.len() + content_type.len() + 1 + body.len());
    out.extend_from_slice(RAW_MARK);
    out.extend_from_slice(content_type.as_bytes());
    out.push(0);
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_payloads_keep_their_content_type_and_bytes() {
        let body = b"<order id=\"1\">\0</order>";
        let stored = store_raw("application/xml", body);
        let read = Payload::read(&stored);
        assert_eq!(read, Payload::Raw { content_type: "application/xml", body });
        assert_eq!(read.body(), body);
        assert!(read.is_raw());
    }

    #[test]
    fn json_payloads_read_as_they_are() {
        let read = Payload::read(br#"{"a":1}"#);
        assert_eq!(read, Payload::Json(br#"{"a":1}"#));
        assert_eq!(read.content_type(), "application/json");
        // A mark without its end is not a raw payload.
        assert_eq!(Payload::read(b"\0raw\0text/plain"), Payload::Json(b"\0raw\0text/plain"));
    }
}
