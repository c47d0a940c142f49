//! Svix's environment export and import: one server's event types, settings
//! and connectors move to another in one step, and importing again changes
//! nothing.

use serde_json::{json, Value};

use crate::support::TestServer;

/// An export without what differs between servers (ids, times, organisation).
fn comparable(mut env: Value) -> Value {
    env.as_object_mut().unwrap().remove("createdAt");
    for list in ["eventTypes", "connectors"] {
        for item in env[list].as_array_mut().unwrap() {
            for k in ["id", "orgId", "createdAt", "updatedAt", "transformationUpdatedAt"] {
                item.as_object_mut().unwrap().remove(k);
            }
        }
    }
    env
}

#[tokio::test]
async fn an_environment_moves_to_another_server_in_one_step() {
    let from = TestServer::spawn().await;
    let schema = json!({"1": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}});
    for (name, body) in [
        (
            "invoice.paid",
            json!({"name": "invoice.paid", "description": "Paid", "schemas": schema, "groupName": "billing"}),
        ),
        ("user.created", json!({"name": "user.created", "description": "New user", "featureFlags": ["beta"]})),
        ("old.thing", json!({"name": "old.thing", "description": "Retired"})),
    ] {
        let (status, out) = from.post("/api/v1/event-type", body).await;
        assert_eq!(status, 201, "{name}: {out}");
    }
    from.delete("/api/v1/event-type/old.thing").await;
    let (status, _) = from.patch("/api/v1/event-type/invoice.paid", json!({"validatePayloads": true})).await;
    assert_eq!(status, 200);
    let (status, out) =
        from.post("/api/v1/connector", json!({"preset": "slack", "name": "Team Slack", "uid": "slack"})).await;
    assert_eq!(status, 201, "{out}");
    let custom = json!({"name": "Custom", "transformation": "function handler(w) { w.payload.x = 1; return w; }",
                        "allowedEventTypes": ["invoice.paid"]});
    let (status, out) = from.post("/api/v1/connector", custom).await;
    assert_eq!(status, 201, "{out}");
    let (status, out) = from
        .put("/api/v1/management/environment-settings", json!({"customColor": "#123456", "displayName": "Acme"}))
        .await;
    assert_eq!(status, 200, "{out}");

    let (status, exported) = from.post("/api/v1/environment/export", json!({})).await;
    assert_eq!(status, 200, "{exported}");
    assert_eq!(exported["version"], 1);
    assert_eq!(exported["eventTypes"].as_array().unwrap().len(), 3, "archived ones too: {exported}");
    assert_eq!(exported["connectors"].as_array().unwrap().len(), 2);
    assert_eq!(exported["settings"]["displayName"], "Acme");

    let to = TestServer::spawn().await;
    let (status, out) = to.post("/api/v1/environment/import", exported.clone()).await;
    assert_eq!(status, 204, "{out}");
    let (_, again) = to.post("/api/v1/environment/export", json!({})).await;
    assert_eq!(comparable(again.clone()), comparable(exported.clone()));
    let (_, et) = to.get("/api/v1/event-type/invoice.paid").await;
    assert_eq!((&et["validatePayloads"], &et["groupName"]), (&json!(true), &json!("billing")), "{et}");
    let (_, old) = to.get("/api/v1/event-type/old.thing").await;
    assert_eq!(old["archived"], true);

    // Importing again changes nothing (connectors are matched by uid or name).
    let (status, _) = to.post("/api/v1/environment/import", exported.clone()).await;
    assert_eq!(status, 204);
    let (_, third) = to.post("/api/v1/environment/export", json!({})).await;
    assert_eq!(comparable(third), comparable(again));

    // Svix's settings that hookd does not keep are skipped; a bad item is named
    // and nothing of a badly shaped import is written.
    let (status, out) = to
        .post("/api/v1/environment/import", json!({"settings": {"enableChannels": true, "displayName": "Acme 2"}}))
        .await;
    assert_eq!(status, 204, "{out}");
    assert_eq!(to.get("/api/v1/environment/settings").await.1["displayName"], "Acme 2");
    let bad =
        json!({"eventTypes": [{"name": "fine.one", "description": "x"}, {"name": "bad name!", "description": "x"}]});
    let (status, out) = to.post("/api/v1/environment/import", bad).await;
    assert_eq!(status, 422, "{out}");
    assert_eq!(out["detail"][0]["loc"], json!(["body", "eventTypes", "1", "name"]), "{out}");
    assert_eq!(to.get("/api/v1/event-type/fine.one").await.0, 404, "nothing written");
    let refused = json!({"eventTypes": [{"name": "ok.two", "description": "x"}, {"name": "bad.schema", "description": "x", "schemas": {"one": {}}}]});
    let (status, out) = to.post("/api/v1/environment/import", refused).await;
    assert_eq!(status, 422, "{out}");
    assert_eq!(out["detail"][0]["loc"], json!(["body", "eventTypes", "1"]), "{out}");
    assert!(out["detail"][0]["msg"].as_str().unwrap().contains("the items before it were imported"), "{out}");
}
