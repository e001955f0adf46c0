-- Signed anchors (ADR 0017): the log's hash at a position, signed with an Ed25519 key the
-- database never sees, so a rewrite of the log with a recomputed chain cannot pass for the
-- original. `anchor` is the compact JWS (API.md, "Audit beyond the database"); position,
-- hash and recorded_at repeat what it signs, for listing and paging.
--
-- Written only by the anchor signer that holds the leadership lock `anchor:<db>:<name>`,
-- over the connection that holds it (like `relay_checkpoints`). This table is the
-- outbox of the `ledger.anchor.signed` messages: `event_id` is the CloudEvent id (the same
-- on a resend), `published_at` is set once the broker confirmed it.
--
-- No foreign key to `events`: an anchor is evidence about the log, not a part of it, and
-- must survive whatever is done to the rows it speaks of.
CREATE TABLE anchors (
    position     BIGINT UNSIGNED NOT NULL,
    hash         BINARY(32) NOT NULL,
    recorded_at  DATETIME(6) NOT NULL,
    kid          VARCHAR(100) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    anchor       TEXT CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    event_id     BINARY(16) NOT NULL,
    signed_at    DATETIME(6) NOT NULL,
    published_at DATETIME(6) NULL,
    PRIMARY KEY (position),
    UNIQUE KEY anchors_event_id (event_id),
    KEY anchors_unpublished (published_at, position)
) ENGINE = InnoDB;
