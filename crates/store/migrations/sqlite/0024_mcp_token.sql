-- Tokens for hookd's MCP server: an application's (it sees that application
-- only) or, with no application, the organisation's (a dashboard token). Found
-- by their hash; the token itself is never kept, only its last characters for
-- the censored form. They always expire, and are deleted when revoked.
CREATE TABLE mcp_token (
    org_id      TEXT NOT NULL,
    app_id      TEXT REFERENCES application(id) ON DELETE CASCADE,
    id          TEXT PRIMARY KEY,
    token_hash  TEXT NOT NULL UNIQUE,
    tail        TEXT NOT NULL,
    read_only   INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX mcp_token_owner ON mcp_token(org_id, app_id, id);
