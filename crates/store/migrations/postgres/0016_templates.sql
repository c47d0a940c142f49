-- Payload templates (docs/shaping.md): a template is a named series of
-- immutable, numbered versions; an endpoint pins one version, or the latest.
CREATE TABLE template (
    org_id         TEXT COLLATE "C" NOT NULL,
    id             TEXT COLLATE "C" PRIMARY KEY,
    uid            TEXT COLLATE "C",
    name           TEXT NOT NULL,
    description    TEXT NOT NULL DEFAULT '',
    latest_version INTEGER NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE UNIQUE INDEX template_uid ON template(org_id, uid) WHERE uid IS NOT NULL;
CREATE INDEX template_org ON template(org_id, id);

CREATE TABLE template_version (
    org_id      TEXT COLLATE "C" NOT NULL,
    template_id TEXT COLLATE "C" NOT NULL REFERENCES template(id) ON DELETE CASCADE,
    version     INTEGER NOT NULL,
    format      TEXT NOT NULL,
    source      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (template_id, version)
);
