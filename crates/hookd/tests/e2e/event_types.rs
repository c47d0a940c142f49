//! Event types (`/api/v1/event-type`): create, read, list, archive and expunge,
//! upsert, patch, and the older `featureFlag` spelling.

use serde_json::{json, Value};

use crate::mgmt::{assert_http_error, assert_validation_error, error_loc, text};
use crate::support::TestServer;

fn names(list: &Value) -> Vec<String> {
    list["data"].as_array().unwrap().iter().map(|e| text(&e["name"])).collect()
}

async fn create(server: &TestServer, name: &str) -> Value {
    let (status, body) =
        server.post("/api/v1/event-type", json!({"name": name, "description": format!("{name} happened")})).await;
    assert_eq!(status, 201, "{body}");
    body
}

#[tokio::test]
async fn create_returns_201_and_get_returns_the_same() {
    let server = TestServer::spawn().await;
    let schemas = json!({"1": {"type": "object", "properties": {"id": {"type": "string"}}}});
    let (status, et) = server
        .post(
            "/api/v1/event-type",
            json!({
                "name": "invoice.paid",
                "description": "An invoice was paid",
                "schemas": schemas,
                "groupName": "invoice",
                "featureFlags": ["beta"],
            }),
        )
        .await;
    assert_eq!(status, 201, "{et}");
    assert_eq!(et["name"], "invoice.paid");
    assert_eq!(et["description"], "An invoice was paid");
    assert_eq!(et["archived"], false);
    assert_eq!(et["deprecated"], false);
    assert_eq!(et["schemas"], schemas);
    assert_eq!(et["groupName"], "invoice");
    assert_eq!(et["featureFlags"], json!(["beta"]));
    assert!(et["createdAt"].is_string() && et["updatedAt"].is_string(), "{et}");

    let (status, got) = server.get("/api/v1/event-type/invoice.paid").await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got, et);
    let (status, body) = server.get("/api/v1/event-type/invoice.unknown").await;
    assert_http_error(status, &body, 404, "not_found");
}

#[tokio::test]
async fn a_duplicate_name_is_a_conflict() {
    let server = TestServer::spawn().await;
    create(&server, "user.created").await;
    let (status, body) =
        server.post("/api/v1/event-type", json!({"name": "user.created", "description": "again"})).await;
    assert_http_error(status, &body, 409, "conflict");
    let (_, got) = server.get("/api/v1/event-type/user.created").await;
    assert_eq!(got["description"], "user.created happened", "the first one is unchanged");
}

#[tokio::test]
async fn delete_archives_and_list_hides_archived_unless_asked() {
    let server = TestServer::spawn().await;
    create(&server, "a.kept").await;
    create(&server, "b.archived").await;

    let (status, body) = server.delete("/api/v1/event-type/b.archived").await;
    assert_eq!(status, 204, "{body}");
    let (status, archived) = server.get("/api/v1/event-type/b.archived").await;
    assert_eq!(status, 200, "an archived event type can still be read");
    assert_eq!(archived["archived"], true);

    let (_, list) = server.get("/api/v1/event-type").await;
    assert_eq!(names(&list), vec!["a.kept"]);
    let (_, list) = server.get("/api/v1/event-type?include_archived=false").await;
    assert_eq!(names(&list), vec!["a.kept"]);
    let (_, list) = server.get("/api/v1/event-type?include_archived=true").await;
    assert_eq!(names(&list), vec!["a.kept", "b.archived"]);

    // Creating it again brings it back.
    let (status, revived) =
        server.post("/api/v1/event-type", json!({"name": "b.archived", "description": "back"})).await;
    assert_eq!(status, 201, "{revived}");
    assert_eq!(revived["archived"], false);
    let (_, list) = server.get("/api/v1/event-type").await;
    assert_eq!(names(&list), vec!["a.kept", "b.archived"]);
}

#[tokio::test]
async fn delete_with_expunge_removes_the_event_type() {
    let server = TestServer::spawn().await;
    create(&server, "order.created").await;
    create(&server, "order.archived").await;
    server.delete("/api/v1/event-type/order.archived").await;

    for name in ["order.created", "order.archived"] {
        let (status, body) = server.delete(&format!("/api/v1/event-type/{name}?expunge=true")).await;
        assert_eq!(status, 204, "{body}");
        let (status, body) = server.get(&format!("/api/v1/event-type/{name}")).await;
        assert_http_error(status, &body, 404, "not_found");
    }
    let (_, list) = server.get("/api/v1/event-type?include_archived=true").await;
    assert!(names(&list).is_empty(), "{list}");
    let (status, body) = server.delete("/api/v1/event-type/order.created?expunge=true").await;
    assert_http_error(status, &body, 404, "not_found");
    // The name is free again.
    create(&server, "order.created").await;
}

#[tokio::test]
async fn put_creates_then_replaces() {
    let server = TestServer::spawn().await;
    let (status, created) =
        server.put("/api/v1/event-type/user.deleted", json!({"description": "first", "groupName": "user"})).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["name"], "user.deleted");
    assert_eq!(created["groupName"], "user");

    let (status, updated) =
        server.put("/api/v1/event-type/user.deleted", json!({"description": "second", "deprecated": true})).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["description"], "second");
    assert_eq!(updated["deprecated"], true);
    assert!(updated["groupName"].is_null(), "PUT replaces: {updated}");
    assert_eq!(updated["createdAt"], created["createdAt"]);

    let (status, body) = server.put("/api/v1/event-type/user.deleted", json!({"groupName": "x"})).await;
    assert_validation_error(status, &body);
}

#[tokio::test]
async fn patch_changes_only_the_given_fields() {
    let server = TestServer::spawn().await;
    let schemas = json!({"1": {"examples": [{"a": 1}]}});
    let (_, original) = server
        .post(
            "/api/v1/event-type",
            json!({
                "name": "ticket.opened",
                "description": "old",
                "schemas": schemas,
                "groupName": "tickets",
                "featureFlags": ["flag-a"],
            }),
        )
        .await;

    let (status, patched) = server.patch("/api/v1/event-type/ticket.opened", json!({"description": "new"})).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["description"], "new");
    assert_eq!(patched["schemas"], schemas);
    assert_eq!(patched["groupName"], "tickets");
    assert_eq!(patched["featureFlags"], json!(["flag-a"]));
    assert_eq!(patched["archived"], false);
    assert_eq!(patched["createdAt"], original["createdAt"]);

    let (status, patched) =
        server.patch("/api/v1/event-type/ticket.opened", json!({"deprecated": true, "groupName": null})).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["deprecated"], true);
    assert!(patched["groupName"].is_null(), "{patched}");
    assert_eq!(patched["description"], "new");

    let (status, body) = server.patch("/api/v1/event-type/ticket.missing", json!({"description": "x"})).await;
    assert_http_error(status, &body, 404, "not_found");
}

#[tokio::test]
async fn the_older_feature_flag_spelling_is_accepted() {
    let server = TestServer::spawn().await;
    let (status, et) = server
        .post("/api/v1/event-type", json!({"name": "beta.thing", "description": "d", "featureFlag": "beta-users"}))
        .await;
    assert_eq!(status, 201, "{et}");
    assert_eq!(et["featureFlags"], json!(["beta-users"]));
    let (_, got) = server.get("/api/v1/event-type/beta.thing").await;
    assert_eq!(got["featureFlags"], json!(["beta-users"]));

    let (status, patched) = server.patch("/api/v1/event-type/beta.thing", json!({"featureFlag": "everyone"})).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["featureFlags"], json!(["everyone"]));
}

#[tokio::test]
async fn an_invalid_name_is_a_validation_error() {
    let server = TestServer::spawn().await;
    for name in ["has space", "slash/inside", ""] {
        let (status, body) = server.post("/api/v1/event-type", json!({"name": name, "description": "d"})).await;
        assert_validation_error(status, &body);
        assert_eq!(error_loc(&body), vec!["body", "name"], "{body}");
    }
    let (status, body) = server.put("/api/v1/event-type/has%20space", json!({"description": "d"})).await;
    assert_validation_error(status, &body);
    let (status, body) = server.post("/api/v1/event-type", json!({"name": "no.description"})).await;
    assert_validation_error(status, &body);
    let (_, list) = server.get("/api/v1/event-type?include_archived=true").await;
    assert!(names(&list).is_empty(), "{list}");
}
