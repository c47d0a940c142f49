-- Which node owns an endpoint's queue (decision 1: per-endpoint limits hold
-- across nodes). Taken when free or expired, renewed while the owner works.
CREATE TABLE endpoint_owner (
    endpoint_id  TEXT PRIMARY KEY REFERENCES endpoint(id) ON DELETE CASCADE,
    owner        TEXT NOT NULL,
    expires_at   INTEGER NOT NULL
);
