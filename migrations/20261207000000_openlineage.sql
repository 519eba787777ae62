-- OpenLineage (issue 13).
-- Every run and step run has a UUID (its OpenLineage run id), new rows a v7 one from
-- pedigree; rows recorded before this migration get a random (v4) one here.
ALTER TABLE runs ADD COLUMN uuid TEXT;
ALTER TABLE step_runs ADD COLUMN uuid TEXT;
UPDATE runs SET uuid = lower(
    hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-'
    || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))
WHERE uuid IS NULL;
UPDATE step_runs SET uuid = lower(
    hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-'
    || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))
WHERE uuid IS NULL;
CREATE UNIQUE INDEX runs_uuid ON runs (uuid);
CREATE UNIQUE INDEX step_runs_uuid ON step_runs (uuid);
-- Whether the run's events go to the catalogue (its START was queued): its later
-- events, written by whichever process ends or recovers it, follow.
ALTER TABLE runs ADD COLUMN openlineage INTEGER NOT NULL DEFAULT 0;

-- The outbox: each event is queued in the transaction that records the change it
-- reports, and deleted once the catalogue accepted it. Sent in id order; a sender
-- leases the head of the queue so two processes never send the same event at once.
CREATE TABLE openlineage_outbox (
    id              INTEGER PRIMARY KEY,
    run_id          INTEGER NOT NULL REFERENCES runs (id),
    step_run_id     INTEGER REFERENCES step_runs (id),
    event_type      TEXT    NOT NULL,
    body            TEXT    NOT NULL,
    created_at      TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    -- A sender (`leased_by`, its own random id) holds the event until then
    -- (RFC 3339); NULL when free.
    leased_until    TEXT,
    leased_by       TEXT,
    -- Not before then (backoff after a failed attempt).
    next_attempt_at TEXT,
    last_error      TEXT,
    -- The catalogue refused it (a 4xx): kept, reported, not retried by itself.
    rejected_at     TEXT
);
