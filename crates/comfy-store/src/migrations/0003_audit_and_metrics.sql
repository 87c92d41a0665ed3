-- Audit log of tool calls (and refused share redemptions), queried by time, tool and client.
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    client TEXT,
    tool TEXT NOT NULL,
    argument_digest TEXT,
    outcome TEXT NOT NULL CHECK (outcome IN ('success', 'failure', 'denied', 'rate_limited')),
    duration_ms INTEGER NOT NULL,
    detail TEXT
);
CREATE INDEX audit_log_by_time ON audit_log (at);
CREATE INDEX audit_log_by_tool ON audit_log (tool, at);
CREATE INDEX audit_log_by_client ON audit_log (client, at);

-- Timings per finished job. No foreign key to jobs: metrics outlive pruned jobs.
CREATE TABLE job_metrics (
    job_id TEXT PRIMARY KEY NOT NULL,
    workflow TEXT,
    model TEXT,
    backend_id TEXT,
    succeeded INTEGER NOT NULL,
    queue_wait_ms INTEGER NOT NULL,
    execution_ms INTEGER NOT NULL,
    transfer_ms INTEGER NOT NULL,
    total_ms INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL
);
CREATE INDEX job_metrics_by_time ON job_metrics (recorded_at);
