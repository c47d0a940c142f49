-- A delivery's lifecycle as an explicit state (hookd_core::DeliveryState),
-- replacing the status number and the lease columns that different code paths
-- overwrote. Every transition is one conditional UPDATE naming the state it
-- leaves; a leased delivery also carries a fencing token, bumped at each lease,
-- that its outcome must present.

-- The database's clock in Unix milliseconds: lease expiry and due times are
-- compared with it, never with a node's clock. `now()` is the transaction's
-- start, so one transaction sees one time; STABLE lets an index use it.
CREATE OR REPLACE FUNCTION hookd_now_ms() RETURNS BIGINT
    LANGUAGE sql STABLE AS $$ SELECT (extract(epoch FROM now()) * 1000)::bigint $$;

ALTER TABLE delivery
    ADD COLUMN state TEXT,
    ADD COLUMN due_at BIGINT,
    ADD COLUMN lease_token BIGINT NOT NULL DEFAULT 0,
    -- 1 when the next attempt is a manual one (resend, recover).
    ADD COLUMN next_trigger SMALLINT NOT NULL DEFAULT 0,
    -- A resend arrived while the delivery was leased: due again once its outcome is in.
    ADD COLUMN resend_pending BOOLEAN NOT NULL DEFAULT FALSE;

-- Old statuses: 0 success, 1 pending, 2 fail, 3 sending (retrying), 4 canceled.
-- Deliveries that disabling an endpoint canceled are given back: every delivery
-- still to be made to a disabled endpoint is paused, and one canceled by a
-- disable in the last 14 days is due now if the endpoint was enabled since (an
-- older one stays canceled rather than surprise a receiver months late). Leases are dropped:
-- whatever was in flight is due now (stop every node before migrating).
UPDATE delivery d SET
    state = CASE
        WHEN d.status = 0 THEN 'succeeded'
        WHEN d.status = 2 THEN 'failed'
        WHEN d.status = 4 AND m.payload IS NULL THEN 'canceled'
        WHEN d.status = 4 AND d.updated_at < hookd_now_ms() - 14 * 86400000::bigint THEN 'canceled'
        WHEN e.disabled THEN 'paused'
        ELSE 'scheduled'
    END,
    due_at = CASE
        WHEN d.status IN (0, 2) THEN NULL
        WHEN d.status = 4 AND (m.payload IS NULL OR d.updated_at < hookd_now_ms() - 14 * 86400000::bigint) THEN NULL
        WHEN e.disabled THEN NULL
        WHEN d.lease_owner IS NOT NULL THEN d.updated_at
        ELSE COALESCE(d.next_attempt_at, d.updated_at)
    END,
    lease_owner = NULL,
    lease_expires_at = NULL
FROM message m, endpoint e
WHERE m.id = d.msg_id AND e.id = d.endpoint_id;

ALTER TABLE delivery
    ALTER COLUMN state SET NOT NULL,
    ADD CONSTRAINT delivery_state
        CHECK (state IN ('scheduled', 'leased', 'succeeded', 'failed', 'paused', 'canceled'));
DROP INDEX delivery_due;
ALTER TABLE delivery DROP COLUMN status, DROP COLUMN next_attempt_at;

-- The claim reads only due, scheduled deliveries: a poll costs the same however
-- many are leased (in flight) or finished.
CREATE INDEX delivery_due ON delivery(due_at, endpoint_id) WHERE state = 'scheduled';
-- Rescue reads only leased deliveries, oldest expiry first.
CREATE INDEX delivery_lease ON delivery(lease_expires_at) WHERE state = 'leased';
-- What waits for each endpoint, in due order: leasing an owned endpoint's due
-- deliveries, and pausing or resuming an endpoint, touch only these rows.
CREATE INDEX delivery_waiting ON delivery(endpoint_id, due_at) WHERE state IN ('scheduled', 'paused');

-- Counts changes to an endpoint, so nodes holding its deliveries see edits.
ALTER TABLE endpoint ADD COLUMN revision BIGINT NOT NULL DEFAULT 0;

-- When a message's payload (and its attempts' response bodies) expires.
-- Messages stored before this migration keep theirs for the default 90 days.
ALTER TABLE message ADD COLUMN expires_at BIGINT;
UPDATE message SET expires_at = created_at + 90 * 86400000::bigint;
ALTER TABLE message ALTER COLUMN expires_at SET NOT NULL;
CREATE INDEX message_expiry ON message(expires_at) WHERE payload IS NOT NULL;

-- Background tasks (recover, replay): leased like deliveries, resumable from
-- their cursor.
CREATE TABLE background_task (
    id               TEXT COLLATE "C" PRIMARY KEY,
    org_id           TEXT COLLATE "C" NOT NULL,
    app_id           TEXT COLLATE "C" NOT NULL,
    endpoint_id      TEXT COLLATE "C" NOT NULL,
    kind             TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('running', 'finished', 'failed')),
    since            BIGINT NOT NULL,
    until            BIGINT NOT NULL,
    cursor           TEXT COLLATE "C",
    messages_sent    BIGINT NOT NULL DEFAULT 0,
    error            TEXT,
    lease_owner      TEXT,
    lease_expires_at BIGINT,
    lease_token      BIGINT NOT NULL DEFAULT 0,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX background_task_org ON background_task(org_id, id);
CREATE INDEX background_task_running ON background_task(lease_expires_at) WHERE status = 'running';
CREATE INDEX background_task_done ON background_task(updated_at) WHERE status <> 'running';

-- Every delivery row is written two to four times in its first seconds, so dead
-- versions pile up fast: vacuum these tables after 2% of their rows changed
-- rather than the default 20%, so the space is reused before the tables bloat.
ALTER TABLE delivery SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
ALTER TABLE attempt SET (autovacuum_vacuum_scale_factor = 0.05);
ALTER TABLE message SET (autovacuum_vacuum_scale_factor = 0.05);
