-- The highest relay epoch each projection has accepted a message of (ADR 0013): a message
-- of an older epoch comes from a relay that lost its leadership and has not noticed yet,
-- and is dropped. Written by the projector in the transaction of the batch that raised
-- it, under the checkpoint row's lock, so a restart or a standby that takes over
-- remembers it.
--
-- Not one of the read tables a rebuild swaps (like `parked_events`): the epoch belongs
-- to the wire, not to the read model, and a rebuild must not make the projector forget
-- which terms are over.
CREATE TABLE relay_epochs_seen (
    projection VARCHAR(64) CHARACTER SET ascii NOT NULL,
    epoch      BIGINT UNSIGNED NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    PRIMARY KEY (projection)
) ENGINE = InnoDB;
