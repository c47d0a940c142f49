//! Secrets at rest: endpoint secrets and headers are sealed in the database,
//! under a key file the embedded store makes or a key given to every node;
//! plain text from before is sealed on the first start with a key; a key
//! rotation re-seals without downtime.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::json;

use crate::mgmt::text;
use crate::postgres::{shared_url, TestDatabase};
use crate::support::{verify_standard_webhook, ServerOptions, Sink, TestServer};

fn with_args(args: &[&str]) -> ServerOptions {
    ServerOptions { extra_args: args.iter().map(|s| s.to_string()).collect(), ..Default::default() }
}

fn new_key() -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hookd")).args(["encryption", "generate-key"]).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Every byte of every file in `dir` but the key file.
fn stored_bytes(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() && path.file_name().unwrap() != "encryption.key" {
            all.extend(std::fs::read(&path).unwrap());
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The embedded store makes a key file (0600) on first start; the database
/// files then hold neither an endpoint's secret (in any form) nor its headers'
/// values, and everything reads back and signs after a restart.
#[tokio::test]
async fn secrets_and_headers_are_sealed_at_rest() {
    let raw: [u8; 24] = rand::random();
    let secret = format!("whsec_{}", STANDARD.encode(raw));
    let token = format!("Bearer tok-{}", rand::random::<u64>());
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut server = TestServer::spawn_in(dir.clone(), ServerOptions::default()).await;
    let note = server.stdout.lock().unwrap().iter().find(|l| l.contains("generated an encryption key")).cloned();
    assert!(note.is_some_and(|n| n.contains("encryption.key")), "the first start says it made a key file");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("encryption.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let sink = Sink::start().await;
    let app = server.create_app("Acme").await;
    let ep = server
        .create_endpoint(
            &app,
            json!({"url": sink.url("/sealed"), "secret": secret, "headers": {"Authorization": token}}),
        )
        .await;
    let ep = text(&ep["id"]);
    // A second endpoint's OAuth client secret (its token server is not there:
    // nothing reaches the sink from it).
    let client_secret = format!("oauth-secret-{}", rand::random::<u64>());
    let other =
        text(&server.create_endpoint(&app, json!({"url": sink.url("/other"), "filterTypes": ["x.y"]})).await["id"]);
    let oauth = json!({"grantType": "clientCredentials", "authMethod": "clientSecretBasic", "clientId": "c",
                       "clientSecret": client_secret, "tokenUrl": "http://127.0.0.1:9/token"});
    assert_eq!(server.put(&format!("/api/v1/app/{app}/endpoint/{other}/oauth"), oauth).await.0, 204);
    server.send_message(&app, "a.b", json!({"n": 1})).await;
    let got = sink.wait_for(1, Duration::from_secs(10)).await;
    assert!(verify_standard_webhook(&secret, &got[0]));
    server.sigterm();
    let _ = tokio::time::timeout(Duration::from_secs(15), server.child.wait()).await;

    let bytes = stored_bytes(dir.path());
    assert!(!bytes.is_empty());
    for (what, needle) in
        [("the secret", secret.as_bytes()), ("its base64", STANDARD.encode(raw).as_bytes()), ("its bytes", &raw[..])]
    {
        assert!(!contains(&bytes, needle), "{what} is in the database files");
    }
    assert!(!contains(&bytes, token.as_bytes()), "a header value is in the database files");
    assert!(!contains(&bytes, client_secret.as_bytes()), "an OAuth client secret is in the database files");

    // After a restart (same key file) it all reads back, and still signs.
    let server = TestServer::spawn_in(dir.clone(), ServerOptions::default()).await;
    let (_, got_secret) = server.get(&format!("/api/v1/app/{app}/endpoint/{ep}/secret")).await;
    assert_eq!(got_secret["key"], json!(secret));
    server.send_message(&app, "a.b", json!({"n": 2})).await;
    let got = sink.wait_for(2, Duration::from_secs(10)).await;
    assert!(verify_standard_webhook(&secret, &got[1]));
    assert_eq!(got[1].header("authorization"), token);
    let (status, oauth) = server.get(&format!("/api/v1/app/{app}/endpoint/{other}/oauth")).await;
    assert_eq!((status, oauth["clientId"].clone()), (200, json!("c")), "the sealed OAuth config reads back");
}

/// A rotation: the new key current and the old one readable, then
/// `hookd encryption rotate-key` re-seals everything, after which the old key
/// can go. A node without the key a value needs says which key it needs.
#[tokio::test]
async fn a_key_rotation_reseals_every_secret() {
    let (k1, k2) = (new_key(), new_key());
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut server = TestServer::spawn_in(dir.clone(), with_args(&["--encryption-key", &k1])).await;
    assert!(!dir.path().join("encryption.key").exists(), "a given key makes no key file");
    let app = server.create_app("Acme").await;
    let ep = text(&server.create_endpoint(&app, json!({"url": "http://127.0.0.1:9/x"})).await["id"]);
    let (_, before) = server.get(&format!("/api/v1/app/{app}/endpoint/{ep}/secret")).await;
    server.sigterm();
    let _ = tokio::time::timeout(Duration::from_secs(15), server.child.wait()).await;

    let hookd = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_hookd")).args(args).arg("--data-dir").arg(dir.path()).output().unwrap()
    };
    // Only the new key: the secret sealed under the old one cannot be read.
    let out = hookd(&["encryption", "rotate-key", "--encryption-key", &k2]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("which this node was not given"), "{out:?}");
    // Both: re-sealed under the new one.
    let out = hookd(&["encryption", "rotate-key", "--encryption-key", &k2, "--previous-encryption-keys", &k1]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("re-sealed 1 endpoints"), "{out:?}");
    // Now the old key can go.
    let server = TestServer::spawn_in(dir.clone(), with_args(&["--encryption-key", &k2])).await;
    let (status, after) = server.get(&format!("/api/v1/app/{app}/endpoint/{ep}/secret")).await;
    assert_eq!((status, &after), (200, &before));
}

/// PostgreSQL without a key stores plain text (and warns); the first start with
/// a key seals what is there.
#[tokio::test]
async fn plain_text_secrets_are_sealed_on_the_first_start_with_a_key() {
    let Some(admin) = shared_url() else { return };
    let db = TestDatabase::create(&admin);
    let mut server = TestServer::spawn_with(with_args(&["--database-url", &db.url])).await;
    let app = server.create_app("Acme").await;
    let ep = text(
        &server.create_endpoint(&app, json!({"url": "http://127.0.0.1:9/x", "headers": {"X-Api-Key": "k-123"}})).await
            ["id"],
    );
    let (_, before) = server.get(&format!("/api/v1/app/{app}/endpoint/{ep}/secret")).await;
    let column = |col: &str| {
        let out = Command::new("psql")
            .args([db.url.as_str(), "-tA", "-c", &format!("SELECT {col} FROM endpoint WHERE id = '{ep}'")])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    assert!(column("secret").starts_with("whsec_"), "plain text without a key");
    let basic = json!({"type": "basic", "username": "hookd", "password": "pw-123"});
    assert_eq!(server.put(&format!("/api/v1/app/{app}/endpoint/{ep}/auth"), basic).await.0, 204);
    server.sigterm();
    let _ = tokio::time::timeout(Duration::from_secs(15), server.child.wait()).await;

    let key = new_key();
    let server = TestServer::spawn_with(with_args(&["--database-url", &db.url, "--encryption-key", &key])).await;
    assert!(column("secret").starts_with("enc1:"), "{}", column("secret"));
    assert!(column("headers").starts_with("enc1:") && !column("headers").contains("k-123"));
    assert!(column("auth").starts_with("enc1:") && !column("auth").contains("pw-123"), "{}", column("auth"));
    let (_, after) = server.get(&format!("/api/v1/app/{app}/endpoint/{ep}/secret")).await;
    assert_eq!(after, before);

    // A sealed value opens only in its own row: copied into another endpoint's
    // row (by someone with database access), it does not; nor does plain text
    // slipped in once everything is sealed.
    let other = text(&server.create_endpoint(&app, json!({"url": "http://127.0.0.1:9/y"})).await["id"]);
    let sql = |q: &str| assert!(Command::new("psql").args([db.url.as_str(), "-qc", q]).status().unwrap().success());
    sql(&format!("UPDATE endpoint SET secret = (SELECT secret FROM endpoint WHERE id = '{ep}') WHERE id = '{other}'"));
    let (status, body) = server.get(&format!("/api/v1/app/{app}/endpoint/{other}/secret")).await;
    assert_eq!(status, 500, "a moved secret must not open: {body}");
    assert!(!body.to_string().contains(text(&before["key"]).as_str()));
    sql(&format!("UPDATE endpoint SET secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' WHERE id = '{other}'"));
    let (status, _) = server.get(&format!("/api/v1/app/{app}/endpoint/{other}/secret")).await;
    assert_eq!(status, 500, "plain text is refused once all is sealed");
    sql(&format!("DELETE FROM endpoint WHERE id = '{other}'"));
    drop(server);

    // Once sealed, a node without the key (or with another) refuses to start,
    // naming the key, rather than fail on every secret or write new ones in plain text.
    for extra in [vec![], vec!["--encryption-key".to_string(), new_key()]] {
        let out = tokio::time::timeout(
            Duration::from_secs(30),
            tokio::process::Command::new(env!("CARGO_BIN_EXE_hookd"))
                .args(["serve", "--listen", "127.0.0.1:0", "--database-url", &db.url, "--admin-token", "sk_x"])
                .args(&extra)
                .output(),
        )
        .await
        .expect("refuses promptly")
        .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("sealed with encryption key"), "{err}");
    }
}

/// Ways to write a forbidden address that try to slip past the SSRF guard: all
/// are refused, literal ones at endpoint creation (422), names that resolve to
/// loopback at delivery (the attempt says why).
#[tokio::test]
async fn ssrf_bypass_attempts_are_refused() {
    let server = TestServer::spawn_with(ServerOptions { allow_private: false, ..Default::default() }).await;
    let app = server.create_app("Acme").await;
    let literal = [
        "http://127.0.0.1/",
        "http://2130706433/", // 127.0.0.1 in decimal
        "http://0177.0.0.1/", // octal
        "http://0x7f.0.0.1/", // hex
        "http://0x7f000001/", // one hex number
        "http://127.1/",      // short form
        "http://0/",          // 0.0.0.0
        "http://0.0.0.0:8071/",
        "http://[::]/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/", // IPv4-mapped
        "http://[::ffff:7f00:1]/",
        "http://[::127.0.0.1]/", // IPv4-compatible
        "http://127.0.0.1./",    // trailing dot
        "http://user:pass@127.0.0.1/",
        "http://example.com@127.0.0.1/", // userinfo that looks like a host
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://10.0.0.1/",
        "http://192.168.1.1/",
        "http://100.64.0.1/",
        "http://[fe80::1]/",
        "http://[fc00::1]/",
        "http://[64:ff9b::7f00:1]/", // NAT64 of 127.0.0.1
        "http://[2002:7f00:1::]/",   // 6to4 of 127.0.0.1
        "http://198.18.0.1/",
        "http://240.0.0.1/",
        "http://[3fff::1]/",
    ];
    for url in literal {
        let (status, body) = server.post(&format!("/api/v1/app/{app}/endpoint"), json!({"url": url})).await;
        assert_eq!(status, 422, "{url} was accepted: {body}");
        assert_eq!(body["detail"][0]["loc"], json!(["body", "url"]), "{url}: {body}");
    }
    // Names are resolved on every connection: these resolve to loopback.
    for url in ["http://localhost:9/", "http://localhost.:9/", "http://LOCALHOST:9/"] {
        let (status, ep) = server.post(&format!("/api/v1/app/{app}/endpoint"), json!({"url": url})).await;
        assert_eq!(status, 201, "{url}: {ep}");
        let (status, msg) = server
            .post(
                &format!("/api/v1/app/{app}/endpoint/{}/send-example", text(&ep["id"])),
                json!({"eventType": "a.b", "payload": {}}),
            )
            .await;
        assert_eq!(status, 202, "{msg}");
        let msg = text(&msg["id"]);
        let attempts = crate::mgmt::wait_for_attempts(&server, &app, &msg, 1).await;
        let response = text(&attempts[0]["response"]);
        // Refused after resolution (or, where this machine's resolver does not
        // know the trailing-dot form, not resolved at all): never connected.
        let refused = response.contains("refused") && response.contains("private or reserved");
        assert!(refused || response.contains("dns error"), "{url}: {response}");
        assert_eq!(attempts[0]["responseStatusCode"], 0, "{url}");
        server.delete(&format!("/api/v1/app/{app}/endpoint/{}", text(&ep["id"]))).await;
    }
}

/// Every change through the API lands in the audit trail — which token, what,
/// on which path, from where — and failed authentications too; message sends
/// do not.
#[tokio::test]
async fn changes_are_recorded_in_the_audit_trail() {
    let server = TestServer::spawn_with(ServerOptions { admin_token: None, ..Default::default() }).await;
    let app = server.create_app("Acme").await;
    let ep = text(&server.create_endpoint(&app, json!({"url": "http://127.0.0.1:9/x"})).await["id"]);
    server.patch(&format!("/api/v1/app/{app}/endpoint/{ep}"), json!({"description": "renamed"})).await;
    server.post(&format!("/api/v1/app/{app}/endpoint/{ep}/secret/rotate"), json!({})).await;
    server.send_message(&app, "a.b", json!({})).await;
    server.delete(&format!("/api/v1/app/{app}/endpoint/{ep}")).await;
    let bad = server.client.get(server.url("/api/v1/app")).bearer_auth("sk_not_a_token").send().await.unwrap();
    assert_eq!(bad.status(), 401);

    let (status, page) = server.get("/api/v1/audit?limit=250").await;
    assert_eq!(status, 200, "{page}");
    let actions: Vec<String> = page["data"].as_array().unwrap().iter().map(|e| text(&e["action"])).collect();
    assert_eq!(
        actions,
        [
            "GET /api/v1/app",
            "DELETE /api/v1/app/{app_id}/endpoint/{endpoint_id}",
            "POST /api/v1/app/{app_id}/endpoint/{endpoint_id}/secret/rotate",
            "PATCH /api/v1/app/{app_id}/endpoint/{endpoint_id}",
            "POST /api/v1/app/{app_id}/endpoint",
            "POST /api/v1/app",
        ],
        "newest first; the message send is not a change"
    );
    let entries = page["data"].as_array().unwrap();
    assert_eq!((entries[0]["actor"].as_str(), entries[0]["status"].as_i64()), (Some("unauthenticated"), Some(401)));
    let delete = &entries[1];
    assert!(text(&delete["actor"]).starts_with("tok_"), "the token's id: {delete}");
    assert_eq!(delete["target"], json!(format!("/api/v1/app/{app}/endpoint/{ep}")));
    assert_eq!((delete["status"].as_i64(), delete["address"].as_str()), (Some(204), Some("127.0.0.1")));
    // Pages.
    let (_, first) = server.get("/api/v1/audit?limit=2").await;
    assert_eq!(first["done"], false);
    let (_, second) = server.get(&format!("/api/v1/audit?limit=2&iterator={}", text(&first["iterator"]))).await;
    assert_eq!(second["data"][0]["action"], json!(actions[2]));
}

/// `hookd audit verify` proves the trail intact, and names the entry where an
/// edit or a removal in the database broke it.
#[tokio::test]
async fn audit_verify_finds_an_altered_or_removed_entry() {
    let Some(admin) = shared_url() else { return };
    let db = TestDatabase::create(&admin);
    let mut server = TestServer::spawn_with(with_args(&["--database-url", &db.url])).await;
    let app = server.create_app("Acme").await;
    for n in 0..3 {
        server.create_endpoint(&app, json!({"url": format!("http://127.0.0.1:9/{n}")})).await;
    }
    server.sigterm();
    let _ = tokio::time::timeout(Duration::from_secs(15), server.child.wait()).await;
    let verify = || {
        Command::new(env!("CARGO_BIN_EXE_hookd")).args(["audit", "verify", "--database-url", &db.url]).output().unwrap()
    };
    let sql = |q: &str| assert!(Command::new("psql").args([db.url.as_str(), "-qc", q]).status().unwrap().success());

    let out = verify();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("audit trail intact: 4 entries"), "{out:?}");

    sql("UPDATE audit_log SET target = '/api/v1/app/somewhere-else' WHERE seq = 2");
    let out = verify();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("broken at entry 2: its content does not match"), "{out:?}");

    sql("DELETE FROM audit_log WHERE seq = 2");
    let out = verify();
    assert!(String::from_utf8_lossy(&out.stderr).contains("broken at entry 3: entries 2 to 2 are missing"), "{out:?}");
}

/// `whoami` says whose token it is; `expire-all` revokes an application's portal
/// tokens; `--token-rate-limit` caps each token's requests (429 with
/// `Retry-After`); a pathologically nested body is refused with a 4xx and the
/// server stays up.
#[tokio::test]
async fn whoami_expire_all_token_rate_and_hostile_bodies() {
    let server = TestServer::spawn_with(with_args(&["--token-rate-limit", "20"])).await;
    let app = server.create_app("Acme").await;
    let (_, me) = server.get("/api/v1/auth/whoami").await;
    assert_eq!((me["appId"].is_null(), me["tokenId"].as_str()), (true, Some("bootstrap")), "{me}");
    assert!(text(&me["envId"]).starts_with("org_"));

    let (status, portal) = server.post(&format!("/api/v1/auth/app-portal-access/{app}"), json!({})).await;
    assert_eq!(status, 200, "{portal}");
    let portal_token = text(&portal["token"]);
    let as_portal = |path: &str| server.client.get(server.url(path)).bearer_auth(&portal_token).send();
    let me: serde_json::Value = as_portal("/api/v1/auth/whoami").await.unwrap().json().await.unwrap();
    assert_eq!(me["appId"], json!(app));
    assert_eq!(as_portal(&format!("/api/v1/app/{app}")).await.unwrap().status(), 200);

    let (status, body) =
        server.post(&format!("/api/v1/auth/app/{app}/expire-all"), json!({"sessionIds": ["s1"]})).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(as_portal(&format!("/api/v1/app/{app}")).await.unwrap().status(), 200, "another session's token");
    let (status, body) =
        server.post(&format!("/api/v1/auth/app/{app}/expire-all"), json!({"sessionIds": ["not a session"]})).await;
    assert_eq!(status, 422, "{body}");
    let (status, _) = server.post(&format!("/api/v1/auth/app/{app}/expire-all"), json!({})).await;
    assert_eq!(status, 204);
    assert_eq!(as_portal(&format!("/api/v1/app/{app}")).await.unwrap().status(), 401, "revoked at once");

    // 20 requests a second per token; a burst of 40 meets a 429.
    let mut limited = None;
    for _ in 0..40 {
        let resp = server.request(reqwest::Method::GET, "/api/v1/app").send().await.unwrap();
        if resp.status() == 429 {
            limited = Some(resp);
            break;
        }
    }
    let limited = limited.expect("a 429 within 40 requests at once");
    assert!(limited.headers().contains_key("retry-after"));
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // 100,000 nested arrays: refused, and the server still answers.
    let deep =
        format!("{{\"eventType\": \"a.b\", \"payload\": {{\"x\": {}{}}}}}", "[".repeat(100_000), "]".repeat(100_000));
    let resp = server
        .request(reqwest::Method::POST, &format!("/api/v1/app/{app}/msg"))
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error(), "{}", resp.status());
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(body["detail"].is_string() || body["detail"].is_array(), "{body}");
    let (status, _) = server.get("/api/v1/health").await;
    assert_eq!(status, 200);
}

/// With debug logging, nothing hookd logs holds a token, a signing secret, a
/// header value or a payload.
#[tokio::test]
async fn logs_never_contain_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("stderr.log");
    let token = format!("sk_{}", rand::random::<u64>());
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookd"))
        .args(["serve", "--listen", "127.0.0.1:0", "--log", "debug", "--allow-private-networks"])
        .args(["--retry-schedule", "100ms", "--admin-token", &token])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env_remove("HOOKD_ADMIN_TOKEN")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let base = loop {
        let line = lines.next_line().await.unwrap().expect("hookd started");
        if let Some(url) = line.strip_prefix("listening on ") {
            break url.trim().to_string();
        }
    };
    let client = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, body: serde_json::Value| {
        client.request(method, format!("{base}{path}")).bearer_auth(&token).json(&body).send()
    };
    let sink = Sink::start().await;
    sink.script(&[500]);
    let raw: [u8; 24] = rand::random();
    let secret = format!("whsec_{}", STANDARD.encode(raw));
    let header = format!("Bearer hdr-{}", rand::random::<u64>());
    let marker = format!("payload-{}", rand::random::<u64>());
    let app: serde_json::Value =
        call(reqwest::Method::POST, "/api/v1/app", json!({"name": "Acme"})).await.unwrap().json().await.unwrap();
    let app = text(&app["id"]);
    let ep: serde_json::Value = call(
        reqwest::Method::POST,
        &format!("/api/v1/app/{app}/endpoint"),
        json!({"url": sink.url("/logs"), "secret": secret, "headers": {"Authorization": header}}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    call(
        reqwest::Method::POST,
        &format!("/api/v1/app/{app}/msg"),
        json!({"eventType": "a.b", "payload": {"m": marker}}),
    )
    .await
    .unwrap();
    sink.wait_for(2, Duration::from_secs(10)).await;
    call(reqwest::Method::POST, &format!("/api/v1/app/{app}/endpoint/{}/secret/rotate", text(&ep["id"])), json!({}))
        .await
        .unwrap();
    let _ = client.get(format!("{base}/api/v1/app")).bearer_auth("sk_wrong_token_value").send().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    child.kill().await.unwrap();

    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.lines().count() > 5, "debug logging produced output");
    for (what, needle) in [
        ("the admin token", token.as_str()),
        ("a wrong token", "sk_wrong_token_value"),
        ("the signing secret", secret.as_str()),
        ("a header value", header.as_str()),
        ("a payload", marker.as_str()),
    ] {
        assert!(!log.contains(needle), "{what} is in the log");
    }
}

/// Every route of the API with an application in its path, read from the
/// router's source (so a new route is walked too), called with application X's
/// portal token on application Y's objects: each answers 404, and Y is left as
/// it was.
#[tokio::test]
async fn every_application_route_is_isolated() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let mut ids = std::collections::HashMap::new();
    for name in ["X", "Y"] {
        let app = server.create_app(name).await;
        let ep = text(&server.create_endpoint(&app, json!({"url": sink.url(&format!("/{name}"))})).await["id"]);
        let msg = text(&server.send_message(&app, "a.b", json!({"n": name})).await["id"]);
        let attempts = crate::mgmt::wait_for_attempts(&server, &app, &msg, 1).await;
        ids.insert(name, (app, ep, msg, text(&attempts[0]["id"])));
    }
    let (x_app, ..) = ids["X"].clone();
    let (y_app, y_ep, y_msg, y_attempt) = ids["Y"].clone();
    let (status, y_sink) = server.post(&format!("/api/v1/app/{y_app}/stream/sink"), json!({"type": "poller"})).await;
    assert_eq!(status, 201, "{y_sink}");
    let y_sink = text(&y_sink["id"]);
    let (_, portal) = server.post(&format!("/api/v1/auth/app-portal-access/{x_app}"), json!({})).await;
    let x_token = text(&portal["token"]);
    let (status, _) = server.post(&format!("/api/v1/auth/app/{y_app}/mcp-token"), json!({})).await;
    assert_eq!(status, 200);
    let (_, y_mcp) = server.get(&format!("/api/v1/auth/app/{y_app}/mcp-token")).await;
    let y_mcp_token = text(&y_mcp["data"][0]["id"]);

    let mut walked = 0;
    for (template, methods) in crate::mgmt::router_routes() {
        if !template.contains("{app_id}") {
            continue;
        }
        let path = template
            .replace("{app_id}", &y_app)
            .replace("{endpoint_id}", &y_ep)
            .replace("{msg_id}", &y_msg)
            .replace("{attempt_id}", &y_attempt)
            .replace("{sink_id}", &y_sink)
            .replace("{token_id}", &y_mcp_token)
            .replace("{consumer_id}", "y-consumer");
        assert!(!path.contains('{'), "an unknown path parameter in {template}");
        for method in methods {
            let resp = server
                .client
                .request(method.clone(), server.url(&path))
                .bearer_auth(&x_token)
                .json(&json!({"url": "http://127.0.0.1:9/z", "eventType": "a.b", "payload": {}, "since": crate::support::seconds_ago(60)}))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 404, "{method} {template} with another application's token");
            walked += 1;
        }
    }
    eprintln!("walked {walked} route methods");
    assert!(walked >= 30, "only {walked} routes were walked");
    // Y is as it was.
    let (status, _) = server.get(&format!("/api/v1/app/{y_app}/endpoint/{y_ep}")).await;
    assert_eq!(status, 200);
    let (_, msgs) = server.get(&format!("/api/v1/app/{y_app}/msg")).await;
    assert_eq!(msgs["data"].as_array().unwrap().len(), 1);
    let (_, y) = server.get(&format!("/api/v1/app/{y_app}")).await;
    assert_eq!(y["name"], "Y");
}

/// An endpoint may sign with Ed25519 (`v1a`): hookd makes the key, shows the
/// public key, signs every delivery, and a rotation keeps the kind.
#[tokio::test]
async fn ed25519_endpoints_sign_v1a_with_a_public_key_to_check() {
    use hookd_core::signing::PublicKey;
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let app = server.create_app("Asym").await;
    let ep = server.create_endpoint(&app, json!({"url": sink.url("/asym"), "keyType": "ed25519"})).await;
    let ep_id = text(&ep["id"]);
    let public = text(&ep["publicKey"]);
    assert!(public.starts_with("whpk_"), "{ep}");
    let (_, secret) = server.get(&format!("/api/v1/app/{app}/endpoint/{ep_id}/secret")).await;
    assert!(text(&secret["key"]).starts_with("whsk_"), "{secret}");
    assert_eq!(secret["publicKey"], json!(public));

    server.send_message(&app, "a.b", json!({"n": 1})).await;
    let got = sink.wait_for(1, Duration::from_secs(10)).await;
    let (id, ts, sig) =
        (got[0].header("webhook-id"), got[0].header("webhook-timestamp"), got[0].header("webhook-signature"));
    assert!(sig.starts_with("v1a,") && !sig.contains(' '), "{sig}");
    let key = PublicKey::parse(&public).unwrap();
    let now = hookd_core::timefmt::now_millis() / 1000;
    assert_eq!(key.verify(id, ts, sig, &got[0].body, now), Ok(()));
    assert!(key.verify(id, ts, sig, b"{}", now).is_err());

    // A rotation keeps Ed25519; during the grace period both keys sign.
    let (status, rotated) = server.post(&format!("/api/v1/app/{app}/endpoint/{ep_id}/secret/rotate"), json!({})).await;
    assert!(status < 300, "{rotated}");
    let new_public = text(&rotated["publicKey"]);
    assert_ne!(new_public, public);
    server.send_message(&app, "a.b", json!({"n": 2})).await;
    let got = sink.wait_for(2, Duration::from_secs(10)).await;
    let sig = got[1].header("webhook-signature");
    assert_eq!(sig.split(' ').filter(|s| s.starts_with("v1a,")).count(), 2, "{sig}");
    let (id, ts) = (got[1].header("webhook-id"), got[1].header("webhook-timestamp"));
    for k in [&public, &new_public] {
        assert_eq!(PublicKey::parse(k).unwrap().verify(id, ts, sig, &got[1].body, now), Ok(()));
    }
    let (status, body) =
        server.post(&format!("/api/v1/app/{app}/endpoint"), json!({"url": sink.url("/x"), "keyType": "rsa"})).await;
    assert_eq!(status, 422, "{body}");
}

/// An organisation that seals its payloads: the database files hold neither
/// its payloads nor its receivers' answers, while the API shows both and the
/// receiver gets the plain payload. The default organisation's stay plain.
#[tokio::test]
async fn an_organisations_payloads_and_responses_are_sealed_at_rest() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut server = TestServer::spawn_in(dir.clone(), ServerOptions::default()).await;
    let sink = Sink::start().await;
    sink.set_body(b"receiver-answer-9f3c2e");
    sink.reply(&[crate::support::Reply::new(200, &[("x-receiver-note", "header-answer-6b0d13")])]);
    let (status, env) = server
        .post(
            "/api/v1/management/environment",
            json!({"name": "Sealed", "type": "production", "encryptPayloads": true}),
        )
        .await;
    assert_eq!(status, 201, "{env}");
    assert_eq!(env["encryptPayloads"], true);
    let (_, tok) = server
        .post(&format!("/api/v1/management/authentication/{}/api-token", text(&env["id"])), json!({"name": "s"}))
        .await;
    let sealed = text(&tok["token"]);
    let call = |method: reqwest::Method, path: &str, body: Option<serde_json::Value>| {
        let mut req = server.client.request(method, server.url(path)).bearer_auth(&sealed);
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move { crate::mgmt::read(req.send().await.unwrap()).await }
    };
    let (_, app) = call(reqwest::Method::POST, "/api/v1/app", Some(json!({"name": "S"}))).await;
    let app = text(&app["id"]);
    call(reqwest::Method::POST, &format!("/api/v1/app/{app}/endpoint"), Some(json!({"url": sink.url("/s")}))).await;
    let (status, msg) = call(
        reqwest::Method::POST,
        &format!("/api/v1/app/{app}/msg"),
        Some(json!({"eventType": "a.b", "payload": {"card": "sealed-payload-7d41a9"}})),
    )
    .await;
    assert_eq!(status, 202, "{msg}");
    let msg = text(&msg["id"]);
    let got = sink.wait_for(1, Duration::from_secs(10)).await;
    assert!(String::from_utf8_lossy(&got[0].body).contains("sealed-payload-7d41a9"), "the receiver gets it plain");
    // The default organisation's payload, as a control: stored plain.
    let plain_sink = Sink::start().await;
    plain_sink.set_body(b"plain-answer-2c8e51");
    let plain_app = server.create_app("Plain").await;
    server.create_endpoint(&plain_app, json!({"url": plain_sink.url("/p")})).await;
    let plain_msg = text(&server.send_message(&plain_app, "a.b", json!({"card": "plain-payload-51be07"})).await["id"]);
    crate::mgmt::wait_for_attempts(&server, &plain_app, &plain_msg, 1).await;

    let (_, shown) = call(reqwest::Method::GET, &format!("/api/v1/app/{app}/msg/{msg}?with_content=true"), None).await;
    assert_eq!(shown["payload"]["card"], "sealed-payload-7d41a9", "{shown}");
    let attempts = server
        .eventually(Duration::from_secs(10), || async {
            let (_, list) = call(reqwest::Method::GET, &format!("/api/v1/app/{app}/attempt/msg/{msg}"), None).await;
            list["data"].as_array().filter(|d| !d.is_empty()).cloned()
        })
        .await
        .expect("the attempt was recorded");
    assert_eq!(attempts[0]["response"], "receiver-answer-9f3c2e", "{attempts:?}");
    let headers = format!("/api/v1/app/{app}/msg/{msg}/attempt/{}/headers", text(&attempts[0]["id"]));
    let (_, headers) = call(reqwest::Method::GET, &headers, None).await;
    let note = json!(["x-receiver-note", "header-answer-6b0d13"]);
    assert!(headers["responseHeaders"].as_array().unwrap().contains(&note), "{headers}");

    server.sigterm();
    let _ = tokio::time::timeout(Duration::from_secs(15), server.child.wait()).await;
    let bytes = stored_bytes(dir.path());
    assert!(contains(&bytes, b"plain-payload-51be07"), "the control payload is stored plain");
    assert!(!contains(&bytes, b"sealed-payload-7d41a9"), "a sealed organisation's payload is in the database files");
    assert!(contains(&bytes, b"plain-answer-2c8e51"), "the control answer is stored plain");
    assert!(!contains(&bytes, b"receiver-answer-9f3c2e"), "a sealed organisation's answer is in the database files");
    assert!(!contains(&bytes, b"header-answer-6b0d13"), "a sealed organisation's answer's headers are in the files");
}
