-- The event log. Append-only: the writer account has INSERT and SELECT on `events`,
-- never UPDATE or DELETE (granted by `cargo xtask migrate`, see docs/adr/0002).
--
-- Gapless, commit-ordered positions are enforced by the database itself (ADR 0002):
-- every event names its predecessor (`prev_position` = position - 1) through a foreign
-- key, so an event can only be inserted once its predecessor exists, and the key check
-- waits on an uncommitted predecessor until that transaction ends. Position N therefore
-- never becomes visible before N - 1. Stream versions are chained the same way.
CREATE TABLE events (
    position            BIGINT UNSIGNED NOT NULL,
    prev_position       BIGINT UNSIGNED NULL,
    event_id            BINARY(16) NOT NULL,
    stream_id           VARCHAR(200) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    stream_version      BIGINT UNSIGNED NOT NULL,
    prev_stream_version BIGINT UNSIGNED NULL,
    event_type          VARCHAR(200) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    schema_version      INT UNSIGNED NOT NULL,
    data                LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    metadata            LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    recorded_at         DATETIME(6) NOT NULL,
    prev_hash           BINARY(32) NOT NULL,
    hash                BINARY(32) NOT NULL,
    PRIMARY KEY (position),
    UNIQUE KEY events_event_id (event_id),
    UNIQUE KEY events_stream_version (stream_id, stream_version),
    CONSTRAINT events_prev_position FOREIGN KEY (prev_position)
        REFERENCES events (position),
    CONSTRAINT events_prev_stream_version FOREIGN KEY (stream_id, prev_stream_version)
        REFERENCES events (stream_id, stream_version),
    CONSTRAINT events_position_chain CHECK (
        (position = 1 AND prev_position IS NULL) OR prev_position = position - 1),
    CONSTRAINT events_version_chain CHECK (
        (stream_version = 1 AND prev_stream_version IS NULL)
        OR prev_stream_version = stream_version - 1),
    CONSTRAINT events_data_json CHECK (json_valid(data)),
    CONSTRAINT events_metadata_json CHECK (json_valid(metadata))
) ENGINE = InnoDB;

-- Unique claims made in the same transaction as an append: idempotency keys, unique
-- e-mail hashes, anything a caller needs to be unique across streams. A claim remembers
-- the last position of the append that made it, so a replayed request can be answered.
CREATE TABLE claims (
    scope      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    claim_key  VARBINARY(64) NOT NULL,
    payload    LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    position   BIGINT UNSIGNED NOT NULL,
    claimed_at DATETIME(6) NOT NULL,
    PRIMARY KEY (scope, claim_key),
    CONSTRAINT claims_payload_json CHECK (json_valid(payload))
) ENGINE = InnoDB;
