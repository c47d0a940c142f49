//! Event type schemas, end to end: checked when written, payloads validated
//! when an event type asks for it, examples built from them, and event types
//! imported from and exported to OpenAPI documents.

use std::time::Duration;

use serde_json::json;

use crate::mgmt::{assert_validation_error, text};
use crate::support::{Sink, TestServer};

fn invoice_schema() -> serde_json::Value {
    json!({
        "type": "object",
        "required": ["id", "amount", "currency"],
        "properties": {
            "id": {"type": "string", "minLength": 3},
            "amount": {"type": "integer", "minimum": 1},
            "currency": {"enum": ["EUR", "USD"]},
            "paidAt": {"type": "string", "format": "date-time"}
        }
    })
}

#[tokio::test]
async fn schemas_are_checked_when_an_event_type_is_written() {
    let server = TestServer::spawn().await;
    let cases = [
        (json!({"1": {"type": "no-such-type"}}), json!(["body", "schemas", "1"])),
        (json!({"v1": {"type": "object"}}), json!(["body", "schemas", "v1"])),
        (json!([{"type": "object"}]), json!(["body", "schemas"])),
    ];
    for (schemas, loc) in cases {
        let (status, err) =
            server.post("/api/v1/event-type", json!({"name": "a.b", "description": "", "schemas": schemas})).await;
        assert_validation_error(status, &err);
        assert_eq!(err["detail"][0]["loc"], loc, "{err}");
    }
    let (status, err) =
        server.post("/api/v1/event-type", json!({"name": "a.b", "description": "", "validatePayloads": true})).await;
    assert_validation_error(status, &err);
    assert_eq!(err["detail"][0]["loc"], json!(["body", "validatePayloads"]));
    let (status, et) = server
        .post("/api/v1/event-type", json!({"name": "a.b", "description": "", "schemas": {"1": invoice_schema()}}))
        .await;
    assert_eq!(status, 201, "{et}");
    assert_eq!(et["validatePayloads"], false);
    assert_eq!(et["schemas"]["1"], invoice_schema());
}

#[tokio::test]
async fn an_event_type_that_validates_refuses_payloads_that_do_not_match() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let app = server.create_app("Acme").await;
    server.create_endpoint(&app, json!({"url": sink.url("/h")})).await;
    let (status, et) = server
        .post(
            "/api/v1/event-type",
            json!({"name": "invoice.paid", "description": "", "schemas": {"1": invoice_schema()}, "validatePayloads": true}),
        )
        .await;
    assert_eq!(status, 201, "{et}");
    assert_eq!(et["validatePayloads"], true);
    let msg_path = format!("/api/v1/app/{app}/msg");

    let (status, err) = server
        .post(
            &msg_path,
            json!({"eventType": "invoice.paid", "payload": {"id": "in_1", "amount": 0, "currency": "GBP"}}),
        )
        .await;
    assert_validation_error(status, &err);
    let locs: Vec<_> = err["detail"].as_array().unwrap().iter().map(|d| d["loc"].clone()).collect();
    assert!(locs.contains(&json!(["body", "payload", "amount"])), "{err}");
    assert!(locs.contains(&json!(["body", "payload", "currency"])), "{err}");
    let (status, err) = server.post(&msg_path, json!({"eventType": "invoice.paid", "payload": {"id": "in_1"}})).await;
    assert_validation_error(status, &err);
    assert!(err["detail"][0]["msg"].as_str().unwrap().contains("amount"), "{err}");
    // A raw payload cannot be checked against a JSON Schema.
    let (status, err) = server
        .post(
            &msg_path,
            json!({"eventType": "invoice.paid", "payload": {}, "transformationsParams": {"rawPayload": "<x/>"}}),
        )
        .await;
    assert_validation_error(status, &err);

    let good = json!({"id": "in_1", "amount": 5, "currency": "EUR"});
    let (status, out) = server.post(&msg_path, json!({"eventType": "invoice.paid", "payload": good})).await;
    assert_eq!(status, 202, "{out}");
    // Other event types are not checked.
    server.send_message(&app, "invoice.created", json!({"anything": true})).await;
    let got = sink.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 2);

    // Turning validation off takes effect at once.
    let (status, _) = server.patch("/api/v1/event-type/invoice.paid", json!({"validatePayloads": false})).await;
    assert_eq!(status, 200);
    let (status, out) = server.post(&msg_path, json!({"eventType": "invoice.paid", "payload": {"id": 1}})).await;
    assert_eq!(status, 202, "{out}");
    let (_, list) = server.get(&format!("{msg_path}?event_types=invoice.paid")).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 2, "nothing refused was stored");
}

#[tokio::test]
async fn send_example_builds_a_payload_from_the_schema() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let app = server.create_app("Acme").await;
    let ep = server.create_endpoint(&app, json!({"url": sink.url("/h")})).await;
    let (status, _) = server
        .post(
            "/api/v1/event-type",
            json!({"name": "invoice.paid", "description": "", "schemas": {"1": invoice_schema()}, "validatePayloads": true}),
        )
        .await;
    assert_eq!(status, 201);
    let path = format!("/api/v1/app/{app}/endpoint/{}/send-example", text(&ep["id"]));
    let (status, out) = server.post(&path, json!({"eventType": "invoice.paid"})).await;
    assert_eq!(status, 202, "{out}");
    let got = sink.wait_for(1, Duration::from_secs(10)).await;
    let body = got[0].json();
    assert_eq!(body["currency"], "EUR");
    assert_eq!(body["amount"], 1);
    assert_eq!(body["id"], "string");
    assert_eq!(body["paidAt"], "2026-01-01T12:00:00Z");
    // An index past the schema's own examples is an error, not a silent `{}`.
    let with_examples = json!({"1": {"type": "object", "examples": [{"n": 1}]}});
    server.put("/api/v1/event-type/a.b", json!({"description": "", "schemas": with_examples})).await;
    let (status, err) = server.post(&path, json!({"eventType": "a.b", "exampleIndex": 3})).await;
    assert_validation_error(status, &err);
    assert_eq!(err["detail"][0]["loc"], json!(["body", "exampleIndex"]));
}

const PETS_YAML: &str = r##"
openapi: 3.1.0
info: {title: Pets, version: 1.0.0}
webhooks:
  pet.new:
    post:
      description: A new pet
      x-svix-group-name: pets
      requestBody:
        content:
          application/json:
            schema: {$ref: "#/components/schemas/Pet"}
  pet.gone:
    post:
      summary: A pet left
      deprecated: true
components:
  schemas:
    Pet:
      type: object
      required: [id, name]
      properties:
        id: {type: integer}
        name: {type: string}
"##;

#[tokio::test]
async fn event_types_are_imported_from_and_exported_to_openapi() {
    let server = TestServer::spawn().await;
    server.post("/api/v1/event-type", json!({"name": "old.one", "description": "gone soon"})).await;
    let import = "/api/v1/event-type/import/openapi";

    let (status, err) = server.post(import, json!({})).await;
    assert_eq!(status, 400, "{err}");
    let (status, err) = server.post(import, json!({"specRaw": "webhooks: {\"bad name!\": {post: {}}}"})).await;
    assert_validation_error(status, &err);
    assert_eq!(err["detail"][0]["loc"], json!(["body", "specRaw", "webhooks", "bad name!"]));

    let (status, dry) = server.post(import, json!({"specRaw": PETS_YAML, "dryRun": true, "replaceAll": true})).await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["data"]["modified"], json!(["pet.gone", "pet.new", "old.one"]));
    assert_eq!(dry["data"]["to_modify"][1]["schemas"]["1"]["$defs"]["Pet"]["required"], json!(["id", "name"]));
    assert_eq!(server.get("/api/v1/event-type/pet.new").await.0, 404, "a dry run changes nothing");

    let (status, done) = server.post(import, json!({"specRaw": PETS_YAML, "replaceAll": true})).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["data"]["modified"], json!(["pet.gone", "pet.new", "old.one"]));
    assert!(done["data"]["to_modify"].is_null());
    let (_, pet) = server.get("/api/v1/event-type/pet.new").await;
    assert_eq!(pet["description"], "A new pet");
    assert_eq!(pet["groupName"], "pets");
    assert_eq!(pet["schemas"]["1"]["$ref"], "#/$defs/Pet");
    let (_, gone) = server.get("/api/v1/event-type/pet.gone").await;
    assert_eq!(gone["deprecated"], true);
    let (_, old) = server.get("/api/v1/event-type/old.one").await;
    assert_eq!(old["archived"], true);

    // The same document again changes nothing; a changed schema is a new version.
    let (_, again) = server.post(import, json!({"specRaw": PETS_YAML})).await;
    assert_eq!(again["data"]["modified"], json!([]));
    let changed = PETS_YAML.replace("required: [id, name]", "required: [id]");
    let (_, again) = server.post(import, json!({"specRaw": changed})).await;
    assert_eq!(again["data"]["modified"], json!(["pet.new"]));
    let (_, pet) = server.get("/api/v1/event-type/pet.new").await;
    assert_eq!(pet["schemas"]["1"]["$defs"]["Pet"]["required"], json!(["id", "name"]));
    assert_eq!(pet["schemas"]["2"]["$defs"]["Pet"]["required"], json!(["id"]));

    // The export is a finished task holding the document, which imports as a no-op.
    let (status, task) = server.post("/api/v1/event-type/export/openapi", json!({})).await;
    assert_eq!(status, 202, "{task}");
    assert_eq!(task["status"], "finished");
    assert_eq!(task["task"], "sdk.generate");
    let doc = task["data"]["openapi"].clone();
    assert_eq!(doc["openapi"], "3.1.0");
    let hooks = doc["webhooks"].as_object().unwrap();
    assert!(hooks.contains_key("pet.new") && !hooks.contains_key("old.one"), "{doc}");
    assert_eq!(hooks["pet.new"]["post"]["requestBody"]["content"]["application/json"]["schema"], pet["schemas"]["2"]);
    let (_, fetched) = server.get(&format!("/api/v1/background-task/{}", text(&task["id"]))).await;
    assert_eq!(fetched["data"]["openapi"], doc);
    let (_, again) = server.post(import, json!({"spec": doc})).await;
    assert_eq!(again["data"]["modified"], json!([]), "{again}");
}
