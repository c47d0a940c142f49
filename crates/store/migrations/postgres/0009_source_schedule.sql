-- Sources that run on a schedule (cron, poll): when each runs next, and what
-- its last run did (crate::inbound).

CREATE TABLE ingest_schedule (
    org_id      TEXT NOT NULL,
    source_id   TEXT PRIMARY KEY,
    -- When the next run is due (ms); a cron source's firing time.
    due_at      BIGINT NOT NULL,
    -- A node is running it until then; after that another may.
    lease_until BIGINT,
    last_run_at BIGINT,
    -- JSON: what the last run did.
    last_result TEXT
);
CREATE INDEX ingest_schedule_due ON ingest_schedule(due_at);
