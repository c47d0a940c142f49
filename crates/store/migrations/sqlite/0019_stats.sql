-- Delivery statistics (docs/operations.md, "Statistics"): attempts rolled up
-- per application, endpoint, event type and time bucket, written with the
-- attempts. `width_ms` is the bucket's width (a minute, an hour or a day);
-- `latency` and `delivery` are sketches, JSON objects of bucket index to count.
CREATE TABLE stats_rollup (
    org_id          TEXT NOT NULL,
    app_id          TEXT NOT NULL,
    endpoint_id     TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    width_ms        INTEGER NOT NULL,
    bucket_start    INTEGER NOT NULL,
    attempts        INTEGER NOT NULL,
    success         INTEGER NOT NULL,
    fail_4xx        INTEGER NOT NULL,
    fail_5xx        INTEGER NOT NULL,
    fail_timeout    INTEGER NOT NULL,
    fail_connection INTEGER NOT NULL,
    fail_tls        INTEGER NOT NULL,
    fail_other      INTEGER NOT NULL,
    bytes           INTEGER NOT NULL,
    latency_sum_ms  INTEGER NOT NULL,
    latency_max_ms  INTEGER NOT NULL,
    latency         TEXT NOT NULL,
    delivery        TEXT NOT NULL,
    PRIMARY KEY (org_id, app_id, endpoint_id, event_type, width_ms, bucket_start)
) WITHOUT ROWID;
-- Reads are by application and time; the fold by width and time.
CREATE INDEX stats_rollup_app_time ON stats_rollup(org_id, app_id, bucket_start);
CREATE INDEX stats_rollup_fold ON stats_rollup(width_ms, bucket_start);
