-- Objects that `pedigree gc` removed on purpose. Lineage rows keep pointing at them
-- (the history stays whole); `verify` does not report them as missing, and a cache
-- entry whose outputs were collected is a plain miss.
CREATE TABLE collected (
    hash         TEXT PRIMARY KEY,
    collected_at TEXT NOT NULL
);
