-- Delivery control (docs/delivery.md). `control` holds an endpoint's own delivery
-- settings (retry schedule, concurrency cap) as JSON; `health` what the node
-- delivering to it last reported (circuit breaker, throttling) as JSON, written
-- without moving `revision`. An event type may carry its own retry schedule.
-- A message may be scheduled (`deliverAt`): its deliveries are due then. A
-- bulk replay task keeps its filters (JSON) in `params`.
ALTER TABLE endpoint ADD COLUMN control TEXT;
ALTER TABLE endpoint ADD COLUMN health TEXT;
ALTER TABLE event_type ADD COLUMN retry_schedule TEXT;
ALTER TABLE message ADD COLUMN deliver_at INTEGER;
ALTER TABLE background_task ADD COLUMN params TEXT;
