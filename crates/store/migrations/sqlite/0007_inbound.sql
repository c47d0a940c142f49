-- Inbound sources and the requests they received (crate::inbound).

CREATE TABLE ingest_source (
    org_id           TEXT NOT NULL,
    id               TEXT PRIMARY KEY,
    uid              TEXT,
    name             TEXT NOT NULL,
    kind             TEXT NOT NULL,
    -- JSON, sealed: the type's configuration with its secrets.
    config           TEXT NOT NULL,
    -- JSON: receiving settings (allowlist, limits, event id and type, answer).
    settings         TEXT NOT NULL,
    metadata         TEXT NOT NULL,
    -- The application the source's messages and ingest endpoints belong to.
    app_id           TEXT NOT NULL,
    -- The URL token, sealed, and its SHA-256 for lookups.
    token            TEXT NOT NULL,
    token_hash       TEXT NOT NULL UNIQUE,
    -- The token before the last rotation, accepted until prev_token_until.
    prev_token_hash  TEXT,
    prev_token_until INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE UNIQUE INDEX ingest_source_uid ON ingest_source(org_id, uid) WHERE uid IS NOT NULL;
CREATE INDEX ingest_source_org ON ingest_source(org_id, id);
CREATE INDEX ingest_source_prev ON ingest_source(prev_token_hash) WHERE prev_token_hash IS NOT NULL;

CREATE TABLE ingest_request (
    org_id      TEXT NOT NULL,
    id          TEXT PRIMARY KEY,
    source_id   TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    method      TEXT NOT NULL,
    -- The query string of the URL called, without '?'.
    query       TEXT NOT NULL,
    remote_addr TEXT,
    -- JSON: [[name, value], …]
    headers     TEXT NOT NULL,
    body        BLOB NOT NULL,
    -- accepted | duplicate | rejected
    outcome     TEXT NOT NULL,
    status_code INTEGER NOT NULL,
    error       TEXT,
    event_type  TEXT,
    event_id    TEXT,
    msg_id      TEXT,
    replay_of   TEXT
);
CREATE INDEX ingest_request_source ON ingest_request(source_id, id);
CREATE INDEX ingest_request_received ON ingest_request(received_at);
