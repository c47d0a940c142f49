-- The organisation's portal settings (Svix environment settings: theme,
-- logo, font, display name), as JSON; NULL: hookd's defaults.

ALTER TABLE organization ADD COLUMN portal_settings TEXT;
