-- Which build of the read tables a checkpoint belongs to. `projector rebuild` swaps in
-- tables built afresh whose checkpoint rows carry the generation of the rows they
-- replace plus one, so a reader holding something read at (generation, position) knows
-- it is from other tables after a swap, even when the position is the same
-- (docs/adr/0015). Additive: live batches never write it.
ALTER TABLE checkpoints
    ADD COLUMN generation BIGINT UNSIGNED NOT NULL DEFAULT 0 AFTER position;
