-- Presets with git-like history. Contents are stored once per canonical-JSON hash; versions are
-- shared objects (a fork's history runs into its source's versions), and a preset is a named head.
CREATE TABLE preset_contents (
    hash TEXT PRIMARY KEY NOT NULL,
    content TEXT NOT NULL
);

CREATE TABLE preset_versions (
    id TEXT PRIMARY KEY NOT NULL,
    content_hash TEXT NOT NULL REFERENCES preset_contents (hash),
    message TEXT,
    created_at INTEGER NOT NULL
);

-- No foreign key on parent_id: history may begin at a version that is not stored here, like a
-- shallow clone (an imported bundle that left out old versions).
CREATE TABLE preset_version_parents (
    version_id TEXT NOT NULL REFERENCES preset_versions (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    parent_id TEXT NOT NULL,
    PRIMARY KEY (version_id, position)
);
CREATE INDEX preset_version_parents_by_parent ON preset_version_parents (parent_id);

CREATE TABLE presets (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT,
    head_version TEXT NOT NULL REFERENCES preset_versions (id),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    use_count INTEGER NOT NULL DEFAULT 0,
    last_used_at INTEGER
);

CREATE TABLE preset_tags (
    preset_id INTEGER NOT NULL REFERENCES presets (id) ON DELETE CASCADE,
    tag TEXT NOT NULL,
    PRIMARY KEY (preset_id, tag)
);
CREATE INDEX preset_tags_by_tag ON preset_tags (tag);

CREATE TABLE preset_version_tags (
    preset_id INTEGER NOT NULL REFERENCES presets (id) ON DELETE CASCADE,
    tag TEXT NOT NULL,
    version_id TEXT NOT NULL REFERENCES preset_versions (id),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (preset_id, tag)
);

CREATE TABLE preset_uses (
    id INTEGER PRIMARY KEY,
    preset_id INTEGER NOT NULL REFERENCES presets (id) ON DELETE CASCADE,
    version_id TEXT NOT NULL,
    client TEXT,
    used_at INTEGER NOT NULL
);
CREATE INDEX preset_uses_by_preset ON preset_uses (preset_id, used_at);
