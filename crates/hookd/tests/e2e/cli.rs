//! The CLI client against a real server: `hookd app|endpoint|event-type|msg|
//! attempt …` with tables and `--json`, a profile file, errors that say what
//! to do; `hookd simulate` sending schema-generated events that reach a sink;
//! `hookd loadtest` driving a sink with signed requests.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};

use crate::mgmt::text;
use crate::support::{verify_standard_webhook, Sink, TestServer};

/// Runs `hookd ARGS` against `server` (its URL and token in the environment
/// unless `env` overrides them); exit status and stdout, stderr.
pub async fn hookd(server: &TestServer, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookd"));
    cmd.args(args)
        .env("HOOKD_URL", &server.base)
        .env("HOOKD_TOKEN", &server.token)
        .env_remove("HOOKD_PROFILE")
        .env("XDG_CONFIG_HOME", "/nonexistent")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output()).await.expect("hookd finished").unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn json_of(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

#[tokio::test]
async fn resources_from_the_shell_as_tables_and_json() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let (ok, out, err) = hookd(&server, &["app", "create", "--name", "Shop", "--uid", "shop"], &[]).await;
    assert!(ok, "{err}");
    assert!(out.lines().any(|l| l.starts_with("uid") && l.ends_with("shop")), "{out}");
    for i in 0..3 {
        hookd(&server, &["app", "create", "--name", &format!("Other {i}")], &[]).await;
    }

    // A page at a time, with the next iterator; --all follows them.
    let (ok, out, err) = hookd(&server, &["app", "list", "--limit", "2"], &[]).await;
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(out.lines().next().unwrap().starts_with("ID"), "{out}");
    assert!(err.contains("more: --iterator"), "{err}");
    let (_, out, _) = hookd(&server, &["app", "list", "--limit", "2", "--all", "--json"], &[]).await;
    let list = json_of(&out);
    assert_eq!(list["data"].as_array().unwrap().len(), 4);
    assert_eq!(list["done"], true);

    let url = sink.url("/cli");
    let args = ["endpoint", "create", "--app", "shop", "--url", &url, "--event-type", "order.paid", "--json"];
    let (ok, out, err) = hookd(&server, &args, &[]).await;
    assert!(ok, "{err}");
    let ep = text(&json_of(&out)["id"]);
    let (_, out, _) = hookd(&server, &["endpoint", "list", "--app", "shop"], &[]).await;
    assert!(out.contains(&ep) && out.contains("order.paid"), "{out}");
    let (_, secret, _) = hookd(&server, &["endpoint", "secret", "--app", "shop", &ep], &[]).await;
    assert!(secret.trim().starts_with("whsec_"), "{secret}");

    let args =
        ["msg", "create", "--app", "shop", "--event-type", "order.paid", "--payload", r#"{"total": 12}"#, "--json"];
    let (ok, out, err) = hookd(&server, &args, &[]).await;
    assert!(ok, "{err}");
    let msg = text(&json_of(&out)["id"]);
    let got = sink.wait_for(1, Duration::from_secs(10)).await;
    assert!(verify_standard_webhook(secret.trim(), &got[0]));
    assert_eq!(got[0].json()["total"], 12);

    let (_, out, _) = hookd(&server, &["msg", "list", "--app", "shop"], &[]).await;
    assert!(out.contains(&msg) && out.contains("order.paid"), "{out}");
    let ok_attempt = server
        .eventually(Duration::from_secs(10), || async {
            let (_, out, _) = hookd(&server, &["attempt", "list", "--app", "shop", "--msg", &msg, "--json"], &[]).await;
            let list = json_of(&out);
            let first = list["data"].get(0).cloned()?;
            (first["responseStatusCode"] == 200).then_some(first)
        })
        .await
        .expect("the attempt is listed");
    let (_, out, _) =
        hookd(&server, &["attempt", "list", "--app", "shop", "--endpoint", &ep, "--status", "success"], &[]).await;
    assert!(out.contains(text(&ok_attempt["id"]).as_str()) && out.contains("success"), "{out}");
    let (ok, _, err) =
        hookd(&server, &["attempt", "resend", "--app", "shop", "--msg", &msg, "--endpoint", &ep], &[]).await;
    assert!(ok, "{err}");
    sink.wait_for(2, Duration::from_secs(10)).await;

    // Errors say what is wrong and what to do.
    let (ok, _, err) = hookd(&server, &["app", "get", "nope"], &[]).await;
    assert!(!ok && err.contains("404") && err.contains("check the id"), "{err}");
    let (ok, _, err) = hookd(&server, &["app", "list"], &[("HOOKD_TOKEN", "sk_wrong")]).await;
    assert!(!ok && err.contains("401") && err.contains("--token"), "{err}");
    let (ok, _, err) = hookd(&server, &["app", "list"], &[("HOOKD_TOKEN", "")]).await;
    assert!(!ok && err.contains("no API token"), "{err}");
    let (ok, _, err) = hookd(&server, &["endpoint", "create", "--app", "shop", "--url", "ftp://x.example"], &[]).await;
    assert!(!ok && err.contains("422") && err.contains("url"), "{err}");
}

#[tokio::test]
async fn a_profile_names_the_server_and_token() {
    let server = TestServer::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("hookd")).unwrap();
    let file = format!(
        "default_profile = \"dev\"\n[profiles.dev]\nserver = \"{}\"\ntoken = \"{}\"\n[profiles.broken]\nserver = \"{}\"\ntoken = \"sk_nope\"\n",
        server.base, server.token, server.base
    );
    std::fs::write(dir.path().join("hookd/config.toml"), file).unwrap();
    let home = dir.path().to_str().unwrap();
    let env = [("XDG_CONFIG_HOME", home), ("HOOKD_URL", ""), ("HOOKD_TOKEN", "")];
    let (ok, out, err) = hookd(&server, &["app", "create", "--name", "From a profile", "--json"], &env).await;
    assert!(ok, "{err}");
    assert_eq!(json_of(&out)["name"], "From a profile");
    let (ok, _, err) = hookd(&server, &["app", "list", "--profile", "broken"], &env).await;
    assert!(!ok && err.contains("401"), "{err}");
    let (ok, _, err) = hookd(&server, &["app", "list", "--profile", "missing"], &env).await;
    assert!(!ok && err.contains("no profile `missing`"), "{err}");
}

#[tokio::test]
async fn simulate_sends_events_generated_from_the_schema() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let app = server.create_app("Simulated").await;
    server.create_endpoint(&app, json!({"url": sink.url("/sim")})).await;
    let schema = json!({
        "type": "object", "required": ["id", "email", "plan"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "email": {"type": "string", "format": "email"},
            "plan": {"enum": ["pro", "free"]},
        }
    });
    let (s, _) = server
        .post("/api/v1/event-type", json!({"name": "user.created", "description": "", "schemas": {"1": schema}}))
        .await;
    assert_eq!(s, 201);
    let args = ["simulate", "--app", &app, "--event-type", "user.created", "--count", "25", "--rate", "200", "--json"];
    let (ok, out, err) = hookd(&server, &args, &[]).await;
    assert!(ok, "{err}");
    let summary = json_of(&out);
    assert_eq!(summary["sent"], 25);
    assert_eq!(summary["messageIds"].as_array().unwrap().len(), 25);
    let got = sink.wait_for(25, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 25);
    let payload = got[0].json();
    assert_eq!(payload["plan"], "pro");
    assert!(payload["email"].as_str().unwrap().contains('@'), "{payload}");

    // An unknown type without a payload file says what to do.
    let (ok, _, err) = hookd(&server, &["simulate", "--app", &app, "--event-type", "nope"], &[]).await;
    assert!(!ok && err.contains("--payload"), "{err}");
}

#[tokio::test]
async fn loadtest_reports_latency_statuses_and_errors_of_a_receiver() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    sink.script(&[500, 500, 500]);
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let url = sink.url("/load");
    let args = ["loadtest", &url, "--rate", "200", "--duration", "1s", "--secret", secret, "--json"];
    let (ok, out, err) = hookd(&server, &args, &[]).await;
    assert!(ok, "{err}");
    let report = json_of(&out);
    assert_eq!(report["requests"], 200);
    assert_eq!(report["statusCodes"]["200"], 197);
    assert_eq!(report["statusCodes"]["500"], 3);
    assert!((report["errorRate"].as_f64().unwrap() - 0.015).abs() < 1e-9, "{report}");
    let p = &report["latencyMs"];
    assert!(p["p50"].as_f64().unwrap() > 0.0 && p["p50"].as_f64() <= p["p99"].as_f64(), "{report}");
    let got = sink.received();
    assert_eq!(got.len(), 200);
    assert!(got.iter().all(|r| verify_standard_webhook(secret, r)));

    // Nothing listening: every request is an error, and the table says which.
    let dead = "http://127.0.0.1:9/";
    let (ok, out, _) = hookd(&server, &["loadtest", dead, "--rate", "20", "--duration", "1s"], &[]).await;
    assert!(ok);
    assert!(out.contains("100.00% failed") && out.contains("refused"), "{out}");
}
