-- The hash chain is guarded by the database, not only by the code that computes it
-- (ADR 0002, ADR 0012): every event names its predecessor's position *and hash*, and the
-- pair must be a row of the log. A writer that plans from a head the log does not hold
-- (a batch that believed its earlier attempt committed when another did, a process with
-- a stale idea of the head) is refused with 1452 instead of linking to a hash nobody
-- wrote. The composite key replaces the position-only key: the same waiting on an
-- uncommitted predecessor, the same refusal of a hole, and the hash as well.
-- (Separate statements: MariaDB cannot reference an index added in the same ALTER.)
ALTER TABLE events ADD UNIQUE KEY events_position_hash (position, hash);
ALTER TABLE events DROP FOREIGN KEY events_prev_position;
ALTER TABLE events DROP INDEX events_prev_position;
ALTER TABLE events ADD CONSTRAINT events_prev_hash FOREIGN KEY (prev_position, prev_hash)
    REFERENCES events (position, hash);
