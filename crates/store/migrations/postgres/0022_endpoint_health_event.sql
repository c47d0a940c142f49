-- Each change of an endpoint's health state (healthy, degraded, failing) as
-- its delivering node reported it, newest last.
CREATE TABLE endpoint_health_event (
    id          BIGSERIAL PRIMARY KEY,
    org_id      TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    state       TEXT NOT NULL,
    reason      TEXT NOT NULL,
    at          BIGINT NOT NULL
);
CREATE INDEX endpoint_health_event_ep ON endpoint_health_event(endpoint_id, id);
