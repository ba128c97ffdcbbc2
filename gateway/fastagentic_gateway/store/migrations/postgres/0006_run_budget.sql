-- Run store schema, version 6: a run's budget and starting model hint (fastagentic_gateway.limits.budgets),
-- JSON, fixed when the run is accepted so every replica holds it to the same budget.
-- Never edit a migration that has shipped: add the next file instead.

ALTER TABLE fastagentic_runs ADD COLUMN budget BYTEA;
