-- The remote cache (issue 11).
-- A step run satisfied from a remote cache is `cached` with no `cached_from` (its
-- outputs, params and metrics are its own rows) and says where it came from here:
-- JSON with the remote, the trusted signer and the producer (host, user, run).
ALTER TABLE step_runs ADD COLUMN remote_source TEXT;
-- Which objects a remote is known to hold (uploaded or downloaded by this workspace),
-- so publishing skips them without asking, and the run path never lists the bucket.
CREATE TABLE remote_objects (
    remote TEXT NOT NULL,
    hash   TEXT NOT NULL,
    PRIMARY KEY (remote, hash)
) WITHOUT ROWID;
