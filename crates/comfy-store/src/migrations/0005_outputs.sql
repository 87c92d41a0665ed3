-- The outputs library: one row per produced file, with what made it, searchable by text (FTS5),
-- by perceptual hash (computed in Rust), by tags and by collections.
CREATE TABLE outputs (
    id INTEGER PRIMARY KEY,
    job_id TEXT,
    prompt_text TEXT NOT NULL DEFAULT '',
    parameters TEXT NOT NULL DEFAULT '{}',
    model TEXT,
    -- seed and perceptual_hash are u64 values stored as the i64 with the same bits.
    seed INTEGER,
    width INTEGER,
    height INTEGER,
    media_type TEXT NOT NULL,
    backend_id TEXT NOT NULL,
    filename TEXT NOT NULL,
    subfolder TEXT NOT NULL DEFAULT '',
    file_type TEXT NOT NULL DEFAULT 'output',
    perceptual_hash INTEGER,
    created_at INTEGER NOT NULL,
    UNIQUE (backend_id, file_type, subfolder, filename)
);
CREATE INDEX outputs_by_time ON outputs (created_at);
CREATE INDEX outputs_by_job ON outputs (job_id);

-- External-content index: the text lives once, in outputs; triggers keep the index in step.
CREATE VIRTUAL TABLE outputs_search USING fts5 (
    prompt_text,
    parameters,
    content = 'outputs',
    content_rowid = 'id',
    tokenize = 'porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER outputs_search_insert AFTER INSERT ON outputs BEGIN
    INSERT INTO outputs_search (rowid, prompt_text, parameters) VALUES (new.id, new.prompt_text, new.parameters);
END;
CREATE TRIGGER outputs_search_delete AFTER DELETE ON outputs BEGIN
    INSERT INTO outputs_search (outputs_search, rowid, prompt_text, parameters)
    VALUES ('delete', old.id, old.prompt_text, old.parameters);
END;
CREATE TRIGGER outputs_search_update AFTER UPDATE OF prompt_text, parameters ON outputs BEGIN
    INSERT INTO outputs_search (outputs_search, rowid, prompt_text, parameters)
    VALUES ('delete', old.id, old.prompt_text, old.parameters);
    INSERT INTO outputs_search (rowid, prompt_text, parameters) VALUES (new.id, new.prompt_text, new.parameters);
END;

CREATE TABLE output_tags (
    output_id INTEGER NOT NULL REFERENCES outputs (id) ON DELETE CASCADE,
    tag TEXT NOT NULL,
    PRIMARY KEY (output_id, tag)
);
CREATE INDEX output_tags_by_tag ON output_tags (tag);

CREATE TABLE collections (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT,
    created_at INTEGER NOT NULL
);

CREATE TABLE collection_outputs (
    collection_id INTEGER NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    output_id INTEGER NOT NULL REFERENCES outputs (id) ON DELETE CASCADE,
    added_at INTEGER NOT NULL,
    PRIMARY KEY (collection_id, output_id)
);
CREATE INDEX collection_outputs_by_output ON collection_outputs (output_id);
