-- Webhook subscriptions (API.md, "Webhooks"): named, each with its own checkpoint. Written
-- by command-api (create, pause, resume, delete) and by the webhook deliverer (its
-- progress: delivered_position, failures, last_error), never by anyone else.
--
-- The signing secret is 32 random bytes wrapped by the keyring's active master key
-- (AES-256-GCM, bound to `secret_subject`), like a user's data key: a dump of this table
-- does not give it away, and a master-key rotation rewraps it like any data key.
CREATE TABLE webhook_subscriptions (
    name               VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    url                VARCHAR(2048) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    -- JSON list of event-type patterns (RabbitMQ topic syntax).
    types              LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    secret_subject     BINARY(16) NOT NULL,
    secret_version     INT UNSIGNED NOT NULL,
    secret_wrapped     VARBINARY(128) NOT NULL,
    status             VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    -- Every event up to here was delivered (or did not match).
    delivered_position BIGINT UNSIGNED NOT NULL,
    -- Attempts of the next event that failed in a row, and why the last one did.
    failures           INT UNSIGNED NOT NULL DEFAULT 0,
    last_error         VARCHAR(512) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
    last_delivered_at  DATETIME(6) NULL,
    created_at         DATETIME(6) NOT NULL,
    updated_at         DATETIME(6) NOT NULL,
    PRIMARY KEY (name),
    CONSTRAINT webhook_types_json CHECK (json_valid(types)),
    CONSTRAINT webhook_status CHECK (status IN ('active', 'paused'))
) ENGINE = InnoDB;
