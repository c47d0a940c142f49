-- When hookd last raised each kind of alert about an application (a failure
-- or ingest spike): the conditional update that records one lets exactly one
-- node send it, and keeps a quiet period after it.
CREATE TABLE alert_state (
    org_id   TEXT NOT NULL,
    app_id   TEXT NOT NULL,
    kind     TEXT NOT NULL,
    fired_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, app_id, kind)
);
