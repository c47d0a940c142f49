//! Organisations and token scopes: a server admin makes organisations and their
//! tokens; an organisation's token sees only its organisation; read-only and
//! portal tokens do only what their scope allows.

use reqwest::Method;
use serde_json::{json, Value};

use crate::mgmt::{ids, read, text, wait_for_attempts};
use crate::support::{ServerOptions, Sink, TestServer};

/// Calls the server as one token.
struct Caller<'a> {
    server: &'a TestServer,
    token: String,
}

impl Caller<'_> {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.server.client.request(method, self.server.url(path)).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        read(req.send().await.expect("request")).await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(Method::POST, path, Some(body)).await
    }
}

fn as_token<'a>(server: &'a TestServer, token: &str) -> Caller<'a> {
    Caller { server, token: token.to_string() }
}

/// A new organisation and an admin token of it (made with the server admin token).
async fn organisation(server: &TestServer, name: &str) -> (String, String) {
    organisation_with(server, name, json!({})).await
}

/// [`organisation`] with more of its settings (`destinationPolicy`, say).
pub(crate) async fn organisation_with(server: &TestServer, name: &str, settings: Value) -> (String, String) {
    let mut body = json!({"name": name, "type": "production"});
    body.as_object_mut().unwrap().extend(settings.as_object().unwrap().clone());
    let (status, env) = server.post("/api/v1/management/environment", body).await;
    assert_eq!(status, 201, "{env}");
    let env_id = text(&env["id"]);
    let (status, tok) =
        server.post(&format!("/api/v1/management/authentication/{env_id}/api-token"), json!({"name": "admin"})).await;
    assert_eq!(status, 200, "{tok}");
    (env_id, text(&tok["token"]))
}

#[tokio::test]
async fn organisations_and_their_tokens_see_only_their_own() {
    let server = TestServer::spawn().await;
    let default_app = server.create_app("Default's").await;
    let (env_b, token_b) = organisation(&server, "B").await;
    let b = as_token(&server, &token_b);

    let (status, env) = b.get(&format!("/api/v1/management/environment/{env_b}")).await;
    assert_eq!(status, 200, "{env}");
    assert_eq!(
        (env["name"].as_str(), env["type"].as_str(), env["region"].as_str()),
        (Some("B"), Some("production"), Some("self-hosted"))
    );
    let (status, me) = b.get("/api/v1/auth/whoami").await;
    assert_eq!(status, 200);
    assert_eq!((me["envId"].as_str(), me["role"].as_str()), (Some(env_b.as_str()), Some("admin")), "{me}");

    // B's objects are B's; the default organisation's are not B's, and the other way round.
    let (status, app) = b.post("/api/v1/app", json!({"name": "B's", "uid": "same-uid"})).await;
    assert_eq!(status, 201, "{app}");
    let b_app = text(&app["id"]);
    let (status, _) = server.post("/api/v1/app", json!({"name": "A's", "uid": "same-uid"})).await;
    assert_eq!(status, 201, "uids are per organisation");
    let (_, listed) = b.get("/api/v1/app").await;
    assert_eq!(ids(&listed), vec![b_app.clone()]);
    let (_, listed) = server.get("/api/v1/app").await;
    assert!(!ids(&listed).contains(&b_app), "{listed}");
    assert_eq!(b.get(&format!("/api/v1/app/{default_app}")).await.0, 404);
    assert_eq!(server.get(&format!("/api/v1/app/{b_app}")).await.0, 404);

    // Organisations are the server admin's: B's admin may not list or make them.
    assert_eq!(b.get("/api/v1/management/environment").await.0, 403);
    assert_eq!(b.post("/api/v1/management/environment", json!({"name": "C", "type": "development"})).await.0, 403);
    let (_, me) = server.get("/api/v1/auth/whoami").await;
    let default_env = text(&me["envId"]);
    assert_eq!(me["role"], "server");
    assert_eq!(b.get(&format!("/api/v1/management/environment/{default_env}")).await.0, 404);
    assert_eq!(b.get(&format!("/api/v1/management/authentication/{default_env}/api-token")).await.0, 404);
    let (_, envs) = server.get("/api/v1/management/environment").await;
    assert_eq!(ids(&envs), vec![default_env.clone(), env_b.clone()]);

    // B's admin manages B's tokens: made once in full, censored after.
    let tokens = format!("/api/v1/management/authentication/{env_b}/api-token");
    let (status, ro) = b.post(&tokens, json!({"name": "dashboards", "scopes": ["read-only"]})).await;
    assert_eq!(status, 200, "{ro}");
    let ro_token = text(&ro["token"]);
    assert_eq!(ro["scopes"], json!(["read-only"]));
    let (_, listed) = b.get(&tokens).await;
    let data = listed["data"].as_array().unwrap();
    assert_eq!(data.len(), 2, "{listed}");
    for t in data {
        assert!(t.get("token").is_none(), "a list never shows a token: {t}");
        let censored = text(&t["censoredToken"]);
        assert!(censored.starts_with("sk_****") && censored.len() == 11, "{censored}");
    }
    assert!(ro_token.ends_with(&text(&data[1]["censoredToken"])[7..]));
    let (status, body) = b.post(&tokens, json!({"name": "x", "scopes": ["server"]})).await;
    assert_eq!(status, 422, "no organisation token makes a server admin: {body}");

    // A read-only token reads and changes nothing.
    let ro = as_token(&server, &ro_token);
    assert_eq!(ro.get(&format!("/api/v1/app/{b_app}")).await.0, 200);
    let (_, ep) = b.post(&format!("/api/v1/app/{b_app}/endpoint"), json!({"url": "http://127.0.0.1:9/x"})).await;
    let secret = format!("/api/v1/app/{b_app}/endpoint/{}/secret", text(&ep["id"]));
    assert_eq!(ro.get(&format!("/api/v1/app/{b_app}/endpoint/{}", text(&ep["id"]))).await.0, 200);
    assert_eq!(ro.get(&secret).await.0, 403, "a signing secret is more than a read");
    assert_eq!(b.get(&secret).await.0, 200);
    let (status, body) = ro.post("/api/v1/app", json!({"name": "nope"})).await;
    assert_eq!((status, body["detail"].as_str()), (403, Some("this token is read-only")));
    assert_eq!(ro.call(Method::DELETE, &format!("/api/v1/app/{b_app}"), None).await.0, 403);
    assert_eq!(ro.post(&tokens, json!({"name": "escalate"})).await.0, 403);

    // Expiring a token stops it at once on this node.
    let ro_id = text(&data[1]["id"]);
    let (status, _) = b.post(&format!("{tokens}/{ro_id}/expire"), json!({})).await;
    assert_eq!(status, 204);
    assert_eq!(ro.get(&format!("/api/v1/app/{b_app}")).await.0, 401);

    // Deleting B removes it with everything in it; the default organisation stays.
    assert_eq!(b.call(Method::DELETE, &format!("/api/v1/management/environment/{env_b}"), None).await.0, 403);
    let (status, body) = server.delete(&format!("/api/v1/management/environment/{default_env}")).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(server.delete(&format!("/api/v1/management/environment/{env_b}")).await.0, 204);
    assert_eq!(b.get("/api/v1/app").await.0, 401, "B's tokens went with it");
    assert_eq!(server.get(&format!("/api/v1/management/environment/{env_b}")).await.0, 404);
    assert_eq!(server.get(&format!("/api/v1/app/{default_app}")).await.0, 200);

    // Each change is in the audit trail, with the token that made it.
    let (_, audit) = server.get("/api/v1/audit?limit=100").await;
    let actions: Vec<String> = audit["data"].as_array().unwrap().iter().map(|e| text(&e["action"])).collect();
    assert!(actions.iter().any(|a| a == "POST /api/v1/management/environment"), "{actions:?}");
    assert!(actions.iter().any(|a| a == "DELETE /api/v1/management/environment/{env_id}"), "{actions:?}");
}

/// `hookd org` and `hookd token` work on the database; with the embedded
/// store, while no server holds it.
#[tokio::test]
async fn the_cli_makes_organisations_and_tokens_on_the_database() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let hookd = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookd"))
            .args(args)
            .arg("--data-dir")
            .arg(dir.path())
            .env_remove("HOOKD_ADMIN_TOKEN")
            .output()
            .expect("run hookd");
        assert!(out.status.success(), "hookd {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let org = hookd(&["org", "create", "Acme", "--type", "production"]).trim().to_string();
    assert!(org.starts_with("org_"), "{org}");
    assert!(hookd(&["org", "list"]).contains("Acme"));
    let admin = hookd(&["token", "create", "--org", &org, "--name", "ci"]).trim().to_string();
    let reader = hookd(&["token", "create", "--org", &org, "--read-only"]).trim().to_string();
    let server_admin = hookd(&["token", "create"]).trim().to_string();

    let server = TestServer::spawn_in(dir.clone(), ServerOptions::default()).await;
    let (status, app) = as_token(&server, &admin).post("/api/v1/app", json!({"name": "Acme app"})).await;
    assert_eq!(status, 201, "{app}");
    let (_, me) = as_token(&server, &admin).get("/api/v1/auth/whoami").await;
    assert_eq!((me["envId"].as_str(), me["role"].as_str()), (Some(org.as_str()), Some("admin")));
    assert_eq!(as_token(&server, &reader).post("/api/v1/app", json!({"name": "x"})).await.0, 403);
    let (status, envs) = as_token(&server, &server_admin).get("/api/v1/management/environment").await;
    assert_eq!(status, 200);
    assert_eq!(envs["data"].as_array().unwrap().len(), 2);
    drop(server);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let listed = hookd(&["token", "list", "--org", &org]);
    assert!(!listed.contains(&admin) && listed.contains(&format!("sk_****{}", &admin[admin.len() - 4..])), "{listed}");
    let id = listed.lines().find(|l| l.ends_with(" ci")).and_then(|l| l.split_whitespace().next()).unwrap().to_string();
    hookd(&["token", "revoke", &id]);
    let server = TestServer::spawn_in(dir.clone(), ServerOptions::default()).await;
    assert_eq!(as_token(&server, &admin).get("/api/v1/app").await.0, 401, "a revoked token is refused");
    assert_eq!(as_token(&server, &reader).get("/api/v1/app").await.0, 200);
    // The commands' changes are in the organisation's audit trail, made by `cli`.
    let (_, audit) = as_token(&server, &reader).get("/api/v1/audit").await;
    let entries: Vec<(String, String)> =
        audit["data"].as_array().unwrap().iter().map(|e| (text(&e["actor"]), text(&e["action"]))).collect();
    for action in ["hookd org create", "hookd token create", "hookd token revoke"] {
        assert!(entries.contains(&("cli".to_string(), action.to_string())), "{action}: {entries:?}");
    }
}

#[tokio::test]
async fn portal_token_capabilities_are_enforced() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let app = server.create_app("Portal").await;
    server.post("/api/v1/event-type", json!({"name": "a.b", "description": "example"})).await;
    let ep = text(&server.create_endpoint(&app, json!({"url": sink.url("/p")})).await["id"]);
    let portal = |body: Value| {
        let server = &server;
        let app = app.clone();
        async move {
            let (status, out) = server.post(&format!("/api/v1/auth/app-portal-access/{app}"), body).await;
            assert_eq!(status, 200, "{out}");
            text(&out["token"])
        }
    };
    let base = format!("/api/v1/app/{app}/endpoint/{ep}");
    let new_ep = json!({"url": sink.url("/new")});

    let view = as_token(&server, &portal(json!({"capabilities": ["ViewBase"]})).await);
    assert_eq!(view.get(&base).await.0, 200);
    let (status, body) = view.get(&format!("{base}/secret")).await;
    assert_eq!(status, 403, "{body}");
    assert!(text(&body["detail"]).contains("ViewEndpointSecret"), "{body}");
    assert_eq!(view.post(&format!("/api/v1/app/{app}/endpoint"), new_ep.clone()).await.0, 403);
    assert_eq!(view.post(&format!("{base}/send-example"), json!({"eventType": "a.b"})).await.0, 403);
    assert_eq!(view.post(&format!("/api/v1/app/{app}/msg"), json!({"eventType": "a.b", "payload": {}})).await.0, 403);
    let (_, me) = view.get("/api/v1/auth/whoami").await;
    assert_eq!(me["capabilities"], json!(["ViewBase"]), "{me}");

    let secrets = as_token(&server, &portal(json!({"capabilities": ["ViewBase", "ViewEndpointSecret"]})).await);
    assert_eq!(secrets.get(&format!("{base}/secret")).await.0, 200);
    assert_eq!(secrets.post(&format!("{base}/secret/rotate"), json!({})).await.0, 403);
    let rotate = as_token(&server, &portal(json!({"capabilities": ["ViewBase", "ManageEndpointSecret"]})).await);
    assert!(rotate.post(&format!("{base}/secret/rotate"), json!({})).await.0 < 300);

    let attempts = as_token(&server, &portal(json!({"capabilities": ["ViewBase", "CreateAttempts"]})).await);
    let (status, body) = attempts.post(&format!("{base}/send-example"), json!({"eventType": "a.b"})).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(attempts.call(Method::PATCH, &base, Some(json!({"disabled": true}))).await.0, 403);

    let manage = as_token(&server, &portal(json!({"capabilities": ["ViewBase", "ManageEndpoint"]})).await);
    assert_eq!(manage.post(&format!("/api/v1/app/{app}/endpoint"), new_ep.clone()).await.0, 201);
    assert_eq!(manage.get(&format!("{base}/secret")).await.0, 200);

    let read_only = as_token(&server, &portal(json!({"readOnly": true})).await);
    assert_eq!(read_only.get(&base).await.0, 200);
    assert_eq!(read_only.call(Method::DELETE, &base, None).await.0, 403);
    let everything = as_token(&server, &portal(json!({})).await);
    assert_eq!(everything.get(&format!("{base}/secret")).await.0, 200, "no capabilities given: all of them");

    for (body, field) in [
        (json!({"capabilities": ["ViewEndpointSecret"]}), "capabilities"),
        (json!({"capabilities": ["ViewBase", "Fly"]}), "capabilities"),
        (json!({"sessionId": "has space"}), "sessionId"),
    ] {
        let (status, out) = server.post(&format!("/api/v1/auth/app-portal-access/{app}"), body.clone()).await;
        assert_eq!(status, 422, "{body}: {out}");
        assert_eq!(out["detail"][0]["loc"][1], field, "{out}");
    }

    // `expire-all` with session ids ends those sessions only.
    let s1 = as_token(&server, &portal(json!({"sessionId": "user_1"})).await);
    let s2 = as_token(&server, &portal(json!({"sessionId": "user_2"})).await);
    let (_, me) = s1.get("/api/v1/auth/whoami").await;
    assert_eq!(me["sessionId"], "user_1");
    let (status, _) =
        server.post(&format!("/api/v1/auth/app/{app}/expire-all"), json!({"sessionIds": ["user_1"]})).await;
    assert_eq!(status, 204);
    assert_eq!(s1.get(&base).await.0, 401);
    assert_eq!(s2.get(&base).await.0, 200);
}

/// The organisation half of the isolation test: every route of the router
/// (read from its source, so a new route is walked too), called with
/// organisation A's admin token on organisation B's objects, answers 404 (or
/// acts on A's own objects, for the upserts keyed by a name), and B is left as
/// it was.
#[tokio::test]
async fn every_route_is_isolated_between_organisations() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let (_env_a, token_a) = organisation(&server, "A").await;
    let (env_b, token_b) = organisation(&server, "B").await;
    let (a, b) = (as_token(&server, &token_a), as_token(&server, &token_b));

    // B's objects: one of each kind.
    let (_, et) = b.post("/api/v1/event-type", json!({"name": "b.only", "description": "B's"})).await;
    assert_eq!(et["name"], "b.only");
    let (_, app) = b.post("/api/v1/app", json!({"name": "B"})).await;
    let b_app = text(&app["id"]);
    let (_, ep) = b.post(&format!("/api/v1/app/{b_app}/endpoint"), json!({"url": sink.url("/b")})).await;
    let b_ep = text(&ep["id"]);
    let (_, msg) = b.post(&format!("/api/v1/app/{b_app}/msg"), json!({"eventType": "b.only", "payload": {}})).await;
    let b_msg = text(&msg["id"]);
    let (status, task) = b
        .post(
            &format!("/api/v1/app/{b_app}/endpoint/{b_ep}/recover"),
            json!({"since": crate::support::seconds_ago(60)}),
        )
        .await;
    assert_eq!(status, 202, "{task}");
    let b_task = text(&task["id"]);
    let (_, ops) = b.post("/api/v1/operational-webhook/endpoint", json!({"url": sink.url("/ops")})).await;
    let b_ops = text(&ops["id"]);
    let tracking = json!({"objectIdPointer": "/id", "statusPointer": "/status", "lifecycle": ["sent", "delivered"]});
    let (status, src) = b
        .post(
            "/ingest/api/v1/source",
            json!({"name": "B in", "type": "generic-webhook", "uid": "b-in", "statusTracking": tracking}),
        )
        .await;
    assert_eq!(status, 201, "{src}");
    let b_src = text(&src["id"]);
    let (_, iep) = b.post(&format!("/ingest/api/v1/source/{b_src}/endpoint"), json!({"url": sink.url("/bin")})).await;
    let b_iep = text(&iep["id"]);
    let received = reqwest::Client::new()
        .post(text(&src["ingestUrl"]))
        .body(r#"{"id": "sms_b", "status": "sent"}"#)
        .send()
        .await
        .unwrap();
    let b_req = received.headers()["x-hookd-request-id"].to_str().unwrap().to_string();
    let (status, sink_b) = b.post(&format!("/api/v1/app/{b_app}/stream/sink"), json!({"type": "poller"})).await;
    assert_eq!(status, 201, "{sink_b}");
    let b_sink = text(&sink_b["id"]);
    let (_, toks) = b.get(&format!("/api/v1/management/authentication/{env_b}/api-token")).await;
    let b_key = text(&toks["data"][0]["id"]);
    let (status, tmpl) =
        b.post("/api/v1/template", json!({"name": "B's", "format": "text", "source": "{{ msg_id }}"})).await;
    assert_eq!(status, 201, "{tmpl}");
    let b_tmpl = text(&tmpl["id"]);
    let (status, conn) = b.post("/api/v1/connector", json!({"preset": "zapier", "name": "B's"})).await;
    assert_eq!(status, 201, "{conn}");
    let b_conn = text(&conn["id"]);
    let (status, sla) = b.post("/api/v1/sla", json!({"name": "B's", "appId": b_app, "targetSuccessRatio": 0.99})).await;
    assert_eq!(status, 201, "{sla}");
    let b_sla = text(&sla["id"]);
    let (status, _) = b.post("/api/v1/auth/dashboard/mcp-token", json!({})).await;
    assert_eq!(status, 200);
    let (_, mcp_tokens) = b.get("/api/v1/auth/dashboard/mcp-token").await;
    let b_mcp_token = text(&mcp_tokens["data"][0]["id"]);
    // Attempts are listed through B's token; the server admin's default organisation has none.
    let b_attempt = {
        let found = server
            .eventually(std::time::Duration::from_secs(10), || async {
                let (_, list) = b.get(&format!("/api/v1/app/{b_app}/attempt/msg/{b_msg}")).await;
                list["data"].as_array().and_then(|d| d.first()).map(|x| text(&x["id"]))
            })
            .await;
        found.expect("B's message was attempted")
    };
    let _ = wait_for_attempts; // (the server admin cannot see B's attempts: that is the point)

    // Creating its own objects under a name B also uses is no leak.
    let upserts = [
        "PUT /api/v1/app/{app_id}",
        "PUT /api/v1/operational-webhook/endpoint/{endpoint_id}",
        "PUT /api/v1/event-type/{name}",
        "PUT /api/v1/event-type/{name}/retry-schedule",
        "PUT /api/v1/connector/{connector_id}",
    ];
    let mut walked = 0;
    let mut deferred = Vec::new();
    for (template, methods) in crate::mgmt::router_routes() {
        if !template.contains('{') {
            continue; // lists and creates: checked below
        }
        if template.starts_with("/api/v1/connector-preset") {
            continue; // presets belong to no organisation
        }
        let endpoint_id = if template.starts_with("/api/v1/operational-webhook") {
            &b_ops
        } else if template.starts_with("/ingest/") {
            &b_iep
        } else {
            &b_ep
        };
        let path = template
            .replace("{app_id}", &b_app)
            .replace("{endpoint_id}", endpoint_id)
            .replace("{msg_id}", &b_msg)
            .replace("{attempt_id}", &b_attempt)
            .replace("{name}", "b.only")
            .replace("{task_id}", &b_task)
            .replace("{env_id}", &env_b)
            .replace("{key_id}", &b_key)
            .replace("{source_id}", &b_src)
            .replace("{request_id}", &b_req)
            .replace("{object_id}", "sms_b")
            .replace("{sink_id}", &b_sink)
            .replace("{consumer_id}", "b-consumer")
            .replace("{template_id}", &b_tmpl)
            .replace("{connector_id}", &b_conn)
            .replace("{sla_id}", &b_sla)
            .replace("{token_id}", &b_mcp_token)
            .replace("{version}", "1");
        assert!(!path.contains('{'), "an unknown path parameter in {template}");
        for method in methods {
            let body = json!({"url": "http://127.0.0.1:9/z", "eventType": "a.b", "payload": {}, "name": "x",
                "transformation": "function handler(webhook) { return webhook; }",
                "description": "A's", "headers": {"x-a": "1"}, "since": crate::support::seconds_ago(60), "retrySchedule": [5]});
            walked += 1;
            if upserts.contains(&format!("{method} {template}").as_str()) {
                deferred.push((method, template.clone(), path.clone(), body));
                continue;
            }
            let (status, out) = a.call(method.clone(), &path, Some(body)).await;
            assert_eq!(status, 404, "{method} {template} with another organisation's token: {out}");
        }
    }
    eprintln!("walked {walked} route methods");
    assert!(walked >= 70, "only {walked} routes were walked");
    // A's lists hold nothing of B's.
    for list in [
        "/api/v1/app",
        "/api/v1/background-task",
        "/api/v1/operational-webhook/endpoint",
        "/api/v1/audit",
        "/ingest/api/v1/source",
        "/api/v1/template",
        "/api/v1/connector",
        "/api/v1/sla",
    ] {
        let (status, out) = a.get(list).await;
        assert_eq!(status, 200, "{list}: {out}");
        let seen = out.to_string();
        for id in [&b_app, &b_task, &b_ops, &b_ep, &b_msg, &b_src, &b_iep, &b_req, &b_sink, &b_tmpl, &b_conn, &b_sla] {
            assert!(!seen.contains(id.as_str()), "{list} shows B's {id}");
        }
    }
    let (_, types) = a.get("/api/v1/event-type").await;
    assert!(types["data"].as_array().unwrap().iter().all(|t| t["description"] != "B's"), "{types}");

    // The upserts, last: they make A's own objects under B's names or ids.
    for (method, template, path, body) in deferred {
        let (status, out) = a.call(method.clone(), &path, Some(body)).await;
        assert!(status < 300, "{method} {template}: {status} {out}");
        assert!(!out.to_string().contains(&b_app), "{method} {template} answered with B's object: {out}");
    }

    // B is as it was.
    let (_, et) = b.get("/api/v1/event-type/b.only").await;
    assert_eq!(et["description"], "B's");
    assert_eq!(b.get(&format!("/api/v1/app/{b_app}/endpoint/{b_ep}")).await.0, 200);
    assert_eq!(b.get(&format!("/api/v1/operational-webhook/endpoint/{b_ops}")).await.0, 200);
    let (_, msgs) = b.get(&format!("/api/v1/app/{b_app}/msg")).await;
    assert_eq!(msgs["data"].as_array().unwrap().len(), 1);
    let (_, app) = b.get(&format!("/api/v1/app/{b_app}")).await;
    assert_eq!(app["name"], "B");
    assert_eq!(b.get("/api/v1/app").await.0, 200, "B's token still works");
    let (_, src) = b.get(&format!("/ingest/api/v1/source/{b_src}")).await;
    assert_eq!(src["name"], "B in");
    assert_eq!(b.get(&format!("/ingest/api/v1/source/{b_src}/endpoint/{b_iep}")).await.0, 200);
    let (_, log) = b.get(&format!("/ingest/api/v1/source/{b_src}/request")).await;
    assert_eq!(log["data"].as_array().unwrap().len(), 1, "replays by A did not happen: {log}");
}
