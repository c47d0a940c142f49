-- hookd schema, PostgreSQL. Times are Unix milliseconds (BIGINT) as in the SQLite
-- schema, so both backends share one model. Every row carries org_id.
--
-- Ids, names and every other key that lists page by are `COLLATE "C"`: lists
-- order and compare them byte by byte, as SQLite does, so ids (base62, sortable
-- as bytes) page in creation order whatever the database's default collation.

CREATE TABLE organization (
    id          TEXT COLLATE "C" PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE api_token (
    id          TEXT COLLATE "C" PRIMARY KEY,
    org_id      TEXT COLLATE "C" NOT NULL REFERENCES organization(id),
    token_hash  TEXT NOT NULL UNIQUE,
    app_id      TEXT COLLATE "C",
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT
);

CREATE TABLE application (
    org_id      TEXT COLLATE "C" NOT NULL,
    id          TEXT COLLATE "C" PRIMARY KEY,
    uid         TEXT COLLATE "C",
    name        TEXT NOT NULL,
    rate_limit  BIGINT,
    metadata    TEXT NOT NULL DEFAULT '{}',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX application_uid ON application(org_id, uid) WHERE uid IS NOT NULL;
CREATE INDEX application_org ON application(org_id, id);

CREATE TABLE event_type (
    org_id        TEXT COLLATE "C" NOT NULL,
    name          TEXT COLLATE "C" NOT NULL,
    description   TEXT NOT NULL,
    archived      BOOLEAN NOT NULL DEFAULT FALSE,
    deprecated    BOOLEAN NOT NULL DEFAULT FALSE,
    schemas       TEXT,
    feature_flags TEXT,
    group_name    TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (org_id, name)
);

CREATE TABLE endpoint (
    org_id          TEXT COLLATE "C" NOT NULL,
    app_id          TEXT COLLATE "C" NOT NULL REFERENCES application(id) ON DELETE CASCADE,
    id              TEXT COLLATE "C" PRIMARY KEY,
    uid             TEXT COLLATE "C",
    url             TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    version         INTEGER NOT NULL DEFAULT 1,
    disabled        BOOLEAN NOT NULL DEFAULT FALSE,
    event_types     TEXT,
    channels        TEXT,
    rate_limit      BIGINT,
    metadata        TEXT NOT NULL DEFAULT '{}',
    headers         TEXT NOT NULL DEFAULT '{}',
    secret          TEXT NOT NULL,
    retired_secrets TEXT NOT NULL DEFAULT '[]',
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE UNIQUE INDEX endpoint_uid ON endpoint(app_id, uid) WHERE uid IS NOT NULL;
CREATE INDEX endpoint_app ON endpoint(app_id, id);

-- Which node owns an endpoint's queue (decision 1: per-endpoint limits hold
-- across nodes). Taken when free or expired, renewed while the owner works.
CREATE TABLE endpoint_owner (
    endpoint_id  TEXT COLLATE "C" PRIMARY KEY REFERENCES endpoint(id) ON DELETE CASCADE,
    owner        TEXT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX endpoint_owner_owner ON endpoint_owner(owner);

CREATE TABLE message (
    org_id      TEXT COLLATE "C" NOT NULL,
    app_id      TEXT COLLATE "C" NOT NULL REFERENCES application(id) ON DELETE CASCADE,
    id          TEXT COLLATE "C" PRIMARY KEY,
    event_id    TEXT COLLATE "C",
    event_type  TEXT NOT NULL,
    channels    JSONB,
    tags        JSONB,
    payload     BYTEA,
    created_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX message_event_id ON message(app_id, event_id) WHERE event_id IS NOT NULL;
CREATE INDEX message_app ON message(app_id, id);

-- One message's delivery to one endpoint: the queue. BIGSERIAL never reuses an
-- id, since the dispatcher and a late outcome still know a deleted delivery by it.
CREATE TABLE delivery (
    id               BIGSERIAL PRIMARY KEY,
    org_id           TEXT COLLATE "C" NOT NULL,
    app_id           TEXT COLLATE "C" NOT NULL,
    msg_id           TEXT COLLATE "C" NOT NULL REFERENCES message(id) ON DELETE CASCADE,
    endpoint_id      TEXT COLLATE "C" NOT NULL REFERENCES endpoint(id) ON DELETE CASCADE,
    status           SMALLINT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT,
    lease_owner      TEXT,
    lease_expires_at BIGINT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE UNIQUE INDEX delivery_msg_endpoint ON delivery(msg_id, endpoint_id);
CREATE INDEX delivery_endpoint ON delivery(endpoint_id, msg_id);
-- The claim query reads only unfinished deliveries, in due order.
CREATE INDEX delivery_due ON delivery(next_attempt_at) WHERE next_attempt_at IS NOT NULL;

CREATE TABLE attempt (
    id                    TEXT COLLATE "C" PRIMARY KEY,
    org_id                TEXT COLLATE "C" NOT NULL,
    app_id                TEXT COLLATE "C" NOT NULL,
    msg_id                TEXT COLLATE "C" NOT NULL REFERENCES message(id) ON DELETE CASCADE,
    endpoint_id           TEXT COLLATE "C" NOT NULL REFERENCES endpoint(id) ON DELETE CASCADE,
    url                   TEXT NOT NULL,
    status                SMALLINT NOT NULL,
    response_status_code  INTEGER NOT NULL,
    response              TEXT NOT NULL,
    response_duration_ms  BIGINT NOT NULL,
    trigger_type          SMALLINT NOT NULL,
    created_at            BIGINT NOT NULL
);
CREATE INDEX attempt_msg ON attempt(msg_id, id);
CREATE INDEX attempt_endpoint ON attempt(endpoint_id, id);

CREATE TABLE idempotency (
    org_id        TEXT COLLATE "C" NOT NULL,
    method        TEXT NOT NULL,
    path          TEXT NOT NULL,
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    status        INTEGER NOT NULL,
    resource_id   TEXT,
    expires_at    BIGINT NOT NULL,
    PRIMARY KEY (org_id, method, path, key)
);
CREATE INDEX idempotency_expiry ON idempotency(expires_at);
