-- Delivery statistics (docs/operations.md, "Statistics"): attempts rolled up
-- per application, endpoint, event type and time bucket, written with the
-- attempts. `width_ms` is the bucket's width (a minute, an hour or a day);
-- `latency` and `delivery` are sketches, JSON objects of bucket index to count.
CREATE TABLE stats_rollup (
    org_id          TEXT NOT NULL,
    app_id          TEXT NOT NULL,
    endpoint_id     TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    width_ms        BIGINT NOT NULL,
    bucket_start    BIGINT NOT NULL,
    attempts        BIGINT NOT NULL,
    success         BIGINT NOT NULL,
    fail_4xx        BIGINT NOT NULL,
    fail_5xx        BIGINT NOT NULL,
    fail_timeout    BIGINT NOT NULL,
    fail_connection BIGINT NOT NULL,
    fail_tls        BIGINT NOT NULL,
    fail_other      BIGINT NOT NULL,
    bytes           BIGINT NOT NULL,
    latency_sum_ms  BIGINT NOT NULL,
    latency_max_ms  BIGINT NOT NULL,
    latency         JSONB NOT NULL,
    delivery        JSONB NOT NULL,
    PRIMARY KEY (org_id, app_id, endpoint_id, event_type, width_ms, bucket_start)
);
CREATE INDEX stats_rollup_app_time ON stats_rollup(org_id, app_id, bucket_start);
CREATE INDEX stats_rollup_fold ON stats_rollup(width_ms, bucket_start);

-- Two sketches added up, bucket by bucket.
CREATE OR REPLACE FUNCTION hookd_sketch_merge(a JSONB, b JSONB) RETURNS JSONB
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT COALESCE(jsonb_object_agg(k, n), '{}'::jsonb) FROM (
        SELECT k, SUM(v::bigint) AS n
        FROM (SELECT * FROM jsonb_each_text(a) UNION ALL SELECT * FROM jsonb_each_text(b)) x(k, v)
        GROUP BY k
    ) y
$$;
