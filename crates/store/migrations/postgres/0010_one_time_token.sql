-- One-time tokens: what an application portal link carries, exchanged once
-- (and soon) for a portal session made like the portal token it was issued with.

CREATE TABLE one_time_token (
    token_hash TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL,
    -- The portal token whose rights the session gets.
    token_id   TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX one_time_token_expires ON one_time_token(expires_at);
