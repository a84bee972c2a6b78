-- Statistics for the batch just copied in (`--publish`, before legacy_insert.sql): without them the planner guesses a few rows
-- and joins the inserted rows to the batch by nested loop, quadratic in the batch size
-- (a 1M-row import took 200 s instead of a few dozen).
ANALYZE gw_legacy
