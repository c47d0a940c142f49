//! Portal settings (Svix's environment settings): set by an organisation
//! token, read by any of its tokens, held to forms that cannot break out of a
//! stylesheet, and kept per organisation.

use serde_json::{json, Value};

use crate::mgmt::text;
use crate::support::TestServer;

const SETTINGS: &str = "/api/v1/management/environment-settings";

async fn as_token(
    server: &TestServer,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = server.client.request(method, server.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn portal_settings_are_set_patched_validated_and_read_by_the_portal() {
    let server = TestServer::spawn().await;
    let (status, none) = server.get(SETTINGS).await;
    assert_eq!((status, none), (200, json!({})));
    let (_, env) = server.get("/api/v1/environment/settings").await;
    assert_eq!((env["enableChannels"].clone(), env.get("customColor")), (json!(true), None), "{env}");

    let theme = json!({
        "customColor": "#0a7f5a",
        "customLogoUrl": "https://cdn.example.com/acme.svg",
        "customFontFamily": "Inter",
        "customFontFamilyUrl": "https://fonts.example.com/inter.css",
        "customThemeOverride": {"borderRadius": {"button": "full", "card": "lg"}, "fontSize": {"base": 16}},
        "displayName": "Acme webhooks",
        "colorPaletteDark": {"backgroundPrimary": "#101418", "textPrimary": "#e6edf3"}
    });
    let (status, put) = server.put(SETTINGS, theme.clone()).await;
    assert_eq!(status, 200, "{put}");
    assert_eq!(put, theme);
    assert_eq!(server.get(SETTINGS).await.1, theme);

    // PATCH: what is given changes, null clears, the rest stays.
    let (status, patched) = server.patch(SETTINGS, json!({"customColor": null, "displayName": "Acme"})).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched.get("customColor"), None);
    assert_eq!((patched["displayName"].clone(), patched["customFontFamily"].clone()), (json!("Acme"), json!("Inter")));

    // A merge patch: within a palette only the colour named changes; the
    // logo by either of its names.
    let (status, patched) = server
        .patch(
            SETTINGS,
            json!({"colorPaletteDark": {"primary": "#ffffff"}, "logoUrl": "https://cdn.example.com/new.svg"}),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    let dark = json!({"backgroundPrimary": "#101418", "textPrimary": "#e6edf3", "primary": "#ffffff"});
    assert_eq!(
        (patched["colorPaletteDark"].clone(), patched["customLogoUrl"].clone()),
        (dark, json!("https://cdn.example.com/new.svg"))
    );
    let (_, cleared) = server.patch(SETTINGS, json!({"logoUrl": null})).await;
    assert_eq!(cleared.get("customLogoUrl"), None, "{cleared}");
    server.patch(SETTINGS, json!({"customLogoUrl": "https://cdn.example.com/acme.svg"})).await;

    // Values that could escape a stylesheet, and fields hookd does not act on.
    for (bad, field) in [
        (json!({"customColor": "red;} body{display:none"}), "customColor"),
        (json!({"customLogoUrl": "javascript:alert(1)"}), "customLogoUrl"),
        (json!({"customLogoUrl": "http://cdn.example.com/x.svg"}), "customLogoUrl"),
        (json!({"colorPaletteLight": {"primary": "blue"}}), "colorPaletteLight.primary"),
        (json!({"customFontFamily": "Inter\"}"}), "customFontFamily"),
        (json!({"enableTransformations": true}), "enableTransformations"),
    ] {
        let (status, err) = server.patch(SETTINGS, bad.clone()).await;
        assert_eq!(status, 422, "{bad}: {err}");
        assert!(err.to_string().contains(field), "{bad}: the error names the field: {err}");
    }
    assert_eq!(server.get(SETTINGS).await.1["displayName"], "Acme", "a refused change changes nothing");

    // A portal token reads them (its portal is themed) and cannot change them.
    let app = server.create_app("Customer").await;
    let (_, access) = server.post(&format!("/api/v1/auth/app-portal-access/{app}"), json!({})).await;
    let portal = text(&access["token"]);
    let (status, env) = as_token(&server, &portal, reqwest::Method::GET, "/api/v1/environment/settings", None).await;
    assert_eq!(status, 200, "{env}");
    assert_eq!(
        (env["logoUrl"].clone(), env["displayName"].clone()),
        (json!("https://cdn.example.com/acme.svg"), json!("Acme"))
    );
    let (status, _) = as_token(&server, &portal, reqwest::Method::PUT, SETTINGS, Some(json!({}))).await;
    assert!(status == 403 || status == 404, "{status}");

    // Another organisation has its own.
    let (_, org) = server.post("/api/v1/management/environment", json!({"name": "B", "type": "production"})).await;
    let env_b = text(&org["id"]);
    let (_, tok) =
        server.post(&format!("/api/v1/management/authentication/{env_b}/api-token"), json!({"name": "b"})).await;
    let b = text(&tok["token"]);
    let (status, theirs) = as_token(&server, &b, reqwest::Method::GET, SETTINGS, None).await;
    assert_eq!((status, theirs), (200, json!({})));
}
