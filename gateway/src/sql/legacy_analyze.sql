-- Statistics for the batch just copied in (`--publish`, before legacy_insert.sql): that
-- insert joins the inserted rows back to the batch, and without statistics the planner
-- knows nothing of the temp table's size. Not measured separately (BENCHMARKS.md).
ANALYZE gw_legacy
