-- The headers of each attempt's request (JSON object; credentials left out) and
-- of its response (JSON array of [name, value] pairs; NULL when none came back).
-- NULL for attempts made before this migration.

ALTER TABLE attempt ADD COLUMN sent_headers TEXT;
ALTER TABLE attempt ADD COLUMN response_headers TEXT;
