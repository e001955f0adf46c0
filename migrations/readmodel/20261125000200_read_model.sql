-- The read model: tables the projector builds from the event log and query-api reads.
-- One writer (the projector); every row says the log position that last changed it.
-- `projector rebuild` creates `<table>_rebuild` copies with CREATE TABLE ... LIKE and
-- swaps them in with one RENAME TABLE, so these definitions are the only ones.
--
-- Ids are UUIDs as BINARY(16); times DATETIME(6) in UTC; personal data only as the
-- keyring's ciphertext (unreadable once the user's data key is shredded). Text columns
-- use their character set's default (non-binary) collation, so readers get strings;
-- `projector verify` compares them byte for byte all the same.

-- One row per registered user, as of the last event on their stream.
CREATE TABLE users_view (
    user_id                 BINARY(16) NOT NULL,
    email_ciphertext        TEXT CHARACTER SET utf8mb4 NULL,
    display_name_ciphertext TEXT CHARACTER SET utf8mb4 NULL,
    status                  VARCHAR(16) CHARACTER SET ascii NOT NULL,
    erased                  BOOL NOT NULL DEFAULT FALSE,
    -- the stream version (what `If-Match` compares), money events included
    version                 BIGINT UNSIGNED NOT NULL,
    created_at              DATETIME(6) NOT NULL,
    updated_at              DATETIME(6) NOT NULL,
    position                BIGINT UNSIGNED NOT NULL,
    PRIMARY KEY (user_id),
    -- "list users, newest first"
    KEY users_view_created (created_at, user_id),
    CONSTRAINT users_view_status CHECK (status IN ('active', 'deactivated'))
) ENGINE = InnoDB;

-- A user's money per currency, in minor units.
CREATE TABLE balances_view (
    user_id  BINARY(16) NOT NULL,
    currency CHAR(3) CHARACTER SET ascii NOT NULL,
    amount   BIGINT NOT NULL,
    position BIGINT UNSIGNED NOT NULL,
    PRIMARY KEY (user_id, currency)
) ENGINE = InnoDB;

-- One row per transaction. A transfer is two events (the payer's half, then the
-- payee's) and one row here, `position` being that of its first event; deposits and
-- withdrawals fill `user_id`, transfers `from_user_id` and `to_user_id`.
CREATE TABLE transactions_view (
    transaction_id BINARY(16) NOT NULL,
    type           VARCHAR(16) CHARACTER SET ascii NOT NULL,
    user_id        BINARY(16) NULL,
    from_user_id   BINARY(16) NULL,
    to_user_id     BINARY(16) NULL,
    amount         BIGINT NOT NULL,
    currency       CHAR(3) CHARACTER SET ascii NOT NULL,
    position       BIGINT UNSIGNED NOT NULL,
    recorded_at    DATETIME(6) NOT NULL,
    PRIMARY KEY (transaction_id),
    -- "a user's transactions, newest first": one index per role the user can play,
    -- each ending in position for the order and the cursor
    KEY transactions_view_user (user_id, position),
    KEY transactions_view_from (from_user_id, position),
    KEY transactions_view_to (to_user_id, position),
    -- "all transactions, newest first"
    KEY transactions_view_position (position),
    CONSTRAINT transactions_view_type CHECK (type IN ('deposit', 'withdrawal', 'transfer'))
) ENGINE = InnoDB;

-- How far each projection has applied the log: every event at or below `position`,
-- and nothing above it. Written in the same transaction as the rows it covers.
CREATE TABLE checkpoints (
    projection VARCHAR(64) CHARACTER SET ascii NOT NULL,
    position   BIGINT UNSIGNED NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    PRIMARY KEY (projection)
) ENGINE = InnoDB;

-- Events an operator told a projection to skip (`projector park --position N`): poison
-- that stopped it. Never swapped by a rebuild: a parked event stays parked.
CREATE TABLE parked_events (
    projection VARCHAR(64) CHARACTER SET ascii NOT NULL,
    position   BIGINT UNSIGNED NOT NULL,
    event_id   BINARY(16) NULL,
    event_type VARCHAR(200) CHARACTER SET ascii NULL,
    reason     TEXT CHARACTER SET utf8mb4 NOT NULL,
    parked_at  DATETIME(6) NOT NULL,
    PRIMARY KEY (projection, position)
) ENGINE = InnoDB;
