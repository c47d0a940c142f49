-- Organisations (Svix environments) get a type and an update time; tokens get a
-- role, a name, portal capabilities and session, and the tail shown when censored.

ALTER TABLE organization ADD COLUMN env_type TEXT NOT NULL DEFAULT 'development';
ALTER TABLE organization ADD COLUMN updated_at BIGINT;
UPDATE organization SET updated_at = created_at;
-- JSON: the organisation's destination policy (https-only, allowed and blocked networks).
ALTER TABLE organization ADD COLUMN policy TEXT;
-- 1: the organisation's payloads and response bodies are sealed at rest.
ALTER TABLE organization ADD COLUMN encrypt_payloads INTEGER NOT NULL DEFAULT 0;
-- 1 for the default organisation (the server admin's), marked rather than
-- inferred from creation times, which another node's clock could disorder.
ALTER TABLE organization ADD COLUMN is_default INTEGER NOT NULL DEFAULT 0;
UPDATE organization SET is_default = 1 WHERE id = (SELECT id FROM organization ORDER BY created_at, id LIMIT 1);
CREATE UNIQUE INDEX organization_default ON organization(is_default) WHERE is_default = 1;

ALTER TABLE api_token ADD COLUMN name TEXT;
-- server | admin | read-only | portal
ALTER TABLE api_token ADD COLUMN role TEXT NOT NULL DEFAULT 'admin';
-- JSON array of AppPortalCapability names, for portal tokens.
ALTER TABLE api_token ADD COLUMN capabilities TEXT;
ALTER TABLE api_token ADD COLUMN session_id TEXT;
ALTER TABLE api_token ADD COLUMN tail TEXT;

-- Before organisations, every admin token could do everything: they stay server admins.
UPDATE api_token SET role = CASE WHEN app_id IS NULL THEN 'server' ELSE 'portal' END;
CREATE INDEX api_token_org ON api_token(org_id, id);
