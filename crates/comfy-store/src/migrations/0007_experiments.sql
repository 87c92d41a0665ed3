-- Experiments: variants of one generation run over the same seeds, and the judgements on them.
-- `definition` is the engine's JSON (base request, variants, seeds); the store keeps the counts
-- it checks judgements against.
CREATE TABLE experiments (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    definition TEXT NOT NULL,
    variant_count INTEGER NOT NULL CHECK (variant_count >= 2),
    seed_count INTEGER NOT NULL CHECK (seed_count >= 1),
    client TEXT,
    created_at INTEGER NOT NULL
) STRICT;

-- One run of one variant on one seed: the job that made it, or why it was not queued.
CREATE TABLE experiment_trials (
    experiment_id TEXT NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
    variant INTEGER NOT NULL,
    seed_index INTEGER NOT NULL,
    job_id TEXT,
    error TEXT,
    PRIMARY KEY (experiment_id, variant, seed_index)
) STRICT;

-- A judgement on one seed's trials: a choice between two variants, a tie, or a rating of one.
-- `source` is `person` or the name of an automatic measure.
CREATE TABLE experiment_judgements (
    id INTEGER PRIMARY KEY,
    experiment_id TEXT NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
    seed_index INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('choice', 'tie', 'rating')),
    first INTEGER NOT NULL,
    second INTEGER,
    score REAL,
    source TEXT NOT NULL,
    client TEXT,
    created_at INTEGER NOT NULL,
    CHECK ((kind = 'rating') = (score IS NOT NULL AND second IS NULL))
) STRICT;
CREATE INDEX experiment_judgements_by_experiment ON experiment_judgements (experiment_id, id);
