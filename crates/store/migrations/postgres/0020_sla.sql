-- SLAs (docs/operations.md, "SLAs"): targets judged from the statistics
-- rollups; `state` is what the delivering nodes last judged, moved by a
-- conditional update so one node records (and announces) each change.
CREATE TABLE sla (
    org_id       TEXT NOT NULL,
    id           TEXT PRIMARY KEY,
    app_id       TEXT NOT NULL,
    spec         TEXT NOT NULL,
    state        TEXT NOT NULL DEFAULT 'unknown',
    state_since  BIGINT,
    figures      TEXT,
    evaluated_at BIGINT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX sla_org ON sla(org_id, id);
-- Each change of an SLA's state, newest last.
CREATE TABLE sla_event (
    org_id  TEXT NOT NULL,
    id      TEXT PRIMARY KEY,
    sla_id  TEXT NOT NULL,
    state   TEXT NOT NULL,
    figures TEXT NOT NULL,
    at      BIGINT NOT NULL
);
CREATE INDEX sla_event_sla ON sla_event(sla_id, id);
