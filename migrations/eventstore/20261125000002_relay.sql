-- The relay's progress through the log, one row per relay name: the last position whose
-- publish, and that of every earlier position, the broker confirmed. A relay resumes
-- after it (at-least-once: what was published but not yet recorded here is sent again).
--
-- Written only by the relay that holds the leadership lock `GET_LOCK` for its name, and
-- only over the connection that holds the lock, so a relay that lost the lock cannot
-- move the checkpoint. The relay's account needs SELECT, INSERT, UPDATE here and SELECT
-- on `events` (`event_store::relay::grant_relay`).
CREATE TABLE relay_checkpoints (
    name       VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    position   BIGINT UNSIGNED NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    PRIMARY KEY (name)
) ENGINE = InnoDB;
