-- Durable jobs: written before dispatch and on every state change, so a restart can reconcile them.
CREATE TABLE jobs (
    id TEXT PRIMARY KEY NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'submitted', 'running', 'succeeded', 'failed', 'cancelled')),
    workflow TEXT,
    client TEXT,
    priority INTEGER NOT NULL DEFAULT 0,
    backend_id TEXT,
    prompt_id TEXT,
    request TEXT NOT NULL,
    outputs TEXT,
    error TEXT,
    progress REAL NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    submitted_at INTEGER,
    started_at INTEGER,
    finished_at INTEGER,
    updated_at INTEGER NOT NULL
);

CREATE INDEX jobs_by_creation ON jobs (created_at);
CREATE INDEX jobs_unfinished ON jobs (created_at) WHERE state IN ('queued', 'submitted', 'running');
CREATE INDEX jobs_by_prompt ON jobs (backend_id, prompt_id);
