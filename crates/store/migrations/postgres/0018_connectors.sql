-- Connectors (docs/integrations.md): named transformations an endpoint may use,
-- made by the organisation or from a preset. The fields are one JSON document.
CREATE TABLE connector (
    org_id     TEXT NOT NULL,
    id         TEXT PRIMARY KEY,
    uid        TEXT,
    spec       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX connector_uid ON connector(org_id, uid) WHERE uid IS NOT NULL;
CREATE INDEX connector_org ON connector(org_id, id);
