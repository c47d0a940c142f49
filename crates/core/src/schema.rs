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
}
