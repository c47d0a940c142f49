-- A delivery's lifecycle as an explicit state (hookd_core::DeliveryState),
-- replacing the status number and the lease columns that different code paths
-- overwrote. Every transition is one conditional UPDATE naming the state it
-- leaves; a leased delivery also carries a fencing token, bumped at each lease,
-- that its outcome must present.
CREATE TABLE delivery_v3 (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id           TEXT NOT NULL,
    app_id           TEXT NOT NULL,
    msg_id           TEXT NOT NULL REFERENCES message(id) ON DELETE CASCADE,
    endpoint_id      TEXT NOT NULL REFERENCES endpoint(id) ON DELETE CASCADE,
    state            TEXT NOT NULL
                     CHECK (state IN ('scheduled', 'leased', 'succeeded', 'failed', 'paused', 'canceled')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    -- When a scheduled delivery is due (kept while it is leased); NULL otherwise.
    due_at           INTEGER,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    lease_token      INTEGER NOT NULL DEFAULT 0,
    -- 1 when the next attempt is a manual one (resend, recover).
    next_trigger     INTEGER NOT NULL DEFAULT 0,
    -- A resend arrived while the delivery was leased: due again once its outcome is in.
    resend_pending   INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);

-- Old statuses: 0 success, 1 pending, 2 fail, 3 sending (retrying), 4 canceled.
-- Deliveries that disabling an endpoint canceled are given back: every delivery
-- still to be made to a disabled endpoint is paused, and one canceled by a
-- disable in the last 14 days is due now if the endpoint was enabled since (an
-- older one stays canceled rather than surprise a receiver months late). Leases are dropped:
-- whatever was in flight is due now.
INSERT INTO delivery_v3 (id, org_id, app_id, msg_id, endpoint_id, state, attempts, due_at, created_at, updated_at)
SELECT d.id, d.org_id, d.app_id, d.msg_id, d.endpoint_id,
       CASE
           WHEN d.status = 0 THEN 'succeeded'
           WHEN d.status = 2 THEN 'failed'
           WHEN d.status = 4 AND m.payload IS NULL THEN 'canceled'
           WHEN d.status = 4 AND d.updated_at < CAST(strftime('%s', 'now') AS INTEGER) * 1000 - 14 * 86400000 THEN 'canceled'
           WHEN e.disabled THEN 'paused'
           ELSE 'scheduled'
       END,
       d.attempts,
       CASE
           WHEN d.status IN (0, 2) THEN NULL
           WHEN d.status = 4 AND (m.payload IS NULL OR d.updated_at < CAST(strftime('%s', 'now') AS INTEGER) * 1000 - 14 * 86400000) THEN NULL
           WHEN e.disabled THEN NULL
           WHEN d.lease_owner IS NOT NULL THEN d.updated_at
           ELSE COALESCE(d.next_attempt_at, d.updated_at)
       END,
       d.created_at, d.updated_at
FROM delivery d
JOIN message m ON m.id = d.msg_id
JOIN endpoint e ON e.id = d.endpoint_id;

UPDATE sqlite_sequence SET seq = (SELECT seq FROM sqlite_sequence WHERE name = 'delivery')
WHERE name = 'delivery_v3' AND EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'delivery');
DROP TABLE delivery;
ALTER TABLE delivery_v3 RENAME TO delivery;

CREATE UNIQUE INDEX delivery_msg_endpoint ON delivery(msg_id, endpoint_id);
CREATE INDEX delivery_endpoint ON delivery(endpoint_id, msg_id);
-- The claim reads only due, scheduled deliveries: a poll costs the same however
-- many are leased (in flight) or finished.
CREATE INDEX delivery_due ON delivery(due_at, endpoint_id) WHERE state = 'scheduled';
-- Rescue reads only leased deliveries, oldest expiry first.
CREATE INDEX delivery_lease ON delivery(lease_expires_at) WHERE state = 'leased';
-- What waits for each endpoint, in due order: leasing an owned endpoint's due
-- deliveries, and pausing or resuming an endpoint, touch only these rows.
CREATE INDEX delivery_waiting ON delivery(endpoint_id, due_at) WHERE state IN ('scheduled', 'paused');

-- Counts changes to an endpoint, so nodes holding its deliveries see edits.
ALTER TABLE endpoint ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;

-- When a message's payload (and its attempts' response bodies) expires.
-- Messages stored before this migration keep theirs for the default 90 days.
ALTER TABLE message ADD COLUMN expires_at INTEGER NOT NULL DEFAULT 0;
UPDATE message SET expires_at = created_at + 90 * 86400000;
CREATE INDEX message_expiry ON message(expires_at) WHERE payload IS NOT NULL;

-- Background tasks (recover, replay): leased like deliveries, resumable from
-- their cursor.
CREATE TABLE background_task (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL,
    app_id           TEXT NOT NULL,
    endpoint_id      TEXT NOT NULL,
    kind             TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('running', 'finished', 'failed')),
    since            INTEGER NOT NULL,
    until            INTEGER NOT NULL,
    cursor           TEXT,
    messages_sent    INTEGER NOT NULL DEFAULT 0,
    error            TEXT,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    lease_token      INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX background_task_org ON background_task(org_id, id);
CREATE INDEX background_task_running ON background_task(lease_expires_at) WHERE status = 'running';
CREATE INDEX background_task_done ON background_task(updated_at) WHERE status <> 'running';
