-- Saved style presets: a prompt template with {prompt}, a negative prompt added to the caller's,
-- and generation settings (JSON) used where a request leaves them out.
CREATE TABLE styles (
    name TEXT PRIMARY KEY NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    prompt TEXT NOT NULL,
    negative_prompt TEXT NOT NULL DEFAULT '',
    settings TEXT NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
