//! JSON Schema: an event type's schema checked when it is written, and payloads
//! validated against it. References resolve within the schema only: nothing is
//! fetched.

use serde_json::Value;

/// Most errors reported for one payload.
const MAX_ERRORS: usize = 20;

/// Why a payload does not match: where (a JSON Pointer into the payload, `""`
/// for the whole) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaError {
    pub path: String,
    pub message: String,
}

/// A schema ready to validate payloads.
pub struct Schema(jsonschema::Validator);

impl Schema {
    /// Compiles `schema`, or says why it is not a usable JSON Schema.
    pub fn compile(schema: &Value) -> Result<Schema, String> {
        jsonschema::validator_for(schema).map(Schema).map_err(|e| e.to_string())
    }

    /// The first errors of `payload` against the schema (none: it matches).
    pub fn errors(&self, payload: &Value) -> Vec<SchemaError> {
        self.0
            .iter_errors(payload)
            .take(MAX_ERRORS)
            .map(|e| SchemaError { path: e.instance_path().to_string(), message: e.to_string() })
            .collect()
    }
}

/// The schema of an event type's latest version, from Svix's `schemas`
/// (`{"1": {...}, "2": {...}}`): the highest numbered version.
pub fn latest(schemas: &Value) -> Option<&Value> {
    let versions = schemas.as_object()?;
    versions.iter().max_by_key(|(v, _)| v.parse::<u64>().unwrap_or(0)).map(|(_, s)| s)
}

/// An example payload for `schema`: its own `examples[0]` or `example` when it
/// has one, else one built from it: each property of an object (required or
/// not), one item of an array, the first of an `enum`, a `const` or `default`,
/// the `minimum` of a number, a string of the `format`. `$ref`s resolve within
/// the schema; depth and size are bounded, so any schema gives an answer.
pub fn example(schema: &Value) -> Value {
    if let Some(e) = schema.get("examples").and_then(|e| e.get(0)).or_else(|| schema.get("example")) {
        return e.clone();
    }
    Example { root: schema, budget: std::cell::Cell::new(MAX_EXAMPLE_BYTES) }.of(schema, 0)
}

/// How deep a generated example nests, and about how many bytes of JSON it
/// holds at most (past it, what is left is `null`).
const MAX_EXAMPLE_DEPTH: usize = 12;
const MAX_EXAMPLE_BYTES: usize = 256 * 1024;
/// What one value costs of the budget besides its own text.
const NODE_COST: usize = 8;

struct Example<'a> {
    root: &'a Value,
    budget: std::cell::Cell<usize>,
}

impl Example<'_> {
    /// Takes `bytes` from the budget; false (and the budget spent) when there
    /// is not that much left.
    fn charge(&self, bytes: usize) -> bool {
        let left = self.budget.get();
        self.budget.set(left.saturating_sub(bytes));
        left >= bytes
    }

    /// A copy of `v` when the budget allows it.
    fn copy(&self, v: &Value) -> Value {
        match self.charge(v.to_string().len()) {
            true => v.clone(),
            false => Value::Null,
        }
    }

    fn of(&self, schema: &Value, depth: usize) -> Value {
        if depth > MAX_EXAMPLE_DEPTH || !self.charge(NODE_COST) {
            return Value::Null;
        }
        let Some(obj) = schema.as_object() else { return Value::Null };
        if let Some(target) = obj.get("$ref").and_then(Value::as_str).and_then(|r| self.resolve(r)) {
            return self.of(target, depth + 1);
        }
        for key in ["const", "default"] {
            if let Some(v) = obj.get(key) {
                return self.copy(v);
            }
        }
        if let Some(v) = obj.get("examples").and_then(|e| e.get(0)).or_else(|| obj.get("example")) {
            return self.copy(v);
        }
        if let Some(v) = obj.get("enum").and_then(|e| e.get(0)) {
            return self.copy(v);
        }
        if let Some(all) = obj.get("allOf").and_then(Value::as_array) {
            let mut merged = serde_json::Map::new();
            for part in all {
                match self.of(part, depth + 1) {
                    Value::Object(m) => merged.extend(m),
                    other if all.len() == 1 => return other,
                    _ => {}
                }
            }
            return Value::Object(merged);
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(first) = obj.get(key).and_then(|o| o.get(0)) {
                return self.of(first, depth + 1);
            }
        }
        let ty = match obj.get("type") {
            Some(Value::String(t)) => t.as_str(),
            // A list of types: the first that is not null.
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).find(|t| *t != "null").unwrap_or("null"),
            _ if obj.contains_key("properties") => "object",
            _ if obj.contains_key("items") => "array",
            _ => return Value::Object(Default::default()),
        };
        match ty {
            "object" => {
                let mut out = serde_json::Map::new();
                if let Some(props) = obj.get("properties").and_then(Value::as_object) {
                    for (name, prop) in props {
                        out.insert(name.clone(), self.of(prop, depth + 1));
                    }
                }
                Value::Object(out)
            }
            "array" => {
                let min = obj.get("minItems").and_then(Value::as_u64).unwrap_or(1).clamp(1, 3);
                let item = obj.get("items").map(|i| self.of(i, depth + 1)).unwrap_or(Value::Null);
                // The copies past the first cost what the first did.
                let copies = match self.charge(item.to_string().len().saturating_mul(min as usize - 1)) {
                    true => min as usize,
                    false => 1,
                };
                Value::Array(vec![item; copies])
            }
            "string" => Value::String(string_example(obj)),
            "integer" => number_example(obj, true),
            "number" => number_example(obj, false),
            "boolean" => Value::Bool(true),
            _ => Value::Null,
        }
    }

    /// A local reference (`#/$defs/x`, `#/definitions/x`, `#/components/…`).
    fn resolve(&self, reference: &str) -> Option<&Value> {
        let pointer = reference.strip_prefix('#')?;
        self.root.pointer(pointer)
    }
}

fn string_example(obj: &serde_json::Map<String, Value>) -> String {
    let s = match obj.get("format").and_then(Value::as_str) {
        Some("date-time") => "2026-01-01T12:00:00Z",
        Some("date") => "2026-01-01",
        Some("time") => "12:00:00Z",
        Some("email") => "user@example.com",
        Some("uri" | "url" | "iri") => "https://example.com/",
        Some("uuid") => "7f8e2c4a-5b6d-4e3f-9a1b-2c3d4e5f6a7b",
        Some("ipv4") => "192.0.2.1",
        Some("ipv6") => "2001:db8::1",
        Some("hostname") => "example.com",
        _ => "string",
    };
    let mut s = s.to_string();
    let min = obj.get("minLength").and_then(Value::as_u64).unwrap_or(0).min(1024) as usize;
    while s.chars().count() < min {
        s.push('x');
    }
    if let Some(max) = obj.get("maxLength").and_then(Value::as_u64) {
        s = s.chars().take(max as usize).collect();
    }
    s
}

fn number_example(obj: &serde_json::Map<String, Value>, integer: bool) -> Value {
    let bound = |k: &str| obj.get(k).and_then(Value::as_f64);
    let n = match (bound("minimum"), bound("exclusiveMinimum"), bound("maximum")) {
        (Some(min), _, _) => min,
        (None, Some(min), _) => min + 1.0,
        (None, None, Some(max)) if max < 0.0 => max,
        _ => 0.0,
    };
    let n = if integer { n.ceil() } else { n };
    if integer || n.fract() == 0.0 {
        Value::from(n as i64)
    } else {
        Value::from(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn payloads_are_checked_and_errors_say_where() {
        let schema = Schema::compile(&json!({
            "type": "object",
            "required": ["id", "amount"],
            "properties": {"id": {"type": "string"}, "amount": {"type": "integer", "minimum": 0}}
        }))
        .unwrap();
        assert!(schema.errors(&json!({"id": "in_1", "amount": 5})).is_empty());
        let errors = schema.errors(&json!({"id": 7, "amount": -1}));
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths.len(), 2, "{errors:?}");
        assert!(paths.contains(&"/id") && paths.contains(&"/amount"), "{errors:?}");
        let missing = schema.errors(&json!({}));
        assert!(missing.iter().any(|e| e.path.is_empty() && e.message.contains("amount")), "{missing:?}");
    }

    #[test]
    fn unusable_schemas_are_refused_and_nothing_is_fetched() {
        assert!(Schema::compile(&json!({"type": "no-such-type"})).is_err());
        assert!(Schema::compile(&json!({"$ref": "https://example.com/schema.json"})).is_err());
    }

    #[test]
    fn the_latest_version_is_the_highest_number() {
        let schemas = json!({"1": {"title": "one"}, "10": {"title": "ten"}, "2": {"title": "two"}});
        assert_eq!(latest(&schemas).unwrap()["title"], "ten");
        assert!(latest(&json!({})).is_none());
        assert!(latest(&Value::Null).is_none());
    }

    #[test]
    fn examples_are_taken_from_the_schema_or_built_to_match_it() {
        let given = json!({"type": "object", "examples": [{"id": "in_1"}]});
        assert_eq!(example(&given), json!({"id": "in_1"}));
        let schema = json!({
            "type": "object",
            "required": ["id", "amount", "status", "at", "lines"],
            "properties": {
                "id": {"type": "string", "minLength": 12},
                "amount": {"type": "integer", "minimum": 5},
                "ratio": {"type": "number", "exclusiveMinimum": 0.5},
                "status": {"enum": ["open", "paid"]},
                "at": {"type": "string", "format": "date-time"},
                "email": {"type": ["null", "string"], "format": "email"},
                "lines": {"type": "array", "minItems": 2, "items": {"$ref": "#/$defs/line"}},
                "owner": {"allOf": [{"$ref": "#/$defs/who"}, {"properties": {"team": {"const": "billing"}}}]}
            },
            "$defs": {
                "line": {"type": "object", "required": ["sku"], "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "default": 1}}},
                "who": {"type": "object", "properties": {"name": {"type": "string"}}}
            }
        });
        let built = example(&schema);
        assert!(Schema::compile(&schema).unwrap().errors(&built).is_empty(), "{built}");
        assert_eq!(built["status"], "open");
        assert_eq!(built["amount"], 5);
        assert_eq!(built["lines"].as_array().unwrap().len(), 2);
        assert_eq!(built["lines"][0], json!({"sku": "string", "qty": 1}));
        assert_eq!(built["owner"], json!({"name": "string", "team": "billing"}));
        assert_eq!(built["email"], "user@example.com");
    }

    #[test]
    fn a_schema_that_refers_to_itself_still_gives_a_bounded_example() {
        let schema = json!({"$ref": "#/$defs/node", "$defs": {"node": {"type": "object", "properties": {
            "child": {"$ref": "#/$defs/node"}, "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}}});
        let built = example(&schema);
        assert!(built.to_string().len() < 2 * MAX_EXAMPLE_BYTES);
        assert!(built["child"]["child"].is_object());
        assert_eq!(example(&json!(true)), Value::Null);
        // Copies of a large constant in nested arrays stay within the budget.
        let mut nested = json!({"const": "x".repeat(200_000)});
        for _ in 0..12 {
            nested = json!({"type": "array", "minItems": 3, "items": nested});
        }
        assert!(example(&nested).to_string().len() < 2 * MAX_EXAMPLE_BYTES);
        assert_eq!(example(&json!({})), json!({}));
    }
}
