-- Status tracking for inbound sources (crate::inbound): each object's furthest
-- status, and the object and status each request reported.

CREATE TABLE ingest_object (
    org_id     TEXT NOT NULL,
    source_id  TEXT NOT NULL,
    object_id  TEXT NOT NULL,
    status     TEXT NOT NULL,
    -- The status's step in the source's lifecycle: only a higher one replaces it.
    rank       INTEGER NOT NULL,
    -- The request that brought the status.
    request_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (source_id, object_id)
);
CREATE INDEX ingest_object_updated ON ingest_object(updated_at);

ALTER TABLE ingest_request ADD COLUMN object_id TEXT;
ALTER TABLE ingest_request ADD COLUMN object_status TEXT;
CREATE INDEX ingest_request_object ON ingest_request(source_id, object_id, id) WHERE object_id IS NOT NULL;
