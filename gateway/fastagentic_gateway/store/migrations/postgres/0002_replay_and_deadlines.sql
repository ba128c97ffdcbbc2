-- Run store schema, version 2: replays record where they come from; overdue runs are found by deadline.
-- Never edit a migration that has shipped: add the next file instead.

-- A replay (POST /v1/runs/{id}/replay): the run it replays and the checkpoint (its per-run id) it starts from.
ALTER TABLE fastagentic_runs ADD COLUMN replay_of TEXT COLLATE "C";
ALTER TABLE fastagentic_runs ADD COLUMN replay_checkpoint INTEGER;

-- overdue(): active runs past their deadline, earliest first (the reaper ends them timed_out).
CREATE INDEX fastagentic_runs_status_deadline ON fastagentic_runs (status, deadline_at)
    WHERE deadline_at IS NOT NULL;
