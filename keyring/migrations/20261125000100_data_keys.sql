-- One data key per subject (user), wrapped by a versioned master key.
-- Shredding sets wrapped and master_version to NULL and stamps shredded_at; the row
-- stays as a tombstone so an erased subject can never be given a new key.
CREATE TABLE data_keys (
    subject        BINARY(16)    NOT NULL PRIMARY KEY,
    master_version INT UNSIGNED  NULL,
    -- nonce (12 bytes) || AES-256-GCM ciphertext of the 32-byte key || tag (16 bytes)
    wrapped        VARBINARY(64) NULL,
    created_at     DATETIME(6)   NOT NULL,
    shredded_at    DATETIME(6)   NULL,
    INDEX data_keys_by_master_version (master_version),
    CONSTRAINT data_keys_live_or_shredded CHECK (
        (wrapped IS NOT NULL AND master_version IS NOT NULL AND shredded_at IS NULL)
        OR (wrapped IS NULL AND master_version IS NULL AND shredded_at IS NOT NULL)
    )
) ENGINE = InnoDB;
