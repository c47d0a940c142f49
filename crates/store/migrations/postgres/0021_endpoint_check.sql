-- Endpoint checks (docs/operations.md, "Endpoint checks"): the last check of
-- each endpoint (DNS, TLS certificate, a signed test event) as JSON, with the
-- certificate's expiry for the daily re-check and when it was last warned of.
CREATE TABLE endpoint_check (
    org_id         TEXT NOT NULL,
    endpoint_id    TEXT PRIMARY KEY,
    app_id         TEXT NOT NULL,
    result         TEXT NOT NULL,
    cert_not_after BIGINT,
    checked_at     BIGINT NOT NULL,
    warned_at      BIGINT
);
CREATE INDEX endpoint_check_due ON endpoint_check(checked_at) WHERE cert_not_after IS NOT NULL;
