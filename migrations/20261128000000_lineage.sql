-- The lineage database: runs, step runs, artifacts and the edges between them.
-- Times are RFC 3339 UTC strings; hashes are 64 lower-case hex digits.

CREATE TABLE runs (
    id            INTEGER PRIMARY KEY,
    workflow      TEXT    NOT NULL,
    workflow_path TEXT    NOT NULL,
    workflow_hash TEXT    NOT NULL,
    git_commit    TEXT,
    git_dirty     INTEGER,
    params_json   TEXT    NOT NULL,
    args_json     TEXT    NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted')),
    started_at    TEXT    NOT NULL,
    finished_at   TEXT,
    host          TEXT    NOT NULL,
    user          TEXT    NOT NULL,
    pid           INTEGER NOT NULL
);
CREATE INDEX runs_workflow ON runs (workflow, id);
CREATE INDEX runs_status ON runs (status);

CREATE TABLE key_manifests (
    step_key      TEXT PRIMARY KEY,
    manifest_json TEXT NOT NULL
);

CREATE TABLE step_runs (
    id          INTEGER PRIMARY KEY,
    run_id      INTEGER NOT NULL REFERENCES runs (id),
    step        TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    step_key    TEXT    REFERENCES key_manifests (step_key),
    status      TEXT    NOT NULL CHECK (status IN ('running', 'succeeded', 'cached', 'failed', 'skipped', 'interrupted')),
    reason      TEXT    NOT NULL,
    cached_from INTEGER REFERENCES step_runs (id),
    started_at  TEXT    NOT NULL,
    finished_at TEXT,
    error       TEXT,
    stderr_tail TEXT,
    log_hash    TEXT
);
CREATE INDEX step_runs_run ON step_runs (run_id, id);
CREATE INDEX step_runs_key ON step_runs (step_key, status, id);
CREATE INDEX step_runs_step ON step_runs (step, id);

CREATE TABLE artifacts (
    hash         TEXT PRIMARY KEY,
    kind         TEXT    NOT NULL,
    media_type   TEXT    NOT NULL,
    is_tree      INTEGER NOT NULL,
    size         INTEGER NOT NULL,
    content_size INTEGER NOT NULL,
    created_at   TEXT    NOT NULL
);

-- Where a raw workflow input came from, per run.
CREATE TABLE run_inputs (
    run_id        INTEGER NOT NULL REFERENCES runs (id),
    name          TEXT    NOT NULL,
    path          TEXT    NOT NULL,
    artifact_hash TEXT    NOT NULL REFERENCES artifacts (hash),
    PRIMARY KEY (run_id, name)
);
CREATE INDEX run_inputs_artifact ON run_inputs (artifact_hash);
CREATE INDEX run_inputs_path ON run_inputs (path);

CREATE TABLE step_inputs (
    step_run_id   INTEGER NOT NULL REFERENCES step_runs (id),
    slot          TEXT    NOT NULL,
    artifact_hash TEXT    NOT NULL REFERENCES artifacts (hash),
    PRIMARY KEY (step_run_id, slot)
);
CREATE INDEX step_inputs_artifact ON step_inputs (artifact_hash);

CREATE TABLE step_outputs (
    step_run_id   INTEGER NOT NULL REFERENCES step_runs (id),
    slot          TEXT    NOT NULL,
    artifact_hash TEXT    NOT NULL REFERENCES artifacts (hash),
    name          TEXT    NOT NULL,
    PRIMARY KEY (step_run_id, slot)
);
CREATE INDEX step_outputs_artifact ON step_outputs (artifact_hash);

CREATE TABLE params (
    step_run_id INTEGER NOT NULL REFERENCES step_runs (id),
    key         TEXT    NOT NULL,
    value_json  TEXT    NOT NULL,
    PRIMARY KEY (step_run_id, key)
);

CREATE TABLE metrics (
    step_run_id INTEGER NOT NULL REFERENCES step_runs (id),
    key         TEXT    NOT NULL,
    value       REAL    NOT NULL,
    step        INTEGER
);
CREATE INDEX metrics_step_run ON metrics (step_run_id, key);

CREATE TABLE facets (
    step_run_id   INTEGER NOT NULL REFERENCES step_runs (id),
    artifact_hash TEXT REFERENCES artifacts (hash),
    name          TEXT NOT NULL,
    json          TEXT NOT NULL
);
CREATE INDEX facets_step_run ON facets (step_run_id);

CREATE TABLE releases (
    name          TEXT    NOT NULL,
    version       INTEGER NOT NULL,
    run_id        INTEGER NOT NULL REFERENCES runs (id),
    artifact_hash TEXT    NOT NULL REFERENCES artifacts (hash),
    created_at    TEXT    NOT NULL,
    PRIMARY KEY (name, version)
);

-- Stat cache for hashing workspace files: an unchanged file is not re-read.
CREATE TABLE file_hashes (
    path     TEXT PRIMARY KEY,
    dev      INTEGER NOT NULL,
    ino      INTEGER NOT NULL,
    size     INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    hash     TEXT    NOT NULL
);

-- Identity of each object file when it was last verified (see store::Fingerprint).
CREATE TABLE object_fingerprints (
    hash     TEXT PRIMARY KEY,
    ino      INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL
);
