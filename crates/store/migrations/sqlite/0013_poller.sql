-- Polling endpoints (Svix's poller sinks): receivers that cannot accept
-- connections read an application's messages in pages instead.

-- A poller sink of an application: the messages it shows (event types,
-- channels, as an endpoint's fan-out), from `start_offset` (the log's end when
-- it was made) on.
CREATE TABLE poller_sink (
    org_id        TEXT NOT NULL,
    app_id        TEXT NOT NULL REFERENCES application(id) ON DELETE CASCADE,
    id            TEXT PRIMARY KEY,
    uid           TEXT,
    disabled      INTEGER NOT NULL DEFAULT 0,
    batch_size    INTEGER NOT NULL,
    max_wait_secs INTEGER NOT NULL,
    event_types   TEXT,
    channels      TEXT,
    metadata      TEXT NOT NULL DEFAULT '{}',
    start_offset  INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE UNIQUE INDEX poller_sink_uid ON poller_sink(app_id, uid) WHERE uid IS NOT NULL;
CREATE INDEX poller_sink_app ON poller_sink(app_id, id);

-- The messages of the applications that have a poller sink, each with its
-- offset (`seq`). One writer commits in order, and AUTOINCREMENT never hands
-- a number out twice (not even after the newest rows are deleted), so offsets
-- only grow in commit order: a reader past offset n has seen every message
-- logged before it, and none can be logged behind it later.
CREATE TABLE poller_log (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id  TEXT NOT NULL,
    app_id  TEXT NOT NULL,
    msg_id  TEXT NOT NULL UNIQUE REFERENCES message(id) ON DELETE CASCADE
);
CREATE INDEX poller_log_app ON poller_log(app_id, seq);

-- The trigger that feeds the log (`poller_log_append`) is made with the first
-- poller sink (see the store's poller.rs): until then a message insert runs no
-- trigger at all.

-- A named reader of a sink: the last offset it is done with (`position`), the
-- furthest it was shown (`read_end`: a commit may not pass it), and the batch
-- leased to it, if any (up to `lease_end`, until `lease_until`).
CREATE TABLE poller_consumer (
    org_id       TEXT NOT NULL,
    sink_id      TEXT NOT NULL REFERENCES poller_sink(id) ON DELETE CASCADE,
    consumer_id  TEXT NOT NULL,
    position     INTEGER NOT NULL,
    read_end     INTEGER NOT NULL,
    lease_end    INTEGER,
    lease_until  INTEGER,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (sink_id, consumer_id)
);

-- Tokens that read one sink. Found by their hash; the token itself is kept
-- sealed (as endpoint secrets are), since the API shows the current one again.
CREATE TABLE poller_token (
    org_id      TEXT NOT NULL,
    app_id      TEXT NOT NULL,
    sink_id     TEXT NOT NULL REFERENCES poller_sink(id) ON DELETE CASCADE,
    id          TEXT PRIMARY KEY,
    token_hash  TEXT NOT NULL UNIQUE,
    token       TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER
);
CREATE INDEX poller_token_sink ON poller_token(sink_id, id);
