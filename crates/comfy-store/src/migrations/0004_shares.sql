-- Shares of a preset version by access code. Only a SHA-256 of the code is stored (the code has at
-- least 128 bits of entropy, so a leaked database does not leak usable codes) and only an argon2id
-- hash of the password.
CREATE TABLE preset_shares (
    id INTEGER PRIMARY KEY,
    code_hash TEXT NOT NULL UNIQUE,
    preset_id INTEGER NOT NULL REFERENCES presets (id) ON DELETE CASCADE,
    version_id TEXT NOT NULL,
    password_hash TEXT,
    created_by TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    max_uses INTEGER,
    use_count INTEGER NOT NULL DEFAULT 0,
    revoked_at INTEGER
);
CREATE INDEX preset_shares_by_preset ON preset_shares (preset_id);

-- Failed redemptions (wrong code or password) per client, for the rate limit; kept across restarts.
CREATE TABLE share_attempts (
    id INTEGER PRIMARY KEY,
    client TEXT NOT NULL,
    attempted_at INTEGER NOT NULL
);
CREATE INDEX share_attempts_by_client ON share_attempts (client, attempted_at);
