-- Tokens for hookd's MCP server: an application's (it sees that application
-- only) or, with no application, the organisation's (a dashboard token). Found
-- by their hash; the token itself is never kept, only its last characters for
-- the censored form. They always expire, and are deleted when revoked.
CREATE TABLE mcp_token (
    org_id      TEXT COLLATE "C" NOT NULL,
    app_id      TEXT COLLATE "C" REFERENCES application(id) ON DELETE CASCADE,
    id          TEXT COLLATE "C" PRIMARY KEY,
    token_hash  TEXT COLLATE "C" NOT NULL UNIQUE,
    tail        TEXT NOT NULL,
    read_only   BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX mcp_token_owner ON mcp_token(org_id, app_id, id);
