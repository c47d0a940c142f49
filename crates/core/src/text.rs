//! Text as it may be stored: whatever a receiver answers or an error says must
//! be recordable by every backend. PostgreSQL `text` refuses NUL (0x00) and both
//! backends expect UTF-8, so stored text goes through [`storable`] first.

/// Invalid UTF-8 and NUL become U+FFFD; everything else is kept as is.
pub fn storable(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    if s.contains('\0') {
        s.replace('\0', "\u{FFFD}")
    } else {
        s.into_owned()
    }
}

/// [`storable`] for a string that is UTF-8 already (it may still hold NUL).
pub fn storable_str(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains('\0') {
        std::borrow::Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// Lower-case hex of `bytes` (token and request hashes).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lower_case_two_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn nul_and_invalid_utf8_are_replaced() {
        assert_eq!(storable(b"ok"), "ok");
        assert_eq!(storable(b"a\0b"), "a\u{FFFD}b");
        assert_eq!(storable(b"\xff\0"), "\u{FFFD}\u{FFFD}");
        assert_eq!(storable_str("x\0"), "x\u{FFFD}");
        assert!(matches!(storable_str("clean"), std::borrow::Cow::Borrowed(_)));
    }
}
