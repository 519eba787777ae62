//! The cache side of the database: the newest successful step run of a key with
//! its outputs, object fingerprints (cheap "unchanged since checked"), the key
//! manifests that explain a stale step, and the stat cache of file hashes.

use sqlx::{FromRow, Row};

use super::{BEGIN, CacheEntry, Db, FileHashRow, LineageError, OutputRow, ReadDb, StepRunRow};
use crate::store::Fingerprint;

type Result<T> = std::result::Result<T, LineageError>;

#[derive(Debug, Clone, FromRow)]
struct LookupRow {
    step_run_id: i64,
    #[sqlx(flatten)]
    output: OutputRow,
}

#[derive(Debug, Clone, FromRow)]
struct KeyedLookupRow {
    step_key: String,
    #[sqlx(flatten)]
    row: LookupRow,
}

pub(super) const OUTPUT_COLUMNS: &str = "o.slot, o.name, o.artifact_hash, a.kind, a.media_type, a.is_tree, a.size, a.content_size, f.ino AS fp_ino, f.ctime_ns AS fp_ctime_ns";

impl ReadDb {
    /// [`Db::lookup`] for many keys in one query: the keys that have a cache entry.
    pub async fn lookup_many(
        &self,
        keys: &[String],
    ) -> Result<std::collections::HashMap<String, CacheEntry>> {
        let mut out: std::collections::HashMap<String, CacheEntry> =
            std::collections::HashMap::new();
        if keys.is_empty() {
            return Ok(out);
        }
        let sql = format!(
            "WITH k(key) AS (SELECT value FROM json_each(?1)),
                  latest(key, id) AS (SELECT k.key, (SELECT s.id FROM step_runs s WHERE s.step_key = k.key AND (s.status = 'succeeded' OR (s.status = 'cached' AND s.cached_from IS NULL)) ORDER BY s.id DESC LIMIT 1) FROM k)
             SELECT latest.key AS step_key, o.step_run_id, {OUTPUT_COLUMNS}
             FROM latest JOIN step_outputs o ON o.step_run_id = latest.id
             JOIN artifacts a ON a.hash = o.artifact_hash
             LEFT JOIN object_fingerprints f ON f.hash = o.artifact_hash
             ORDER BY latest.key, o.slot"
        );
        let keys_json = serde_json::to_string(keys).unwrap_or_else(|_| "[]".into());
        let rows: Vec<KeyedLookupRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(keys_json)
            .fetch_all(self.pool())
            .await?;
        for r in rows {
            out.entry(r.step_key)
                .or_insert_with(|| CacheEntry {
                    step_run_id: r.row.step_run_id,
                    outputs: Vec::new(),
                })
                .outputs
                .push(r.row.output);
        }
        Ok(out)
    }

    /// Which of `hashes` `remote` is known to hold.
    pub async fn remote_objects_known(
        &self,
        remote: &str,
        hashes: &[String],
    ) -> Result<std::collections::HashSet<String>> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT r.hash FROM json_each(?2) j JOIN remote_objects r ON r.remote = ?1 AND r.hash = j.value",
        )
        .bind(remote)
        .bind(super::hashes_json(hashes))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().collect())
    }

    /// The newest successful step run with `key`, with its outputs.
    pub async fn lookup(&self, key: &str) -> Result<Option<CacheEntry>> {
        Ok(self.lookup_many(&[key.to_owned()]).await?.remove(key))
    }

    pub async fn outputs_of(&self, step_run_id: i64) -> Result<Vec<OutputRow>> {
        let sql = format!(
            "SELECT {OUTPUT_COLUMNS} FROM step_outputs o JOIN artifacts a ON a.hash = o.artifact_hash
             LEFT JOIN object_fingerprints f ON f.hash = o.artifact_hash WHERE o.step_run_id = ? ORDER BY o.slot"
        );
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(step_run_id)
            .fetch_all(self.pool())
            .await?)
    }

    pub async fn inputs_of(&self, step_run_id: i64) -> Result<Vec<(String, String)>> {
        Ok(sqlx::query_as(
            "SELECT slot, artifact_hash FROM step_inputs WHERE step_run_id = ? ORDER BY slot",
        )
        .bind(step_run_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// The newest step run of `step` in `workflow` that has a key, with its manifest.
    pub async fn last_manifest(
        &self,
        workflow: &str,
        step: &str,
    ) -> Result<Option<(StepRunRow, String)>> {
        let row = sqlx::query(
            "SELECT s.id, m.manifest_json FROM step_runs s JOIN runs r ON r.id = s.run_id
             JOIN key_manifests m ON m.step_key = s.step_key
             WHERE r.workflow = ? AND s.step = ? AND s.status IN ('succeeded', 'cached')
             ORDER BY s.id DESC LIMIT 1",
        )
        .bind(workflow)
        .bind(step)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let id: i64 = row.try_get(0)?;
        let manifest: String = row.try_get(1)?;
        let sr = self.step_run(id).await?;
        Ok(sr.map(|s| (s, manifest)))
    }

    pub async fn manifest(&self, key: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT manifest_json FROM key_manifests WHERE step_key = ?")
                .bind(key)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    /// The whole stat cache, by absolute path.
    pub async fn file_hashes(&self) -> Result<std::collections::HashMap<String, FileHashRow>> {
        let rows: Vec<FileHashRow> = sqlx::query_as(
            "SELECT path, dev, ino, size, mtime_ns, ctime_ns, hash FROM file_hashes",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|r| (r.path.clone(), r)).collect())
    }
}

impl Db {
    pub async fn set_fingerprint(&self, hash: &str, fp: Fingerprint) -> Result<()> {
        self.write(
            sqlx::query(
                "INSERT OR REPLACE INTO object_fingerprints (hash, ino, ctime_ns) VALUES (?, ?, ?)",
            )
            .bind(hash)
            .bind(fp.ino as i64)
            .bind(fp.ctime_ns),
        )
        .await?;
        Ok(())
    }

    pub async fn put_file_hashes(&self, rows: &[FileHashRow]) -> Result<()> {
        let mut tx = self.pool().begin_with(BEGIN).await?;
        for r in rows {
            sqlx::query("INSERT OR REPLACE INTO file_hashes (path, dev, ino, size, mtime_ns, ctime_ns, hash) VALUES (?, ?, ?, ?, ?, ?, ?)")
                .bind(&r.path)
                .bind(r.dev)
                .bind(r.ino)
                .bind(r.size)
                .bind(r.mtime_ns)
                .bind(r.ctime_ns)
                .bind(&r.hash)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
