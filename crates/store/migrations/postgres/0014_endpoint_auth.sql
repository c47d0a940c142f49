-- An endpoint's credentials towards its receiver (OAuth2 client, HTTP basic or
-- bearer), sealed like its headers; NULL when it has none.

ALTER TABLE endpoint ADD COLUMN auth TEXT;
