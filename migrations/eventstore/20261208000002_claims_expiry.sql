-- Claims that expire (idempotency records, DESIGN.md §7) are swept by age, scope by scope,
-- and an erasure releases those made by the erased user's appends: both find them by
-- index rather than by scanning the table.
CREATE INDEX claims_scope_claimed_at ON claims (scope, claimed_at);
CREATE INDEX claims_scope_position ON claims (scope, position);

-- command-api kept a client's own transaction_id as a record in scope `idempotency`,
-- keyed SHA-256('transaction_id:' || the 16 bytes of the id). Those records keep a
-- transaction id unique for good, so they move to a scope of their own that never
-- expires; the records of Idempotency-Key headers stay and expire.
UPDATE claims
SET scope = 'transaction-id'
WHERE scope = 'idempotency'
  AND JSON_VALUE(payload, '$.body.transaction_id') IS NOT NULL
  AND claim_key = UNHEX(SHA2(CONCAT('transaction_id:',
        UNHEX(REPLACE(JSON_VALUE(payload, '$.body.transaction_id'), '-', ''))), 256));
