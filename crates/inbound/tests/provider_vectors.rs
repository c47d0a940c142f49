//! The examples the providers publish in their own documentation, verified as
//! published: if hookd reads a provider's scheme differently from the
//! provider, these fail.

use hookd_inbound::{Incoming, SourceConfig};
use serde_json::json;

fn request<'a>(url: &'a str, headers: &'a [(String, String)], body: &'a [u8], now_secs: i64) -> Incoming<'a> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    Incoming { method: "POST", url, query, headers, body, now_secs }
}

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// GitHub, "Validating webhook deliveries": secret "It's a Secret to
/// Everybody", payload "Hello, World!".
#[test]
fn github_documentation_example() {
    let source = SourceConfig::parse("github", &json!({"secret": "It's a Secret to Everybody"})).unwrap();
    let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    let h = headers(&[("x-hub-signature-256", sig)]);
    assert_eq!(source.scheme.verify(&request("https://h/ingest/t", &h, b"Hello, World!", 0)), Ok(()));
    assert!(source.scheme.verify(&request("https://h/ingest/t", &h, b"Hello, World?", 0)).is_err());
}

/// Slack, "Verifying requests from Slack": the slash-command example.
#[test]
fn slack_documentation_example() {
    let source = SourceConfig::parse("slack", &json!({"secret": "8f742231b10e8888abcd99yyyzzz85a5"})).unwrap();
    let body = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V\
                &channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=\
                &response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN\
                &trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    let h = headers(&[
        ("x-slack-request-timestamp", "1531420618"),
        ("x-slack-signature", "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"),
    ]);
    let at = 1_531_420_618;
    assert_eq!(source.scheme.verify(&request("https://h/ingest/t", &h, body.as_bytes(), at)), Ok(()));
    // The same request ten minutes later is a replay.
    assert!(source.scheme.verify(&request("https://h/ingest/t", &h, body.as_bytes(), at + 600)).is_err());
}

/// Twilio, "Webhooks security": auth token 12345, the example URL and form fields.
#[test]
fn twilio_documentation_example() {
    let source = SourceConfig::parse("twilio", &json!({"authToken": "12345"})).unwrap();
    let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
    let body = "CallSid=CA1234567890ABCDE&Caller=%2B12349013030&Digits=1234&From=%2B12349013030&To=%2B18005551212";
    let h = headers(&[
        ("content-type", "application/x-www-form-urlencoded"),
        ("x-twilio-signature", "0/KCTR6DLpKmkAf8muzZqo1nDgQ="),
    ]);
    assert_eq!(source.scheme.verify(&request(url, &h, body.as_bytes(), 0)), Ok(()));
    let other = "https://mycompany.com/myapp.php?foo=1&bar=3";
    assert!(source.scheme.verify(&request(other, &h, body.as_bytes(), 0)).is_err());
}

/// Standard Webhooks (and Svix's documentation): the reference example.
#[test]
fn standard_webhooks_reference_example() {
    for kind in ["standard-webhooks", "svix"] {
        let source = SourceConfig::parse(kind, &json!({"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})).unwrap();
        let h = headers(&[
            ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
            ("webhook-timestamp", "1614265330"),
            ("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
        ]);
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(source.scheme.verify(&request("https://h/ingest/t", &h, body, 1_614_265_330)), Ok(()), "{kind}");
    }
}
