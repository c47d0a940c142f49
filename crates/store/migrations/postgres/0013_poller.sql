-- Polling endpoints (Svix's poller sinks): receivers that cannot accept
-- connections read an application's messages in pages instead.

-- A poller sink of an application: the messages it shows (event types,
-- channels, as an endpoint's fan-out), from `start_offset` (the log's end when
-- it was made) on.
CREATE TABLE poller_sink (
    org_id        TEXT COLLATE "C" NOT NULL,
    app_id        TEXT COLLATE "C" NOT NULL REFERENCES application(id) ON DELETE CASCADE,
    id            TEXT COLLATE "C" PRIMARY KEY,
    uid           TEXT COLLATE "C",
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    batch_size    INTEGER NOT NULL,
    max_wait_secs INTEGER NOT NULL,
    event_types   TEXT,
    channels      TEXT,
    metadata      TEXT NOT NULL DEFAULT '{}',
    start_offset  BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE UNIQUE INDEX poller_sink_uid ON poller_sink(app_id, uid) WHERE uid IS NOT NULL;
CREATE INDEX poller_sink_app ON poller_sink(app_id, id);

-- The messages of the applications that have a poller sink, each with its
-- offset (`seq`) once settled. Transactions on several nodes commit in any
-- order, so a number taken at insert could be committed behind one a reader
-- already passed. A row is numbered only once it is committed and seen, from
-- one sequence, by one settler at a time (an advisory lock): whatever commits
-- later is numbered later, so a reader past offset n has seen every message
-- before it. Readers settle before they read.
CREATE SEQUENCE poller_offset;
CREATE TABLE poller_log (
    id      BIGSERIAL PRIMARY KEY,
    seq     BIGINT UNIQUE,
    org_id  TEXT COLLATE "C" NOT NULL,
    app_id  TEXT COLLATE "C" NOT NULL,
    msg_id  TEXT COLLATE "C" NOT NULL UNIQUE REFERENCES message(id) ON DELETE CASCADE
);
CREATE INDEX poller_log_app ON poller_log(app_id, seq);
CREATE INDEX poller_log_unsettled ON poller_log(id) WHERE seq IS NULL;

-- Every way a message is made (the API, inbound sources, operational
-- webhooks) inserts it here, so the log is written in the same transaction
-- without the send path knowing. Once per statement: a batched insert of many
-- messages costs one call, and nothing more for applications without sinks.
CREATE FUNCTION hookd_poller_log_append() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO poller_log (org_id, app_id, msg_id)
    SELECT n.org_id, n.app_id, n.id FROM hookd_new_message n
    WHERE EXISTS (SELECT 1 FROM poller_sink s WHERE s.app_id = n.app_id)
    ORDER BY n.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER poller_log_append AFTER INSERT ON message
    REFERENCING NEW TABLE AS hookd_new_message
    FOR EACH STATEMENT EXECUTE FUNCTION hookd_poller_log_append();

-- A named reader of a sink: the last offset it is done with (`position`), the
-- furthest it was shown (`read_end`: a commit may not pass it), and the batch
-- leased to it, if any (up to `lease_end`, until `lease_until`).
CREATE TABLE poller_consumer (
    org_id       TEXT COLLATE "C" NOT NULL,
    sink_id      TEXT COLLATE "C" NOT NULL REFERENCES poller_sink(id) ON DELETE CASCADE,
    consumer_id  TEXT COLLATE "C" NOT NULL,
    position     BIGINT NOT NULL,
    read_end     BIGINT NOT NULL,
    lease_end    BIGINT,
    lease_until  BIGINT,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (sink_id, consumer_id)
);

-- Tokens that read one sink. Found by their hash; the token itself is kept
-- sealed (as endpoint secrets are), since the API shows the current one again.
CREATE TABLE poller_token (
    org_id      TEXT COLLATE "C" NOT NULL,
    app_id      TEXT COLLATE "C" NOT NULL,
    sink_id     TEXT COLLATE "C" NOT NULL REFERENCES poller_sink(id) ON DELETE CASCADE,
    id          TEXT COLLATE "C" PRIMARY KEY,
    token_hash  TEXT COLLATE "C" NOT NULL UNIQUE,
    token       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT
);
CREATE INDEX poller_token_sink ON poller_token(sink_id, id);
