-- Delivery control (docs/delivery.md). `control` holds an endpoint's own delivery
-- settings (retry schedule, concurrency cap) as JSON; `health` what the node
-- delivering to it last reported (circuit breaker, throttling) as JSON, written
-- without moving `revision`. An event type may carry its own retry schedule.
ALTER TABLE endpoint ADD COLUMN control TEXT;
ALTER TABLE endpoint ADD COLUMN health TEXT;
ALTER TABLE event_type ADD COLUMN retry_schedule TEXT;
