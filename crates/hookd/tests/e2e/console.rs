//! The web console, driven over HTTP as a browser without JavaScript drives
//! it: signing in, forms with their CSRF tokens, redirects, and what each page
//! shows. (Pages are plain HTML: every flow here is a link or a form.)

use std::time::Duration;

use serde_json::json;

use crate::support::{Sink, TestServer};

/// A browser: one cookie, no automatic redirects.
struct Browser {
    base: String,
    client: reqwest::Client,
    cookie: Option<String>,
}

struct Page {
    status: u16,
    location: String,
    html: String,
}

impl Page {
    /// The CSRF token of the page's forms.
    fn csrf(&self) -> String {
        let at = self.html.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + 19;
        self.html[at..at + 32].to_string()
    }
}

impl Browser {
    fn new(server: &TestServer) -> Browser {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Browser { base: server.base.clone(), client, cookie: None }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let (client, built) = req.build_split();
        let req = built.unwrap();
        let console = req.url().path().starts_with("/console");
        let req = reqwest::RequestBuilder::from_parts(client, req);
        let req = match &self.cookie {
            Some(c) => req.header("cookie", c.clone()),
            None => req,
        };
        let resp = req.send().await.unwrap();
        if let Some(set) = resp.headers().get("set-cookie").and_then(|v| v.to_str().ok()) {
            let pair = set.split(';').next().unwrap().to_string();
            self.cookie = if pair.ends_with('=') { None } else { Some(pair) };
        }
        let status = resp.status().as_u16();
        let location = resp.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let csp = resp.headers().get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or("");
        assert!(csp.contains("default-src 'none'"), "CSP: {csp}");
        assert!(!console || csp.contains("frame-ancestors 'none'"), "the console is never framed: {csp}");
        let html = resp.text().await.unwrap();
        assert!(!html.contains("<script"), "console pages need no JavaScript");
        Page { status, location, html }
    }

    async fn get(&mut self, path: &str) -> Page {
        let req = self.client.get(format!("{}{path}", self.base));
        self.send(req).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let body: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let req = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        self.send(req).await
    }
}

#[tokio::test]
async fn an_operator_manages_applications_endpoints_and_messages_in_the_console() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let (status, _) =
        server.post("/api/v1/event-type", json!({"name": "invoice.paid", "description": "An invoice was paid"})).await;
    assert_eq!(status, 201);
    let mut b = Browser::new(&server);

    // Signed out: every page leads to the sign-in form.
    let page = b.get("/console/apps").await;
    assert_eq!((page.status, page.location.as_str()), (303, "/console/login"));
    let page = b.post("/console/login", &[("token", "sk_not_a_real_token")]).await;
    assert_eq!(page.status, 401);
    assert!(page.html.contains("not valid"), "{}", page.html);
    let page = b.post("/console/login", &[("token", &server.token)]).await;
    assert_eq!((page.status, page.location.as_str()), (303, "/console/apps"));
    assert!(b.cookie.is_some());

    // An application, through the form (a form without its CSRF token is refused).
    let apps = b.get("/console/apps").await;
    assert_eq!(apps.status, 200);
    let refused = b.post("/console/apps", &[("name", "Billing")]).await;
    assert_eq!(refused.status, 403);
    let made = b.post("/console/apps", &[("csrf", &apps.csrf()), ("name", "Billing"), ("uid", "billing")]).await;
    assert_eq!(made.status, 303, "{}", made.html);
    let app_page = made.location.clone();
    assert!(app_page.starts_with("/console/apps/app_"), "{app_page}");
    let app = b.get(&app_page).await;
    assert!(app.html.contains("Billing") && app.html.contains("invoice.paid"), "the event-type picker lists it");

    // An endpoint for one event type, its secret revealed on request.
    let made = b
        .post(
            &format!("{app_page}/endpoints"),
            &[("csrf", &app.csrf()), ("url", &sink.url("/billing")), ("filterTypes", "invoice.paid")],
        )
        .await;
    assert_eq!(made.status, 303, "{}", made.html);
    let ep_page = made.location.clone();
    let ep = b.get(&ep_page).await;
    assert!(ep.html.contains(&sink.url("/billing")) && !ep.html.contains("whsec_"), "the secret is hidden");
    let revealed = b.get(&format!("{ep_page}?reveal=1")).await;
    let at = revealed.html.find("whsec_").expect("revealed");
    let secret = revealed.html[at..at + 38].to_string();

    // A test event reaches the sink, and its attempt shows on the endpoint's page.
    let sent = b.post(&format!("{ep_page}/test"), &[("csrf", &ep.csrf()), ("eventType", "invoice.paid")]).await;
    assert_eq!(sent.status, 303, "{}", sent.html);
    assert_eq!(sink.wait_for(1, Duration::from_secs(10)).await.len(), 1);
    let shown = server
        .eventually(Duration::from_secs(10), || async {
            let html = Browser { cookie: b.cookie.clone(), ..Browser::new(&server) }.get(&ep_page).await.html;
            html.contains("succeeded").then_some(html)
        })
        .await;
    assert!(shown.is_some(), "the attempt is listed");

    // Rotating gives a new secret; disabling shows.
    let rotated = b.post(&format!("{ep_page}/rotate"), &[("csrf", &ep.csrf())]).await;
    assert_eq!(rotated.status, 303);
    let after = b.get(&format!("{ep_page}?reveal=1")).await;
    assert!(after.html.contains("whsec_") && !after.html.contains(&secret), "a new secret");
    let off = b.post(&format!("{ep_page}/toggle"), &[("csrf", &ep.csrf()), ("disabled", "true")]).await;
    assert_eq!(off.status, 303);
    assert!(b.get(&off.location).await.html.contains("badge bad\">disabled"));
    let on = b.post(&format!("{ep_page}/toggle"), &[("csrf", &ep.csrf()), ("disabled", "false")]).await;
    assert!(b.get(&on.location).await.html.contains("badge good\">enabled"));

    // The message: found by event type, its payload and attempts shown, resent.
    let list = b.get(&format!("{app_page}/msgs?event_type=invoice.paid")).await;
    let at = list.html.find("/msgs/msg_").expect("the message is listed") + 6;
    let msg_page = format!("{app_page}/msgs/{}", &list.html[at..at + 31]);
    let none = b.get(&format!("{app_page}/msgs?event_type=other.type")).await;
    assert!(none.html.contains("No messages."));
    let msg = b.get(&msg_page).await;
    assert!(msg.html.contains("invoice.paid") && msg.html.contains("succeeded"), "{}", msg.html);
    let ep_id = ep_page.rsplit('/').next().unwrap();
    let resent = b.post(&format!("{msg_page}/resend/{ep_id}"), &[("csrf", &msg.csrf())]).await;
    assert_eq!(resent.status, 303, "{}", resent.html);
    assert_eq!(sink.wait_for(2, Duration::from_secs(10)).await.len(), 2, "sent again");

    // Signing out ends the session.
    let out = b.post("/console/logout", &[("csrf", &msg.csrf())]).await;
    assert_eq!((out.status, out.location.as_str()), (303, "/console/login"));
    assert!(b.cookie.is_none());
    assert_eq!(b.get("/console/apps").await.status, 303);
}

#[tokio::test]
async fn the_console_shows_an_organisation_only_its_own() {
    let server = TestServer::spawn().await;
    let other_app = server.create_app("Default's secret app").await;
    let (status, env) = server.post("/api/v1/management/environment", json!({"name": "B", "type": "production"})).await;
    assert_eq!(status, 201, "{env}");
    let env_id = env["id"].as_str().unwrap();
    let (_, tok) =
        server.post(&format!("/api/v1/management/authentication/{env_id}/api-token"), json!({"name": "b-admin"})).await;
    let mut b = Browser::new(&server);
    let page = b.post("/console/login", &[("token", tok["token"].as_str().unwrap())]).await;
    assert_eq!(page.status, 303);
    assert!(!b.get("/console/apps").await.html.contains("secret app"));
    let foreign = b.get(&format!("/console/apps/{other_app}")).await;
    assert_eq!(foreign.status, 404, "{}", foreign.html);
    assert_eq!(b.get(&format!("/console/apps/{other_app}/msgs")).await.status, 404);
    // A revoked token ends its console session.
    let (_, toks) = server.get(&format!("/api/v1/management/authentication/{env_id}/api-token")).await;
    let key = toks["data"][0]["id"].as_str().unwrap();
    let (status, _) =
        server.post(&format!("/api/v1/management/authentication/{env_id}/api-token/{key}/expire"), json!({})).await;
    assert!(status < 300);
    let gone = server
        .eventually(Duration::from_secs(15), || async {
            let p = Browser { cookie: b.cookie.clone(), ..Browser::new(&server) }.get("/console/apps").await;
            (p.status == 303).then_some(p.location)
        })
        .await;
    assert_eq!(gone.as_deref(), Some("/console/login?expired=1"));
}

#[tokio::test]
async fn the_console_shows_event_types_audit_inbound_stats_and_runs_recovery() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let schema = json!({"1": {"type": "object", "examples": [{"invoice": "in_1"}]}});
    let (status, _) = server
        .post("/api/v1/event-type", json!({"name": "invoice.paid", "description": "Paid", "schemas": schema}))
        .await;
    assert_eq!(status, 201);
    let app = server.create_app("Billing").await;
    let ep = server.create_endpoint(&app, json!({"url": sink.url("/x")})).await;
    let ep_id = ep["id"].as_str().unwrap();
    server.send_message(&app, "invoice.paid", json!({"invoice": "in_1"})).await;
    sink.wait_for(1, Duration::from_secs(10)).await;
    let (status, _) = server
        .post("/ingest/api/v1/source", json!({"name": "Stripe in", "type": "stripe", "config": {"secret": "whsec_x"}}))
        .await;
    assert_eq!(status, 201);
    let mut b = Browser::new(&server);
    b.post("/console/login", &[("token", &server.token)]).await;

    let types = b.get("/console/event-types").await;
    assert!(types.html.contains("invoice.paid") && types.html.contains("in_1"), "schema and example shown");
    let audit = b.get("/console/audit").await;
    assert!(audit.html.contains("/api/v1/event-type"), "changes are in the audit log");
    let sources = b.get("/console/sources").await;
    let at = sources.html.find("/console/sources/src_").expect("the source is listed");
    let source_page = &sources.html[at..at + sources.html[at..].find('"').unwrap()];
    let source = b.get(source_page).await;
    assert!(source.html.contains("Stripe in") && source.html.contains("No requests."), "{}", source.html);

    // The application's last day from the statistics, and its SLAs.
    let (status, sla) =
        server.post("/api/v1/sla", json!({"name": "Billing 99.9", "appId": app, "targetSuccessRatio": 0.999})).await;
    assert_eq!(status, 201, "{sla}");
    let app_page = b.get(&format!("/console/apps/{app}")).await;
    assert!(app_page.html.contains("Delivery, last 24 hours"), "{}", app_page.html);
    assert!(app_page.html.contains("<td>1</td><td>100.00%</td>"), "one attempt, all succeeded: {}", app_page.html);
    assert!(
        app_page.html.contains("Billing 99.9") && app_page.html.contains("99.90% over 3600 s"),
        "{}",
        app_page.html
    );

    // The endpoint's deliveries, counted; a recovery runs as a task with its own page.
    let ep_page = format!("/console/apps/{app}/endpoints/{ep_id}");
    let page = b.get(&ep_page).await;
    assert!(page.html.contains("succeeded: 1."), "{}", page.html);
    // Recent attempts over time, with their latency percentiles.
    assert!(
        page.html.contains("The last 1 attempts") && page.html.contains("1 succeeded (green), 0 failed"),
        "{}",
        page.html
    );
    assert!(page.html.contains("<th scope=\"col\">p99</th>"), "{}", page.html);
    assert!(page.html.contains("badge good\">healthy"), "{}", page.html);
    let health = b.get(&format!("{ep_page}/health")).await;
    assert!(health.html.contains("No changes reported yet.") && health.html.contains("Last check"), "{}", health.html);
    // As a datetime-local field sends it: minutes, no zone (UTC).
    let since = hookd_core::timefmt::format_millis(hookd_core::timefmt::now_millis() - 3_600_000)[..16].to_string();
    let started = b.post(&format!("{ep_page}/recover"), &[("csrf", &page.csrf()), ("since", &since)]).await;
    assert_eq!(started.status, 303, "{}", started.html);
    assert!(started.location.starts_with("/console/tasks/"), "{}", started.location);
    let finished = server
        .eventually(Duration::from_secs(15), || async {
            let p = Browser { cookie: b.cookie.clone(), ..Browser::new(&server) }.get(&started.location).await;
            p.html.contains("badge good\">finished").then_some(p.html)
        })
        .await;
    assert!(finished.is_some(), "the task finishes and says so");
}

#[tokio::test]
async fn applications_and_endpoints_are_edited_in_the_console() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let (status, app) = server.post("/api/v1/app", json!({"name": "Shop", "uid": "shop"})).await;
    assert_eq!(status, 201);
    let app_id = app["id"].as_str().unwrap();
    // Subscribed to an event type since archived: the picker does not list it.
    let (status, _) = server.post("/api/v1/event-type", json!({"name": "order.old", "description": "old"})).await;
    assert_eq!(status, 201);
    let ep = server
        .create_endpoint(app_id, json!({"url": sink.url("/old"), "rateLimit": 5, "filterTypes": ["order.old"]}))
        .await;
    let (status, _) = server.delete("/api/v1/event-type/order.old").await;
    assert!(status < 300);
    let ep_page = format!("/console/apps/{app_id}/endpoints/{}", ep["id"].as_str().unwrap());
    let mut b = Browser::new(&server);
    b.post("/console/login", &[("token", &server.token)]).await;

    // Found by its uid; renamed.
    let found = b.get("/console/apps/find?q=shop").await;
    assert_eq!(found.location, "/console/apps/shop");
    let page = b.get(&found.location).await;
    assert!(page.html.contains("Shop"));
    let renamed = b.post(&format!("/console/apps/{app_id}/edit"), &[("csrf", &page.csrf()), ("name", "Shop EU")]).await;
    assert_eq!(renamed.status, 303);
    let (_, app) = server.get(&format!("/api/v1/app/{app_id}")).await;
    assert_eq!(app["name"], "Shop EU");

    // The endpoint's URL, description and rate limit, then its headers.
    let page = b.get(&ep_page).await;
    assert!(page.html.contains("value=\"5\""), "the form shows the current rate limit");
    assert!(
        page.html.contains("name=\"filterTypes\" value=\"order.old\" checked"),
        "a filter the picker does not list stays ticked, so saving keeps it"
    );
    let form = [
        ("csrf", page.csrf()),
        ("url", sink.url("/new")),
        ("description", "orders".into()),
        ("channels", "eu, vip".into()),
        ("rateLimit", String::new()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let saved = b.post(&format!("{ep_page}/edit"), &form).await;
    assert_eq!(saved.status, 303, "{}", saved.html);
    let saved = b
        .post(&format!("{ep_page}/headers"), &[("csrf", &page.csrf()), ("headers", "X-Team: orders\nX-Env: eu")])
        .await;
    assert_eq!(saved.status, 303, "{}", saved.html);
    let (_, e) = server.get(&format!("/api/v1/app/{app_id}/endpoint/{}", ep["id"].as_str().unwrap())).await;
    assert_eq!((e["url"].as_str(), e["description"].as_str()), (Some(sink.url("/new").as_str()), Some("orders")));
    assert_eq!(e["channels"], json!(["eu", "vip"]));
    assert!(e["rateLimit"].is_null(), "an empty rate limit removes it: {e}");
    let (_, h) = server.get(&format!("/api/v1/app/{app_id}/endpoint/{}/headers", ep["id"].as_str().unwrap())).await;
    assert_eq!(h["headers"], json!({"X-Team": "orders", "X-Env": "eu"}));
    // A bad URL comes back as the API's readable error.
    let bad = b.post(&format!("{ep_page}/edit"), &[("csrf", &page.csrf()), ("url", "not a url")]).await;
    assert_eq!(bad.status, 422);
    assert!(bad.html.contains("url"), "{}", bad.html);
}

/// The application portal: a link from `app-portal-access` opens, once, a
/// session for that one application, embeddable where the operator allows.
#[tokio::test]
async fn a_portal_link_opens_one_application_once() {
    let opts = crate::support::ServerOptions {
        extra_args: vec!["--portal-frame-ancestors".into(), "https://app.example.com".into()],
        ..Default::default()
    };
    let server = TestServer::spawn_with(opts).await;
    let sink = Sink::start().await;
    let mine = server.create_app("Customer A").await;
    let theirs = server.create_app("Customer B").await;
    let their_ep = server.create_endpoint(&theirs, json!({"url": sink.url("/b")})).await;
    let caps = json!({"capabilities": ["ViewBase", "ManageEndpoint", "ViewEndpointSecret", "CreateAttempts"]});
    let (status, access) = server.post(&format!("/api/v1/auth/app-portal-access/{mine}"), caps).await;
    assert_eq!(status, 200, "{access}");
    let link = access["url"].as_str().unwrap();
    let path = &link[link.find("/portal/").unwrap()..];
    assert!(path.starts_with("/portal/login?token=ott_"), "{link}");

    let mut b = Browser::new(&server);
    let opened = b.send(b.client.get(format!("{}{path}", server.base))).await;
    assert_eq!((opened.status, opened.location.clone()), (303, format!("/portal/apps/{mine}")));
    assert!(b.cookie.as_deref().is_some_and(|c| c.starts_with("hookd_portal=")));
    // The link opens once.
    let again = Browser::new(&server).get(path).await;
    assert_eq!(again.status, 401);
    assert!(again.html.contains("used or has expired"));

    // The application's page, framable by the configured site only.
    let resp = b.client.get(format!("{}/portal/apps/{mine}", server.base)).header("cookie", b.cookie.clone().unwrap());
    let resp = resp.send().await.unwrap();
    let csp = resp.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("frame-ancestors https://app.example.com"), "{csp}");
    assert!(resp.headers().get("x-frame-options").is_none());
    let page = b.get(&format!("/portal/apps/{mine}")).await;
    assert!(page.html.contains("Customer A") && !page.html.contains("Rename"), "{}", page.html);
    assert_eq!(b.get("/portal/apps").await.location, format!("/portal/apps/{mine}"));

    // An endpoint added there.
    let made =
        b.post(&format!("/portal/apps/{mine}/endpoints"), &[("csrf", &page.csrf()), ("url", &sink.url("/a"))]).await;
    assert_eq!(made.status, 303, "{}", made.html);
    assert!(made.location.starts_with(&format!("/portal/apps/{mine}/endpoints/ep_")));
    let (_, eps) = server.get(&format!("/api/v1/app/{mine}/endpoint")).await;
    assert_eq!(eps["data"][0]["url"], sink.url("/a"));

    // Nothing of another application, by any URL.
    let their_ep = their_ep["id"].as_str().unwrap();
    for url in [
        format!("/portal/apps/{theirs}"),
        format!("/portal/apps/{theirs}/msgs"),
        format!("/portal/apps/{theirs}/endpoints/{their_ep}"),
        format!("/portal/apps/{mine}/endpoints/{their_ep}"),
    ] {
        let p = b.get(&url).await;
        assert_eq!(p.status, 404, "{url}: {}", p.html);
        assert!(!p.html.contains("Customer B") && !p.html.contains("/b\""), "{url}");
    }
    let tampered = b
        .post(&format!("/portal/apps/{theirs}/endpoints"), &[("csrf", &page.csrf()), ("url", "https://x.example")])
        .await;
    assert_eq!(tampered.status, 404);
    // The portal session is not a console session.
    let cookie = b.cookie.clone().unwrap().replace("hookd_portal=", "hookd_console=");
    let console = Browser { cookie: Some(cookie), ..Browser::new(&server) }.get("/console/apps").await;
    assert_eq!(console.status, 303);
    // Signing out ends it.
    let out = b.post("/portal/logout", &[("csrf", &page.csrf())]).await;
    assert_eq!(out.status, 401);
    assert_eq!(b.get(&format!("/portal/apps/{mine}")).await.status, 401);
    // A made-up one-time token is refused by the API too.
    let (status, _) = server.post("/api/v1/auth/one-time-token", json!({"oneTimeToken": "ott_nope"})).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn the_testing_console_checks_a_payload_sends_it_and_follows_the_attempt() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let schema = json!({
        "type": "object",
        "required": ["amount"],
        "properties": {"amount": {"type": "integer"}},
        "examples": [{"amount": 5}]
    });
    let (status, _) = server
        .post("/api/v1/event-type", json!({"name": "invoice.paid", "description": "Paid", "schemas": {"1": schema}}))
        .await;
    assert_eq!(status, 201);
    let app = server.create_app("Billing").await;
    let headers = json!({"x-tenant": "t1", "authorization": "Bearer s3cr3t-value"});
    let ep = server.create_endpoint(&app, json!({"url": sink.url("/hook"), "headers": headers})).await;
    let ep_page = format!("/console/apps/{app}/endpoints/{}", ep["id"].as_str().unwrap());
    let mut b = Browser::new(&server);
    assert_eq!(b.post("/console/login", &[("token", &server.token)]).await.status, 303);

    // The form starts from the event type's example.
    let form = b.get(&format!("{ep_page}/testing?eventType=invoice.paid")).await;
    assert_eq!(form.status, 200, "{}", form.html);
    assert!(form.html.contains("&quot;amount&quot;: 5"), "{}", form.html);
    let testing = format!("{ep_page}/testing");
    let csrf = form.csrf();
    // The inspector: checked against the schema, where it fails said; not sent.
    let checked = test_form(&mut b, &testing, &csrf, "check", r#"{"amount": "five"}"#).await;
    assert_eq!(checked.status, 422);
    assert!(
        checked.html.contains("Does not match") && checked.html.contains("<code>/amount</code>"),
        "{}",
        checked.html
    );
    let not_json = test_form(&mut b, &testing, &csrf, "check", r#"{"amount": "#).await;
    assert!(not_json.status == 422 && not_json.html.contains("Not JSON"), "{}", not_json.html);
    let refused = test_form(&mut b, &testing, &csrf, "send", r#"{"amount": "five"}"#).await;
    assert!(refused.status == 422 && refused.html.contains("Not sent"), "{}", refused.html);
    let ok = test_form(&mut b, &testing, &csrf, "check", r#"{"amount": 7}"#).await;
    assert!(ok.status == 200 && ok.html.contains("Matches the event type"), "{}", ok.html);
    assert_eq!(sink.count(), 0, "checking sends nothing");

    // Sent: the message page reloads itself until the attempt is in (the
    // receiver takes its time, so the first page waits).
    sink.set_delay(Some(Duration::from_millis(400)));
    let sent = test_form(&mut b, &testing, &csrf, "send", r#"{"amount": 7}"#).await;
    assert_eq!(sent.status, 303, "{}", sent.html);
    assert!(sent.location.contains("/msgs/msg_") && sent.location.ends_with("?watch=60"), "{}", sent.location);
    let mut url = sent.location.clone();
    let mut arrived = None;
    for _ in 0..50 {
        let page = b.get(&url).await;
        if page.html.contains("The attempt is in") {
            arrived = Some(page);
            break;
        }
        let reload = "http-equiv=\"refresh\" content=\"1; url=";
        let at = page.html.find(reload).expect("waiting pages reload") + reload.len();
        url = page.html[at..].split('"').next().unwrap().to_string();
        assert!(url.contains("watch=") && !url.ends_with("watch=60"), "counts down: {url}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let arrived = arrived.expect("the attempt arrives");
    assert_ne!(url, sent.location, "the page reloaded itself at least once");
    assert!(!arrived.html.contains("http-equiv=\"refresh\""), "no reload once it is in");
    assert_eq!(sink.received()[0].json(), json!({"amount": 7}));

    // The attempt: the request's headers as sent, credentials named only.
    let at = arrived.html.find("/attempts/atmpt_").expect("the attempt is linked") + 10;
    let attempt_page = format!("{}/attempts/{}", url.split('?').next().unwrap(), &arrived.html[at..at + 33]);
    let attempt = b.get(&attempt_page).await;
    assert_eq!(attempt.status, 200, "{}", attempt.html);
    let got = &sink.received()[0];
    let signature_start = &got.header("webhook-signature")[..11];
    for value in [signature_start, got.header("webhook-id"), got.header("webhook-timestamp")] {
        assert!(attempt.html.contains(value), "{value}: {}", attempt.html);
    }
    assert!(attempt.html.contains("not kept: <code>authorization</code>, <code>x-tenant</code>"), "{}", attempt.html);
    assert!(!attempt.html.contains("s3cr3t") && !attempt.html.contains(">t1<"), "custom header values are never shown");
}

/// The testing console's form, posted with `action` (`check` or `send`).
async fn test_form(b: &mut Browser, path: &str, csrf: &str, action: &str, payload: &str) -> Page {
    b.post(path, &[("csrf", csrf), ("eventType", "invoice.paid"), ("payload", payload), ("action", action)]).await
}

#[tokio::test]
async fn event_types_are_added_versioned_and_archived_in_the_console() {
    let server = TestServer::spawn().await;
    let mut b = Browser::new(&server);
    assert_eq!(b.post("/console/login", &[("token", &server.token)]).await.status, 303);
    let list = b.get("/console/event-types").await;
    assert!(list.html.contains("Add an event type"), "{}", list.html);
    let csrf = list.csrf();

    // A schema that is not one is refused before anything is saved.
    let bad = [
        ("csrf", csrf.as_str()),
        ("name", "order.shipped"),
        ("description", "Shipped"),
        ("schema", r#"{"type": "nope"}"#),
    ];
    let refused = b.post("/console/event-types", &bad).await;
    assert!(refused.status == 422 && refused.html.contains("not a usable JSON Schema"), "{}", refused.html);
    assert_eq!(server.get("/api/v1/event-type/order.shipped").await.0, 404);

    let v1 = r#"{"type": "object", "required": ["id"]}"#;
    let made = b
        .post(
            "/console/event-types",
            &[("csrf", &csrf), ("name", "order.shipped"), ("description", "Shipped"), ("schema", v1)],
        )
        .await;
    assert_eq!((made.status, made.location.as_str()), (303, "/console/event-types/order%2Eshipped?done=added"));
    let (_, et) = server.get("/api/v1/event-type/order.shipped").await;
    assert_eq!(et["schemas"], json!({"1": {"type": "object", "required": ["id"]}}));

    // Saved as a new version, then the latest version edited in place.
    let v2 = r#"{"type": "object", "required": ["id", "carrier"]}"#;
    let edit = b.get("/console/event-types/order.shipped").await;
    assert!(edit.html.contains("version 1"), "{}", edit.html);
    let path = "/console/event-types/order.shipped";
    let saved = b
        .post(path, &[("csrf", &csrf), ("description", "Left the warehouse"), ("schema", v2), ("newVersion", "on")])
        .await;
    assert_eq!(saved.status, 303, "{}", saved.html);
    let v2b = r#"{"type": "object", "required": ["carrier"]}"#;
    let saved = b.post(path, &[("csrf", &csrf), ("description", "Left the warehouse"), ("schema", v2b)]).await;
    assert_eq!(saved.status, 303, "{}", saved.html);
    let (_, et) = server.get("/api/v1/event-type/order.shipped").await;
    assert_eq!(et["description"], "Left the warehouse");
    assert_eq!(et["schemas"]["1"]["required"], json!(["id"]), "{et}");
    assert_eq!(et["schemas"]["2"]["required"], json!(["carrier"]), "{et}");

    let archived = b.post(&format!("{path}/archive"), &[("csrf", &csrf), ("archived", "true")]).await;
    assert_eq!(archived.status, 303);
    assert_eq!(server.get("/api/v1/event-type/order.shipped").await.1["archived"], true);
    assert!(b.get(&archived.location).await.html.contains("badge\">archived"));

    let restored = b.post(&format!("{path}/archive"), &[("csrf", &csrf), ("archived", "false")]).await;
    assert_eq!(restored.status, 303);
    assert_eq!(server.get("/api/v1/event-type/order.shipped").await.1["archived"], false);

    // A read-only session sees the catalog and no forms.
    let (_, me) = server.get("/api/v1/auth/whoami").await;
    let tokens = format!("/api/v1/management/authentication/{}/api-token", me["envId"].as_str().unwrap());
    let (_, tok) = server.post(&tokens, json!({"name": "ro", "scopes": ["read-only"]})).await;
    let mut ro = Browser::new(&server);
    let signed_in = ro.post("/console/login", &[("token", tok["token"].as_str().unwrap_or(""))]).await;
    assert_eq!(signed_in.status, 303, "{tok}");
    let page = ro.get("/console/event-types").await;
    assert!(page.html.contains("order.shipped") && !page.html.contains("Add an event type"), "{}", page.html);
}

#[tokio::test]
async fn a_portal_wears_its_organisations_theme_and_sends_examples_only() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let theme = json!({
        "customColor": "#0a7f5a",
        "logoUrl": "https://cdn.example.com/acme.svg",
        "displayName": "Acme webhooks",
        "customFontFamily": "Inter",
        "customThemeOverride": {"borderRadius": {"button": "full"}}
    });
    assert_eq!(server.put("/api/v1/management/environment-settings", theme).await.0, 200);
    let schema = json!({"type": "object", "examples": [{"invoice": "in_1"}]});
    server
        .post("/api/v1/event-type", json!({"name": "invoice.paid", "description": "Paid", "schemas": {"1": schema}}))
        .await;
    let app = server.create_app("Customer").await;
    let ep = server.create_endpoint(&app, json!({"url": sink.url("/hook")})).await;
    let caps = json!({"capabilities": ["ViewBase", "CreateAttempts"]});
    let (_, access) = server.post(&format!("/api/v1/auth/app-portal-access/{app}"), caps).await;
    let link = access["url"].as_str().unwrap();
    let mut b = Browser::new(&server);
    assert_eq!(b.get(&link[link.find("/portal/").unwrap()..]).await.status, 303);

    // The portal's pages carry the theme: its stylesheet, logo and name.
    let page = b.get(&format!("/portal/apps/{app}")).await;
    assert!(page.html.contains("href=\"/portal/theme.css\""), "{}", page.html);
    assert!(page.html.contains("src=\"https://cdn.example.com/acme.svg\"") && page.html.contains("Acme webhooks"));
    let css = b.client.get(format!("{}/portal/theme.css", server.base)).header("cookie", b.cookie.clone().unwrap());
    let resp = css.send().await.unwrap();
    let csp = resp.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("img-src 'self' data: https:") && !csp.contains("script-src"), "{csp}");
    let css = resp.text().await.unwrap();
    assert!(css.contains("--accent: #0a7f5a;") && css.contains("--radius-button: 999px;"), "{css}");
    assert!(css.contains("font-family: \"Inter\""), "{css}");
    // The console keeps hookd's own look.
    let mut op = Browser::new(&server);
    op.post("/console/login", &[("token", &server.token)]).await;
    assert!(!op.get("/console/apps").await.html.contains("theme.css"));

    // Forms follow the capabilities: this session may send, not manage.
    let ep_page = b.get(&format!("/portal/apps/{app}/endpoints/{}", ep["id"].as_str().unwrap())).await;
    assert!(ep_page.html.contains("Send example"), "{}", ep_page.html);
    for absent in ["Rotate secret", "Disable", "Reveal", "/edit\"", "/headers\""] {
        assert!(!ep_page.html.contains(absent), "{absent}: {}", ep_page.html);
    }
    assert!(!page.html.contains("Add endpoint"), "{}", page.html);

    // The testing console in the portal: the example, read-only, sent as it is.
    let testing = format!("/portal/apps/{app}/endpoints/{}/testing", ep["id"].as_str().unwrap());
    let form = b.get(&format!("{testing}?eventType=invoice.paid")).await;
    assert!(form.html.contains("readonly") && form.html.contains("in_1"), "{}", form.html);
    let fields = [
        ("csrf", form.csrf()),
        ("eventType", "invoice.paid".into()),
        ("payload", "{\"forged\": true}".into()),
        ("action", "send".into()),
    ];
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let sent = b.post(&testing, &fields).await;
    assert_eq!(sent.status, 303, "{}", sent.html);
    let got = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].json(), json!({"invoice": "in_1"}), "the example, not what the form was given");
}

#[tokio::test]
async fn messages_are_found_by_tag_and_time_in_the_console() {
    let server = TestServer::spawn().await;
    let app = server.create_app("Billing").await;
    let tagged = json!({"eventType": "invoice.paid", "payload": {}, "tags": ["vip"]});
    let (_, vip) = server.post(&format!("/api/v1/app/{app}/msg"), tagged).await;
    let plain = server.send_message(&app, "invoice.paid", json!({})).await;
    let (vip, plain) = (vip["id"].as_str().unwrap().to_string(), plain["id"].as_str().unwrap().to_string());
    let mut b = Browser::new(&server);
    b.post("/console/login", &[("token", &server.token)]).await;
    let msgs = format!("/console/apps/{app}/msgs");

    let by_tag = b.get(&format!("{msgs}?tag=vip")).await;
    assert!(by_tag.html.contains(&vip) && !by_tag.html.contains(&plain), "{}", by_tag.html);
    assert!(by_tag.html.contains("name=\"tag\" value=\"vip\""), "the search is kept in the form");
    // Times as a datetime-local field sends them (UTC, to the minute).
    let minute = |ms: i64| hookd_core::timefmt::format_millis(ms)[..16].to_string();
    let now = hookd_core::timefmt::now_millis();
    let recent = b.get(&format!("{msgs}?after={}", minute(now - 3_600_000))).await;
    assert!(recent.html.contains(&vip) && recent.html.contains(&plain), "{}", recent.html);
    let later = b.get(&format!("{msgs}?after={}", minute(now + 3_600_000))).await;
    assert!(later.html.contains("No messages."), "{}", later.html);
    let earlier = b.get(&format!("{msgs}?before={}", minute(now - 3_600_000))).await;
    assert!(earlier.html.contains("No messages."), "{}", earlier.html);
}
