//! Event types from and to OpenAPI documents: each webhook of a document's
//! `webhooks` (OpenAPI 3.1) or `x-webhooks` is an event type, and the JSON
//! body of its request is the event type's schema.
//!
//! References within the document (`#/components/schemas/…`) are copied into
//! the schema's `$defs`, so that every stored schema stands alone; nothing is
//! fetched.

use std::collections::{BTreeMap, VecDeque};

use serde_json::{json, Map, Value};

use crate::schema::Schema;
use crate::validate;

/// Most webhooks one document may define.
pub const MAX_WEBHOOKS: usize = 1_000;
/// Most definitions one schema may pull in through references.
const MAX_DEFS: usize = 500;
/// Largest schema one webhook may make (with its definitions), in bytes of JSON,
/// and largest all of a document's together.
pub const MAX_SCHEMA_BYTES: usize = 256 * 1024;
const MAX_TOTAL_BYTES: usize = 16 * 1024 * 1024;
/// Extension keys that carry an event type's group and feature flags.
const GROUP_KEY: &str = "x-svix-group-name";
const FLAGS_KEY: &str = "x-svix-feature-flags";

/// One event type as a document defines it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventTypeDoc {
    pub name: String,
    pub description: String,
    pub deprecated: bool,
    pub group_name: Option<String>,
    pub feature_flags: Option<Vec<String>>,
    /// The request body's JSON Schema, standing alone.
    pub schema: Option<Value>,
}

/// Why a document cannot be imported: where (a path into the document, such
/// as `webhooks/pet.new/post`) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at {}: {}", self.path, self.message)
    }
}

fn error(path: impl Into<String>, message: impl Into<String>) -> ImportError {
    ImportError { path: path.into(), message: message.into() }
}

/// The event types `spec` defines, in name order.
pub fn event_types(spec: &Value) -> Result<Vec<EventTypeDoc>, ImportError> {
    let Some(doc) = spec.as_object() else { return Err(error("", "an OpenAPI document is a JSON object")) };
    let mut webhooks: BTreeMap<&str, (&str, &Value)> = BTreeMap::new();
    for key in ["x-webhooks", "webhooks"] {
        match doc.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Object(hooks)) => {
                for (name, item) in hooks {
                    webhooks.insert(name, (key, item));
                }
            }
            Some(_) => return Err(error(key, "an object of webhooks by name")),
        }
    }
    if webhooks.is_empty() {
        return Err(error("webhooks", "the document defines no webhooks (OpenAPI 3.1 `webhooks` or `x-webhooks`)"));
    }
    if webhooks.len() > MAX_WEBHOOKS {
        return Err(error("webhooks", format!("at most {MAX_WEBHOOKS} webhooks")));
    }
    let mut total = 0;
    let mut out = Vec::with_capacity(webhooks.len());
    for (name, (key, item)) in webhooks {
        let et = event_type(spec, key, name, item)?;
        total += et.schema.as_ref().map_or(0, |s| s.to_string().len());
        if total > MAX_TOTAL_BYTES {
            return Err(error(key, format!("the schemas come to more than {MAX_TOTAL_BYTES} bytes")));
        }
        out.push(et);
    }
    Ok(out)
}

fn event_type(spec: &Value, key: &str, name: &str, item: &Value) -> Result<EventTypeDoc, ImportError> {
    let at = format!("{key}/{name}");
    validate::event_type_name(name).map_err(|e| error(&at, e))?;
    let item = resolve(spec, item).map_err(|m| error(&at, m))?;
    let (method, op) = ["post", "put", "patch"]
        .into_iter()
        .find_map(|m| item.get(m).filter(|o| o.is_object()).map(|o| (m, o)))
        .ok_or_else(|| error(&at, "the webhook has no post operation"))?;
    let at = format!("{at}/{method}");
    let text = |k: &str| op.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    let body = match op.get("requestBody") {
        Some(b) => Some(resolve(spec, b).map_err(|m| error(format!("{at}/requestBody"), m))?),
        None => None,
    };
    let body_text = body.and_then(|b| b.get("description")).and_then(Value::as_str).filter(|s| !s.is_empty());
    let description = text("description").or(text("summary")).or(body_text).unwrap_or("");
    let description = truncate(description, validate::MAX_DESCRIPTION_LEN);
    let group_name = match op.get(GROUP_KEY) {
        None | Some(Value::Null) => None,
        Some(Value::String(g)) => {
            validate::uid(g).map_err(|e| error(format!("{at}/{GROUP_KEY}"), e))?;
            Some(g.clone())
        }
        Some(_) => return Err(error(format!("{at}/{GROUP_KEY}"), "a string")),
    };
    let feature_flags = match op.get(FLAGS_KEY) {
        None | Some(Value::Null) => None,
        Some(Value::Array(flags)) => Some(
            flags
                .iter()
                .map(|f| f.as_str().filter(|f| validate::uid(f).is_ok()).map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| error(format!("{at}/{FLAGS_KEY}"), "a list of flag names"))?,
        ),
        Some(_) => return Err(error(format!("{at}/{FLAGS_KEY}"), "a list of flag names")),
    };
    let schema = match body.and_then(|b| b.get("content")).and_then(Value::as_object) {
        None => None,
        Some(content) => {
            let media = content
                .get("application/json")
                .or_else(|| content.iter().find(|(t, _)| t.contains("json")).map(|(_, m)| m));
            match media {
                None => None,
                Some(media) => {
                    let at = format!("{at}/requestBody");
                    let schema =
                        media.get("schema").map(|s| standalone(spec, s)).transpose().map_err(|m| error(&at, m))?;
                    schema.map(|s| with_example(s, media))
                }
            }
        }
    };
    if let Some(schema) = &schema {
        Schema::compile(schema)
            .map_err(|e| error(format!("{at}/requestBody"), format!("not a usable JSON Schema: {e}")))?;
    }
    Ok(EventTypeDoc {
        name: name.to_string(),
        description,
        deprecated: op.get("deprecated").and_then(Value::as_bool).unwrap_or(false),
        group_name,
        feature_flags,
        schema,
    })
}

/// The media type's example (`example`, or the first of `examples`) as the
/// schema's `examples`, when the schema has none.
fn with_example(mut schema: Value, media: &Value) -> Value {
    let example = media
        .get("example")
        .or_else(|| media.get("examples").and_then(Value::as_object).and_then(|e| e.values().next()?.get("value")));
    if let (Some(example), Some(obj)) = (example, schema.as_object_mut()) {
        if !obj.contains_key("examples") && !obj.contains_key("example") {
            obj.insert("examples".into(), json!([example]));
        }
    }
    schema
}

fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// The value, or what it refers to when it is a `$ref` object (objects other
/// than schemas: path items, request bodies).
fn resolve<'a>(spec: &'a Value, value: &'a Value) -> Result<&'a Value, String> {
    let mut value = value;
    for _ in 0..8 {
        match value.get("$ref").and_then(Value::as_str) {
            Some(r) => value = target(spec, r)?,
            None => return Ok(value),
        }
    }
    Err("references refer to each other in a loop".into())
}

fn target<'a>(spec: &'a Value, reference: &str) -> Result<&'a Value, String> {
    let pointer = reference
        .strip_prefix('#')
        .ok_or_else(|| format!("{reference}: only references within the document are followed"))?;
    spec.pointer(pointer).ok_or_else(|| format!("{reference} refers to nothing in the document"))
}

/// `schema` with every reference into the document copied into `$defs`.
fn standalone(spec: &Value, schema: &Value) -> Result<Value, String> {
    let mut defs: BTreeMap<String, String> = BTreeMap::new(); // reference → name in $defs
    let mut pending: VecDeque<(String, String)> = VecDeque::new();
    let mut root = schema.clone();
    // The schema's own definitions keep their names.
    if let Some(Value::Object(own)) = root.get("$defs") {
        for name in own.keys() {
            defs.insert(format!("#/$defs/{name}"), name.clone());
        }
    }
    rewrite(&mut root, &mut defs, &mut pending)?;
    let mut size = root.to_string().len();
    let mut out = Map::new();
    while let Some((reference, name)) = pending.pop_front() {
        let mut def = target(spec, &reference)?.clone();
        rewrite(&mut def, &mut defs, &mut pending)?;
        size += def.to_string().len();
        if size > MAX_SCHEMA_BYTES {
            return Err(format!("the schema with its definitions is more than {MAX_SCHEMA_BYTES} bytes"));
        }
        out.insert(name, def);
    }
    if size > MAX_SCHEMA_BYTES {
        return Err(format!("the schema is more than {MAX_SCHEMA_BYTES} bytes"));
    }
    if !out.is_empty() {
        let Some(obj) = root.as_object_mut() else { return Err("a schema is a JSON object".into()) };
        if let Some(Value::Object(own)) = obj.get("$defs") {
            for (k, v) in own {
                out.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        obj.insert("$defs".into(), Value::Object(out));
    }
    Ok(root)
}

/// Points every document reference in `value` at `#/$defs/…`, queueing the
/// ones not seen yet.
fn rewrite(
    value: &mut Value,
    defs: &mut BTreeMap<String, String>,
    pending: &mut VecDeque<(String, String)>,
) -> Result<(), String> {
    match value {
        Value::Object(obj) => {
            if let Some(Value::String(reference)) = obj.get("$ref") {
                if !reference.starts_with('#') {
                    return Err(format!("{reference}: only references within the document are followed"));
                }
                if !reference.starts_with("#/$defs/") {
                    let name = match defs.get(reference) {
                        Some(name) => name.clone(),
                        None => {
                            if defs.len() >= MAX_DEFS {
                                return Err(format!("a schema may refer to at most {MAX_DEFS} definitions"));
                            }
                            // A name that needs no escaping in a pointer.
                            let base: String = reference
                                .rsplit('/')
                                .next()
                                .unwrap_or("def")
                                .chars()
                                .map(
                                    |c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') { c } else { '_' },
                                )
                                .collect();
                            let mut name = base.clone();
                            let mut n = 2;
                            while defs.values().any(|v| *v == name) {
                                name = format!("{base}{n}");
                                n += 1;
                            }
                            defs.insert(reference.clone(), name.clone());
                            pending.push_back((reference.clone(), name.clone()));
                            name
                        }
                    };
                    obj.insert("$ref".into(), Value::String(format!("#/$defs/{name}")));
                }
            }
            for v in obj.values_mut() {
                rewrite(v, defs, pending)?;
            }
        }
        Value::Array(items) => {
            for v in items {
                rewrite(v, defs, pending)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// An OpenAPI 3.1 document of `event_types`: one webhook each, its request
/// body the schema. [`event_types`] reads it back as it was.
pub fn document(title: &str, event_types: &[EventTypeDoc]) -> Value {
    let mut webhooks = Map::new();
    for et in event_types {
        let mut op = Map::new();
        op.insert("operationId".into(), json!(et.name));
        op.insert("description".into(), json!(et.description));
        if et.deprecated {
            op.insert("deprecated".into(), json!(true));
        }
        if let Some(g) = &et.group_name {
            op.insert(GROUP_KEY.into(), json!(g));
        }
        if let Some(f) = &et.feature_flags {
            op.insert(FLAGS_KEY.into(), json!(f));
        }
        // A type without a schema has a JSON body of any shape.
        let media = match &et.schema {
            Some(schema) => json!({ "schema": schema }),
            None => json!({}),
        };
        op.insert("requestBody".into(), json!({"content": {"application/json": media}}));
        op.insert(
            "responses".into(),
            json!({"2XX": {"description": "Return any 2XX status to indicate that the data was received successfully"}}),
        );
        webhooks.insert(et.name.clone(), json!({ "post": op }));
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1.0.0"},
        "webhooks": webhooks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pet_store() -> Value {
        json!({
            "openapi": "3.1.0",
            "info": {"title": "Pets", "version": "1.0.0"},
            "webhooks": {
                "pet.new": {"post": {
                    "description": "A new pet",
                    "x-svix-group-name": "pets",
                    "requestBody": {"content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Pet"},
                        "example": {"id": 1, "name": "Rex"}
                    }}},
                    "responses": {"200": {"description": "ok"}}
                }},
                "pet.gone": {"post": {"summary": "A pet left", "deprecated": true,
                    "requestBody": {"$ref": "#/components/requestBodies/PetId"}}}
            },
            "x-webhooks": {"pet.legacy": {"post": {"description": "old style"}}},
            "components": {
                "schemas": {
                    "Pet": {"type": "object", "required": ["id", "name"], "properties": {
                        "id": {"type": "integer"}, "name": {"type": "string"},
                        "owner": {"$ref": "#/components/schemas/Owner"},
                        "friends": {"type": "array", "items": {"$ref": "#/components/schemas/Pet"}}
                    }},
                    "Owner": {"type": "object", "properties": {"name": {"type": "string"}}}
                },
                "requestBodies": {"PetId": {"description": "which pet", "content": {"application/json": {
                    "schema": {"type": "object", "properties": {"id": {"type": "integer"}}}
                }}}}
            }
        })
    }

    #[test]
    fn webhooks_become_event_types_with_standalone_schemas() {
        let types = event_types(&pet_store()).unwrap();
        let names: Vec<&str> = types.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["pet.gone", "pet.legacy", "pet.new"]);
        let new = &types[2];
        assert_eq!(new.description, "A new pet");
        assert_eq!(new.group_name.as_deref(), Some("pets"));
        let schema = new.schema.as_ref().unwrap();
        assert_eq!(schema["$ref"], "#/$defs/Pet");
        assert_eq!(schema["$defs"]["Pet"]["properties"]["owner"]["$ref"], "#/$defs/Owner");
        assert_eq!(schema["$defs"]["Pet"]["properties"]["friends"]["items"]["$ref"], "#/$defs/Pet");
        assert_eq!(schema["examples"], json!([{"id": 1, "name": "Rex"}]));
        let compiled = Schema::compile(schema).unwrap();
        assert!(compiled.errors(&json!({"id": 1, "name": "Rex", "friends": [{"id": 2, "name": "Tom"}]})).is_empty());
        assert!(!compiled.errors(&json!({"id": 1, "friends": [{"id": "two"}]})).is_empty());
        let gone = &types[0];
        assert!(gone.deprecated);
        assert_eq!(gone.description, "A pet left");
        assert_eq!(gone.schema.as_ref().unwrap()["properties"]["id"]["type"], "integer");
        assert_eq!(types[1].schema, None);
    }

    #[test]
    fn an_exported_document_reads_back_the_same() {
        let types = event_types(&pet_store()).unwrap();
        let doc = document("Pets", &types);
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(event_types(&doc).unwrap(), types);
    }

    #[test]
    fn what_cannot_be_imported_says_where() {
        let cases = [
            (json!([]), ""),
            (json!({"openapi": "3.1.0"}), "webhooks"),
            (json!({"webhooks": {"bad name!": {"post": {}}}}), "webhooks/bad name!"),
            (json!({"webhooks": {"a.b": {"get": {}}}}), "webhooks/a.b"),
            (
                json!({"webhooks": {"a.b": {"post": {"requestBody": {"content": {"application/json": {
                "schema": {"$ref": "https://example.com/s.json"}}}}}}}}),
                "webhooks/a.b/post/requestBody",
            ),
            (
                json!({"webhooks": {"a.b": {"post": {"requestBody": {"content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Nope"}}}}}}}}),
                "webhooks/a.b/post/requestBody",
            ),
            (
                json!({"webhooks": {"a.b": {"post": {"requestBody": {"content": {"application/json": {
                "schema": {"type": "no-such-type"}}}}}}}}),
                "webhooks/a.b/post/requestBody",
            ),
            (
                json!({"webhooks": {"a.b": {"post": {"x-svix-feature-flags": [1]}}}}),
                "webhooks/a.b/post/x-svix-feature-flags",
            ),
        ];
        for (spec, path) in cases {
            let err = event_types(&spec).unwrap_err();
            assert_eq!(err.path, path, "{spec}: {err}");
            assert!(!err.message.is_empty());
        }
    }

    #[test]
    fn reference_loops_and_floods_are_bounded() {
        let looping = json!({"webhooks": {"a.b": {"$ref": "#/webhooks/a.b"}}});
        assert!(event_types(&looping).unwrap_err().message.contains("loop"));
        let mut schemas = Map::new();
        let mut props = Map::new();
        for i in 0..(MAX_DEFS + 1) {
            schemas.insert(format!("S{i}"), json!({"type": "string"}));
            props.insert(format!("p{i}"), json!({"$ref": format!("#/components/schemas/S{i}")}));
        }
        let flood = json!({"webhooks": {"a.b": {"post": {"requestBody": {"content": {"application/json": {
            "schema": {"type": "object", "properties": props}}}}}}}, "components": {"schemas": schemas}});
        assert!(event_types(&flood).unwrap_err().message.contains("at most"));
        let big = json!({"type": "string", "enum": ["x".repeat(MAX_SCHEMA_BYTES)]});
        let huge = json!({"webhooks": {"a.b": {"post": {"requestBody": {"content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Big"}}}}}}}, "components": {"schemas": {"Big": big}}});
        let err = event_types(&huge).unwrap_err();
        assert_eq!(err.path, "webhooks/a.b/post/requestBody");
        assert!(err.message.contains("bytes"), "{err}");
    }

    #[test]
    fn generated_names_stay_clear_of_the_schemas_own() {
        let spec = json!({"webhooks": {"a.b": {"post": {"requestBody": {"content": {"application/json": {"schema": {
            "properties": {"x": {"$ref": "#/$defs/Pet"}, "y": {"$ref": "#/components/schemas/Pet"},
                           "z": {"$ref": "#/components/schemas/a~1b"}},
            "$defs": {"Pet": {"type": "string"}}}}}}}}},
            "components": {"schemas": {"Pet": {"type": "integer"}, "a/b": {"type": "boolean"}}}});
        let schema = event_types(&spec).unwrap().remove(0).schema.unwrap();
        assert_eq!(schema["$defs"]["Pet"], json!({"type": "string"}));
        assert_eq!(schema["properties"]["y"]["$ref"], "#/$defs/Pet2");
        assert_eq!(schema["$defs"]["Pet2"], json!({"type": "integer"}));
        assert_eq!(schema["properties"]["z"]["$ref"], "#/$defs/a_1b");
        assert_eq!(schema["$defs"]["a_1b"], json!({"type": "boolean"}));
    }
}
