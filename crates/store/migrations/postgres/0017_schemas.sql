-- Event types may require messages to match their latest schema (docs/shaping.md).
ALTER TABLE event_type ADD COLUMN validate_payloads BOOLEAN NOT NULL DEFAULT FALSE;

-- A background task may make something (the event types' OpenAPI export).
ALTER TABLE background_task ADD COLUMN result TEXT;
