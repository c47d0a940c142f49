-- Ordered endpoints: a delivery to one carries its ordering key (NULL for the
-- deliveries of unordered endpoints). Within (endpoint, key), a delivery is
-- sent only when no earlier one (a smaller id) is still waiting, leased or
-- paused; the ones queued behind it wait scheduled with no due time (parked)
-- until the one before them is done.

ALTER TABLE delivery ADD COLUMN order_key TEXT;
CREATE INDEX delivery_order ON delivery(endpoint_id, order_key, id)
    WHERE order_key IS NOT NULL AND state IN ('scheduled', 'leased', 'paused');
-- Whether a key has a delivery in flight.
CREATE INDEX delivery_order_leased ON delivery(endpoint_id, order_key, id)
    WHERE order_key IS NOT NULL AND state = 'leased';
