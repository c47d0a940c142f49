-- The audit trail: append-only, each entry's hash chained to the one before
-- (crates/store/src/audit.rs). `audit_head` holds the newest entry's seq and
-- hash, and where retention last cut the oldest end (so verification starts
-- there and still proves nothing after it was removed).
CREATE TABLE audit_log (
    seq        INTEGER PRIMARY KEY,
    org_id     TEXT NOT NULL,
    at         INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT NOT NULL,
    status     INTEGER NOT NULL,
    address    TEXT,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);
CREATE INDEX audit_org ON audit_log(org_id, seq);
CREATE TABLE audit_head (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    seq       INTEGER NOT NULL,
    hash      TEXT NOT NULL,
    cut_seq   INTEGER NOT NULL,
    cut_hash  TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash, cut_seq, cut_hash) VALUES (1, 0, 'genesis', 0, 'genesis');

-- A value sealed under the encryption key in use (crates/store/src/crypt.rs):
-- a node that cannot open it (no key, or another one) refuses to start rather
-- than fail on every secret, or write new ones in plain text.
CREATE TABLE crypt_marker (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    sealed  TEXT NOT NULL
);
