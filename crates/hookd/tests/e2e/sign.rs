//! `hookd sign` and `hookd verify` against what hookd really sends: a delivery
//! verifies, a changed body, a cut signature or a stale timestamp does not;
//! `v1a` with an Ed25519 endpoint's public key.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::mgmt::{secret_of, text};
use crate::support::{Received, Sink, TestServer};

fn run(args: &[&str], body: &[u8]) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hookd"))
        .args(args)
        .env_remove("HOOKD_SIGNING_SECRET")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn headers(r: &Received) -> Vec<String> {
    ["webhook-id", "webhook-timestamp", "webhook-signature"].iter().map(|h| format!("{h}: {}", r.header(h))).collect()
}

fn verify(key_flag: &str, key: &str, hs: &[String], body: &[u8], extra: &[&str]) -> (bool, String) {
    let mut args = vec!["verify", key_flag, key];
    for h in hs {
        args.extend(["--header", h.as_str()]);
    }
    args.extend(extra);
    run(&args, body)
}

#[tokio::test]
async fn deliveries_verify_and_tampering_does_not() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let app = server.create_app("Signed").await;
    let ep = text(&server.create_endpoint(&app, json!({"url": sink.url("/hmac")})).await["id"]);
    let ed = server.create_endpoint(&app, json!({"url": sink.url("/ed"), "keyType": "ed25519"})).await;
    let public_key = text(&ed["publicKey"]);
    let secret = secret_of(&server, &app, &ep).await;
    server.send_message(&app, "a.b", json!({"n": 1})).await;
    let got = sink.wait_for(2, Duration::from_secs(10)).await;
    let hmac = got.iter().find(|r| r.path == "/hmac").unwrap();
    let v1a = got.iter().find(|r| r.path == "/ed").unwrap();

    let (ok, said) = verify("--secret", &secret, &headers(hmac), &hmac.body, &[]);
    assert!(ok, "{said}");
    let (ok, said) = verify("--secret", &secret, &headers(hmac), b"{\"n\":2}", &[]);
    assert!(!ok && said.contains("no matching signature"), "{said}");
    let mut cut = headers(hmac);
    let keep = cut[2].len() - 4;
    cut[2].truncate(keep);
    assert!(!verify("--secret", &secret, &cut, &hmac.body, &[]).0, "a truncated signature is refused");
    let later = (hookd_core::timefmt::now_millis() / 1000 + 600).to_string();
    let (ok, said) = verify("--secret", &secret, &headers(hmac), &hmac.body, &["--now", &later]);
    assert!(!ok && said.contains("tolerance"), "{said}");
    let (ok, said) = verify("--public-key", &public_key, &headers(v1a), &v1a.body, &[]);
    assert!(ok && headers(v1a)[2].contains("v1a,"), "{said}");

    // What `hookd sign` prints, `hookd verify` (and hookd's own deliveries' rules) accept.
    let (ok, printed) = run(&["sign", "--secret", &secret, "--id", "msg_fixed", "--timestamp", "1700000000"], b"{}");
    assert!(ok, "{printed}");
    let lines: Vec<String> = printed.lines().map(String::from).collect();
    assert_eq!(&lines[..2], ["webhook-id: msg_fixed", "webhook-timestamp: 1700000000"]);
    assert!(verify("--secret", &secret, &lines, b"{}", &["--now", "1700000100"]).0);
    let (ok, said) = run(&["sign", "--secret", "not-a-secret"], b"{}");
    assert!(!ok && said.contains("--secret"), "{said}");
}
