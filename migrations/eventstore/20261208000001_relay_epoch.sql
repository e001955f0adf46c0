-- Relay epochs (ADR 0013): one number per leadership term of a relay name, taken in the
-- database together with the lock. The relay that wins `GET_LOCK` increments `epoch` over
-- the lock's own connection before it publishes anything, and stamps the new value on
-- every message of its term (AMQP header and CloudEvents attribute `relayepoch`).
-- Consumers drop a message whose epoch is older than one they have seen, so a deposed
-- leader that has not noticed yet cannot interleave its term with the next one.
--
-- Only the lock holder writes the row (as for `position`), so the increment needs no
-- other coordination; a new row starts at epoch 1. Existing rows start at 0: the first
-- term after this migration is 1.
ALTER TABLE relay_checkpoints
    ADD COLUMN epoch BIGINT UNSIGNED NOT NULL DEFAULT 0 AFTER position;
