//! Signature verification on hostile headers: never panics, never accepts a
//! signature it did not make.
#![no_main]

use hookd_core::signing::{KeyType, PublicKey, Secret};
use libfuzzer_sys::fuzz_target;

const MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const BODY: &[u8] = br#"{"test": 2432232314}"#;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // The input split as "timestamp|signatures|secret".
    let mut parts = text.splitn(3, '|');
    let (timestamp, signatures, secret) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next());
    let now = timestamp.trim().parse::<i64>().unwrap_or(1_614_265_330);
    for kind in [KeyType::Hmac, KeyType::Ed25519] {
        let key = Secret::generate_of(kind);
        assert!(key.verify(MSG_ID, timestamp, signatures, BODY, now).is_err(), "a made-up signature verified");
        if let Some(public) = key.public_key() {
            let public = PublicKey::parse(&public).expect("its own public key parses");
            assert!(public.verify(MSG_ID, timestamp, signatures, BODY, now).is_err());
        }
    }
    if let Some(s) = secret {
        if let Ok(parsed) = Secret::parse(s) {
            // A parsed secret round-trips and verifies its own signatures.
            assert_eq!(Secret::parse(&parsed.expose()).as_ref(), Ok(&parsed));
            let sig = parsed.sign(MSG_ID, now, data);
            assert!(parsed.verify(MSG_ID, &now.to_string(), &sig, data, now).is_ok());
        }
        let _ = PublicKey::parse(s);
    }
});
