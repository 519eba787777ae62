-- The newest run that read an artifact as a raw input, by index instead of a scan: the
-- dashboard labels every raw input in a tree with it, and a config file read by every run
-- has one row per run. Replaces run_inputs_artifact (a prefix of this one).
CREATE INDEX run_inputs_artifact_run ON run_inputs (artifact_hash, run_id);
DROP INDEX run_inputs_artifact;
