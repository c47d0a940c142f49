//! `hookd import-svix` against a server that speaks the Svix API (another
//! hookd): applications and endpoints arrive with their secrets and headers,
//! old ids keep working as uids, and a second run changes nothing.

use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::mgmt::{secret_of, text};
use crate::support::{verify_standard_webhook, Sink, TestServer};

fn import(from: &TestServer, to: &TestServer) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hookd"))
        .args([
            "import-svix",
            "--from",
            &from.base,
            "--from-token",
            &from.token,
            "--to",
            &to.base,
            "--to-token",
            &to.token,
        ])
        .env_remove("HOOKD_TOKEN")
        .output()
        .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{said}");
    said
}

#[tokio::test]
async fn applications_and_endpoints_move_with_their_secrets() {
    let svix = TestServer::spawn().await;
    let sink = Sink::start().await;
    let (_, shop) =
        svix.post("/api/v1/app", json!({"name": "Shop", "uid": "shop", "metadata": {"tier": "gold"}})).await;
    let shop_id = text(&shop["id"]);
    let plain = svix.create_app("No uid").await;
    let ep = svix
        .create_endpoint(
            &shop_id,
            json!({"url": sink.url("/shop"), "uid": "orders", "filterTypes": ["order.paid"], "description": "orders"}),
        )
        .await;
    let ep_id = text(&ep["id"]);
    svix.patch(&format!("/api/v1/app/{shop_id}/endpoint/{ep_id}/headers"), json!({"headers": {"x-team": "shop"}}))
        .await;
    let other = text(&svix.create_endpoint(&plain, json!({"url": sink.url("/plain"), "disabled": true})).await["id"]);
    let secret = secret_of(&svix, &shop_id, &ep_id).await;

    let hookd = TestServer::spawn().await;
    let said = import(&svix, &hookd);
    assert!(said.contains("copied 2 application(s) and 2 endpoint(s)"), "{said}");

    // By uid, and the app without one by its old id.
    let (status, app) = hookd.get("/api/v1/app/shop").await;
    assert_eq!((status, &app["metadata"]["tier"]), (200, &json!("gold")), "{app}");
    assert_eq!(hookd.get(&format!("/api/v1/app/{plain}")).await.0, 200, "the old id is the uid");
    let (_, copied) = hookd.get("/api/v1/app/shop/endpoint/orders").await;
    assert_eq!(
        (&copied["url"], &copied["filterTypes"]),
        (&json!(sink.url("/shop")), &json!(["order.paid"])),
        "{copied}"
    );
    assert_eq!(secret_of(&hookd, "shop", "orders").await, secret, "the signing secret moved");
    let (_, headers) = hookd.get("/api/v1/app/shop/endpoint/orders/headers").await;
    assert_eq!(headers["headers"]["x-team"], "shop", "{headers}");
    let (_, disabled) = hookd.get(&format!("/api/v1/app/{plain}/endpoint/{other}")).await;
    assert_eq!(disabled["disabled"], true);

    // Receivers verify hookd's deliveries with the secret they already have.
    hookd.send_message("shop", "order.paid", json!({"n": 1})).await;
    let got = sink.wait_for(1, Duration::from_secs(10)).await;
    assert!(verify_standard_webhook(&secret, &got[0]));

    // Again: updated, not duplicated; a rotated secret follows.
    let (status, _) = svix.post(&format!("/api/v1/app/{shop_id}/endpoint/{ep_id}/secret/rotate"), json!({})).await;
    assert!((200..300).contains(&status));
    let rotated = secret_of(&svix, &shop_id, &ep_id).await;
    import(&svix, &hookd);
    let (_, apps) = hookd.get("/api/v1/app").await;
    assert_eq!(apps["data"].as_array().unwrap().len(), 2);
    let (_, eps) = hookd.get("/api/v1/app/shop/endpoint").await;
    assert_eq!(eps["data"].as_array().unwrap().len(), 1);
    assert_eq!(secret_of(&hookd, "shop", "orders").await, rotated);
}
