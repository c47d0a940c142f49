//! Time-sortable identifiers in Svix's shape: a prefix (`msg_`, `ep_`…) followed by
//! 27 base62 characters.
//!
//! The 27 characters encode 160 bits: 48 bits of Unix milliseconds, then 112 bits
//! that start random each millisecond and count upwards within it. Fixed width and
//! an ASCII-ordered alphabet make string order equal to creation order, so lists
//! page by id and ids created by one process are strictly increasing.

use std::sync::Mutex;

/// The prefixes hookd gives its objects, as Svix does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdPrefix {
    Organization,
    Application,
    Endpoint,
    Message,
    Attempt,
    Token,
    /// An MCP token (`key_`, as Svix's).
    McpToken,
    EventType,
    /// A background task (`qtask_`, as Svix).
    Task,
    /// An inbound source (`src_`, as Svix).
    Source,
    /// A request received by an inbound source.
    InboundRequest,
    /// A poller sink (a polling endpoint; `sink_`, as Svix).
    Sink,
    /// A payload template.
    Template,
    /// A connector (`trtmpl_`, as Svix: a transformation template).
    Connector,
    /// An SLA.
    Sla,
    /// A change of an SLA's state.
    SlaEvent,
}

impl IdPrefix {
    pub const fn as_str(self) -> &'static str {
        match self {
            IdPrefix::Organization => "org_",
            IdPrefix::Application => "app_",
            IdPrefix::Endpoint => "ep_",
            IdPrefix::Message => "msg_",
            IdPrefix::Attempt => "atmpt_",
            IdPrefix::Token => "tok_",
            IdPrefix::McpToken => "key_",
            IdPrefix::EventType => "evtype_",
            IdPrefix::Task => "qtask_",
            IdPrefix::Source => "src_",
            IdPrefix::InboundRequest => "req_",
            IdPrefix::Sink => "sink_",
            IdPrefix::Template => "tmpl_",
            IdPrefix::Connector => "trtmpl_",
            IdPrefix::Sla => "sla_",
            IdPrefix::SlaEvent => "slaev_",
        }
    }
}

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Characters after the prefix.
pub const ID_BODY_LEN: usize = 27;

struct Last {
    millis: u64,
    tail: u128,
}

static LAST: Mutex<Last> = Mutex::new(Last { millis: 0, tail: 0 });

/// 112 bits of counter space per millisecond.
const TAIL_MASK: u128 = (1u128 << 112) - 1;

/// A new id with `prefix`, greater than every id this process made before.
pub fn new_id(prefix: IdPrefix) -> String {
    let now = crate::timefmt::now_millis().max(0) as u64;
    let (millis, tail) = {
        let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
        if now > last.millis {
            // Leave headroom above the random start so the counter cannot wrap.
            last.millis = now;
            last.tail = rand::random::<u128>() & (TAIL_MASK >> 1);
        } else {
            // Same millisecond (or the clock stepped back): keep counting from the last id.
            last.tail += 1 + (rand::random::<u16>() as u128);
            if last.tail > TAIL_MASK {
                last.millis += 1;
                last.tail = 0;
            }
        }
        (last.millis, last.tail)
    };
    let mut out = String::with_capacity(prefix.as_str().len() + ID_BODY_LEN);
    out.push_str(prefix.as_str());
    out.push_str(&encode_base62(((millis as u128) << 112 | tail, millis >> 16)));
    out
}

/// The smallest id with this prefix created at `millis` or later: used to turn a
/// time bound into an id bound for list queries.
pub fn id_floor_at(prefix: IdPrefix, millis: u64) -> String {
    let mut out = String::from(prefix.as_str());
    out.push_str(&encode_base62(((millis as u128) << 112, millis >> 16)));
    out
}

/// Encodes a 160-bit number given as (low 128 bits, high 32 bits) in 27 base62 digits.
fn encode_base62((low, high): (u128, u64)) -> String {
    // Work on five 32-bit limbs, most significant first, doing long division by 62.
    let mut limbs = [high as u32, (low >> 96) as u32, (low >> 64) as u32, (low >> 32) as u32, low as u32];
    let mut digits = [b'0'; ID_BODY_LEN];
    for slot in digits.iter_mut().rev() {
        let mut rem: u64 = 0;
        for limb in limbs.iter_mut() {
            let cur = (rem << 32) | *limb as u64;
            *limb = (cur / 62) as u32;
            rem = cur % 62;
        }
        *slot = ALPHABET[rem as usize];
    }
    String::from_utf8(digits.to_vec()).expect("alphabet is ASCII")
}

/// The creation time, in Unix milliseconds, encoded in an id made by [`new_id`].
pub fn id_millis(id: &str) -> Option<u64> {
    let body = id.rsplit_once('_').map(|(_, b)| b)?;
    if body.len() != ID_BODY_LEN {
        return None;
    }
    // Decode to five 32-bit limbs.
    let mut limbs = [0u64; 5];
    for c in body.bytes() {
        let d = ALPHABET.iter().position(|&a| a == c)? as u64;
        let mut carry = d;
        for limb in limbs.iter_mut().rev() {
            let cur = *limb * 62 + carry;
            *limb = cur & 0xffff_ffff;
            carry = cur >> 32;
        }
        if carry != 0 {
            return None;
        }
    }
    // The top 48 bits are the milliseconds: limb0 (32 bits) and the top 16 of limb1.
    Some((limbs[0] << 16) | (limbs[1] >> 16))
}

/// Whether `s` has the shape of an id with this prefix (as opposed to a user uid).
pub fn looks_like_id(prefix: IdPrefix, s: &str) -> bool {
    s.strip_prefix(prefix.as_str())
        .is_some_and(|b| b.len() == ID_BODY_LEN && b.bytes().all(|c| c.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_prefix_and_fixed_length() {
        let id = new_id(IdPrefix::Message);
        assert!(id.starts_with("msg_"));
        assert_eq!(id.len(), 4 + ID_BODY_LEN);
        assert!(looks_like_id(IdPrefix::Message, &id));
        assert!(!looks_like_id(IdPrefix::Endpoint, &id));
    }

    #[test]
    fn ids_are_strictly_increasing() {
        let mut prev = new_id(IdPrefix::Endpoint);
        for _ in 0..20_000 {
            let next = new_id(IdPrefix::Endpoint);
            assert!(next > prev, "{next} <= {prev}");
            prev = next;
        }
    }

    #[test]
    fn id_encodes_its_creation_time() {
        let before = crate::timefmt::now_millis() as u64;
        let id = new_id(IdPrefix::Application);
        let millis = id_millis(&id).unwrap();
        assert!(millis >= before && millis < before + 5_000, "{millis} vs {before}");
        let floor = id_floor_at(IdPrefix::Application, millis);
        assert!(floor <= id);
        assert!(id_floor_at(IdPrefix::Application, millis + 1) > id);
    }
}
