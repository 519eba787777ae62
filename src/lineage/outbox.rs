//! The OpenLineage outbox: each event is composed from the rows just written and
//! queued in the same transaction that records what it reports (a run beginning, a
//! step run starting, cached, finishing), so an event exists exactly when the change
//! it describes does. `catalogue` drains the queue; [`ReadDb::openlineage_events`]
//! composes the same events again for runs recorded earlier (`openlineage export`).
//!
//! Events are queued only while a [`Context`] is set on the handle
//! ([`Db::emit_openlineage`]): the catalogue is off by default.

use std::time::{Duration, SystemTime};

use sqlx::{Row, SqliteConnection};

use super::{BEGIN, Db, LineageError, ReadDb, time};
use crate::openlineage::{self, Context, DatasetFacts, EventType, RunFacts, StepFacts};

type Result<T> = std::result::Result<T, LineageError>;

/// An event waiting in the outbox.
#[derive(Debug, Clone)]
pub struct QueuedEvent {
    pub id: i64,
    pub body: String,
    /// Attempts so far, this one included.
    pub attempts: i64,
}

/// A new id for a sender's leases: `HOST/PID/UUID`, so a sender that died holding
/// events on this host is seen dead and its leases taken over at once.
pub fn sender_id() -> String {
    format!(
        "{}/{}/{}",
        super::hostname(),
        std::process::id(),
        openlineage::new_run_id()
    )
}

/// Whether the sender `holder` is a process of this host (`me`'s) that is gone.
fn sender_dead(holder: &str, me: &str) -> bool {
    let mut h = holder.splitn(3, '/');
    let mut m = me.splitn(3, '/');
    match (
        h.next(),
        h.next().and_then(|p| p.parse::<i64>().ok()),
        m.next(),
    ) {
        (Some(host), Some(pid), Some(mine)) => host == mine && !super::process_alive(pid),
        _ => false,
    }
}

/// How many events wait, and how many the catalogue refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    pub waiting: i64,
    pub rejected: i64,
}

fn json_col(text: Option<String>, what: &str) -> Result<Option<serde_json::Value>> {
    text.map(|t| {
        serde_json::from_str(&t).map_err(|source| LineageError::Json {
            what: what.to_owned(),
            source,
        })
    })
    .transpose()
}

/// The facts of run `run_id`.
pub(super) async fn run_facts(conn: &mut SqliteConnection, run_id: i64) -> Result<RunFacts> {
    let r = sqlx::query(
        "SELECT id, uuid, workflow, workflow_path, status, started_at, finished_at, git_commit, git_dirty, host, user FROM runs WHERE id = ?",
    )
    .bind(run_id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(RunFacts {
        id: r.try_get("id")?,
        uuid: r.try_get::<Option<String>, _>("uuid")?.unwrap_or_default(),
        workflow: r.try_get("workflow")?,
        workflow_path: r.try_get("workflow_path")?,
        status: r.try_get("status")?,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
        git_commit: r.try_get("git_commit")?,
        git_dirty: r.try_get("git_dirty")?,
        host: r.try_get("host")?,
        user: r.try_get("user")?,
    })
}

/// One data-step facet of step run `id` (a cache hit reads its producer's).
async fn facet_of(conn: &mut SqliteConnection, id: i64, name: &str) -> Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT json FROM facets WHERE step_run_id = ? AND name = ? AND artifact_hash IS NULL ORDER BY rowid LIMIT 1",
    )
    .bind(id)
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?)
}

/// The facts of step run `id`, and its run's id.
pub(super) async fn step_facts(conn: &mut SqliteConnection, id: i64) -> Result<(i64, StepFacts)> {
    let r = sqlx::query(
        "SELECT s.run_id, s.uuid, s.step, s.kind, s.status, s.reason, s.step_key, s.started_at, s.finished_at, s.error, s.cached_from, c.uuid AS cached_uuid, s.remote_source
         FROM step_runs s LEFT JOIN step_runs c ON c.id = s.cached_from WHERE s.id = ?",
    )
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    let run_id: i64 = r.try_get("run_id")?;
    let cached_from: Option<i64> = r.try_get("cached_from")?;
    let facts_from = cached_from.unwrap_or(id);
    // One query per side, the table named by a literal (no SQL built at run time).
    macro_rules! datasets {
        ($table:literal) => {
            concat!(
                "SELECT e.slot, e.artifact_hash, a.media_type, a.is_tree, a.content_size,
                    (SELECT path FROM run_inputs WHERE run_id = ?1 AND artifact_hash = e.artifact_hash ORDER BY name LIMIT 1) AS raw_path,
                    (SELECT f.json FROM step_outputs o JOIN facets f ON f.step_run_id = o.step_run_id
                      WHERE o.artifact_hash = e.artifact_hash AND o.slot = 'table' AND f.name = 'columns_after' ORDER BY f.rowid LIMIT 1) AS columns
                 FROM ", $table, " e JOIN artifacts a ON a.hash = e.artifact_hash
                 WHERE e.step_run_id = ?2 ORDER BY e.slot"
            )
        };
    }
    let mut sets = [Vec::new(), Vec::new()];
    for (i, (outputs, sql)) in [
        (false, datasets!("step_inputs")),
        (true, datasets!("step_outputs")),
    ]
    .into_iter()
    .enumerate()
    {
        let rows = sqlx::query(sql)
            .bind(run_id)
            .bind(id)
            .fetch_all(&mut *conn)
            .await?;
        for d in rows {
            sets[i].push(DatasetFacts {
                slot: d.try_get("slot")?,
                hash: d.try_get("artifact_hash")?,
                media_type: d.try_get("media_type")?,
                is_tree: d.try_get("is_tree")?,
                size: d.try_get::<i64, _>("content_size")?.max(0) as u64,
                // An output is never named as a raw input, even when its bytes equal one.
                raw_path: if outputs {
                    None
                } else {
                    d.try_get("raw_path")?
                },
                columns: json_col(d.try_get("columns")?, "a column summary")?,
            });
        }
    }
    let [inputs, outputs] = sets;
    let rows = json_col(facet_of(conn, facts_from, "rows").await?, "a rows facet")?;
    let columns_before = json_col(
        facet_of(conn, facts_from, "columns_before").await?,
        "a column summary",
    )?;
    let cached_uuid: Option<String> = r.try_get("cached_uuid")?;
    Ok((
        run_id,
        StepFacts {
            id,
            uuid: r.try_get::<Option<String>, _>("uuid")?.unwrap_or_default(),
            step: r.try_get("step")?,
            kind: r.try_get("kind")?,
            status: r.try_get("status")?,
            reason: r.try_get("reason")?,
            step_key: r.try_get("step_key")?,
            started_at: r.try_get("started_at")?,
            finished_at: r.try_get("finished_at")?,
            error: r.try_get("error")?,
            cached_from: cached_from.map(|c| (c, cached_uuid.unwrap_or_default())),
            remote_source: json_col(r.try_get("remote_source")?, "a remote source")?,
            inputs,
            outputs,
            rows,
            columns_before,
        },
    ))
}

async fn enqueue(
    conn: &mut SqliteConnection,
    run_id: i64,
    step_run_id: Option<i64>,
    event_type: EventType,
    body: &serde_json::Value,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO openlineage_outbox (run_id, step_run_id, event_type, body, created_at) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(run_id)
    .bind(step_run_id)
    .bind(event_type.as_str())
    .bind(body.to_string())
    .bind(time::now())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Queue the events of workflow run `run_id`.
pub(super) async fn queue_run(
    conn: &mut SqliteConnection,
    ctx: &Context,
    run_id: i64,
    event_type: EventType,
) -> Result<()> {
    let run = run_facts(conn, run_id).await?;
    let body = openlineage::run_event(ctx, &run, event_type);
    enqueue(conn, run_id, None, event_type, &body).await
}

/// Queue the events of step run `id`, in order.
pub(super) async fn queue_step(
    conn: &mut SqliteConnection,
    ctx: &Context,
    id: i64,
    events: &[EventType],
) -> Result<()> {
    let (run_id, step) = step_facts(conn, id).await?;
    let run = run_facts(conn, run_id).await?;
    for &e in events {
        let body = openlineage::step_event(ctx, &run, &step, e);
        enqueue(conn, run_id, Some(id), e, &body).await?;
    }
    Ok(())
}

/// Free leased events that were not attempted (their lease counted one attempt).
async fn release(conn: &mut SqliteConnection, ids: &[i64]) -> Result<()> {
    sqlx::query(
        "UPDATE openlineage_outbox SET leased_until = NULL, leased_by = NULL, attempts = attempts - 1 WHERE id IN (SELECT value FROM json_each(?))",
    )
    .bind(super::ids_json(ids))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Whether run `run_id` sends its events.
pub(super) async fn run_emits(conn: &mut SqliteConnection, run_id: i64) -> Result<bool> {
    Ok(
        sqlx::query_scalar::<_, bool>("SELECT openlineage != 0 FROM runs WHERE id = ?")
            .bind(run_id)
            .fetch_optional(&mut *conn)
            .await?
            .unwrap_or(false),
    )
}

impl Db {
    /// Queue OpenLineage events for what this handle records from now on.
    pub fn emit_openlineage(&self, ctx: Context) {
        let _ = self.openlineage.set(ctx);
    }

    /// Whether this handle queues OpenLineage events.
    pub fn emits_openlineage(&self) -> bool {
        self.openlineage.get().is_some()
    }

    /// The context events are composed with, when they are on.
    pub(super) fn openlineage(&self) -> Option<&Context> {
        self.openlineage.get()
    }

    /// Lease the head of the outbox: up to `n` events in id order, stopping at the
    /// first one another sender holds or (unless `now`) that waits out its backoff, so
    /// events are always delivered in the order they happened. Each leased event is
    /// held for `lease` (longer than one delivery attempt may take).
    pub async fn lease_events(
        &self,
        holder: &str,
        n: usize,
        lease: Duration,
        now: bool,
    ) -> Result<Vec<QueuedEvent>> {
        let at = time::now();
        let free = |leased: Option<String>, by: Option<String>, next: Option<String>| {
            let held = leased.is_some_and(|l| l > at)
                && !by.is_some_and(|b| b != holder && sender_dead(&b, holder));
            !(held || (!now && next.is_some_and(|t| t > at)))
        };
        // A read first: a sender polling an empty (or backing-off) queue takes no
        // write lock from the run it runs beside.
        let head: Option<(Option<String>, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT leased_until, leased_by, next_attempt_at FROM openlineage_outbox WHERE rejected_at IS NULL ORDER BY id LIMIT 1",
        )
        .fetch_optional(self.pool())
        .await?;
        if !head.is_some_and(|(l, b, n)| free(l, b, n)) {
            return Ok(Vec::new());
        }
        let mut tx = self.pool().begin_with(BEGIN).await?;
        let rows = sqlx::query(
            "SELECT id, body, attempts, leased_until, leased_by, next_attempt_at FROM openlineage_outbox
             WHERE rejected_at IS NULL ORDER BY id LIMIT ?",
        )
        .bind(n as i64)
        .fetch_all(&mut *tx)
        .await?;
        let mut out = Vec::new();
        for r in rows {
            let leased: Option<String> = r.try_get("leased_until")?;
            let by: Option<String> = r.try_get("leased_by")?;
            let next: Option<String> = r.try_get("next_attempt_at")?;
            if !free(leased, by, next) {
                break;
            }
            out.push(QueuedEvent {
                id: r.try_get("id")?,
                body: r.try_get("body")?,
                attempts: r.try_get::<i64, _>("attempts")? + 1,
            });
        }
        let until = time::format_time(SystemTime::now() + lease);
        sqlx::query(
            "UPDATE openlineage_outbox SET leased_until = ?1, leased_by = ?3, attempts = attempts + 1
             WHERE id IN (SELECT value FROM json_each(?2))",
        )
        .bind(&until)
        .bind(super::ids_json(&out.iter().map(|e| e.id).collect::<Vec<_>>()))
        .bind(holder)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(out)
    }

    /// The catalogue accepted these events: they leave the outbox.
    pub async fn events_delivered(&self, ids: &[i64]) -> Result<()> {
        self.write(
            sqlx::query(
                "DELETE FROM openlineage_outbox WHERE id IN (SELECT value FROM json_each(?))",
            )
            .bind(super::ids_json(ids)),
        )
        .await?;
        Ok(())
    }

    /// Delivering event `id` failed for now: free it, and try again no sooner than
    /// `retry_after` from now. The events leased after it are freed too (they wait
    /// their turn behind it).
    pub async fn event_failed(
        &self,
        id: i64,
        error: &str,
        retry_after: Duration,
        later: &[i64],
    ) -> Result<()> {
        let mut tx = self.pool().begin_with(BEGIN).await?;
        sqlx::query("UPDATE openlineage_outbox SET leased_until = NULL, leased_by = NULL, next_attempt_at = ?, last_error = ? WHERE id = ?")
            .bind(time::format_time(SystemTime::now() + retry_after))
            .bind(error)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        release(&mut tx, later).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Give back every event `holder` still leases (a drain out of time, or
    /// stopped in the middle of a delivery: that one may reach the catalogue twice,
    /// byte for byte the same).
    pub async fn release_events(&self, holder: &str) -> Result<()> {
        self.write(
            sqlx::query(
                "UPDATE openlineage_outbox SET leased_until = NULL, leased_by = NULL, attempts = max(attempts - 1, 0) WHERE leased_by = ?",
            )
            .bind(holder),
        )
        .await?;
        Ok(())
    }

    /// The catalogue refused event `id` (it answered that the event is wrong): it is
    /// kept with the answer, and no longer holds up the others.
    pub async fn event_rejected(&self, id: i64, error: &str) -> Result<()> {
        self.write(
            sqlx::query("UPDATE openlineage_outbox SET leased_until = NULL, leased_by = NULL, rejected_at = ?, last_error = ? WHERE id = ?")
                .bind(time::now())
                .bind(error)
                .bind(id),
        )
        .await?;
        Ok(())
    }

    /// Put refused events back in the queue (`openlineage flush --retry-rejected`).
    pub async fn retry_rejected_events(&self) -> Result<u64> {
        Ok(self
            .write(sqlx::query(
                "UPDATE openlineage_outbox SET rejected_at = NULL, next_attempt_at = NULL WHERE rejected_at IS NOT NULL",
            ))
            .await?
            .rows_affected())
    }
}

impl ReadDb {
    /// What the catalogue said when it refused the newest refused event.
    pub async fn refusal(&self) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT last_error FROM openlineage_outbox WHERE rejected_at IS NOT NULL ORDER BY id DESC LIMIT 1",
        )
        .fetch_optional(self.pool())
        .await?
        .flatten())
    }

    /// How many events wait in the outbox, and how many were refused.
    pub async fn outbox_counts(&self) -> Result<OutboxCounts> {
        let has: bool = sqlx::query_scalar(
            "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'openlineage_outbox'",
        )
        .fetch_one(self.pool())
        .await?;
        if !has {
            return Ok(OutboxCounts::default());
        }
        let (waiting, rejected): (i64, i64) = sqlx::query_as(
            "SELECT COALESCE(SUM(rejected_at IS NULL), 0), COALESCE(SUM(rejected_at IS NOT NULL), 0) FROM openlineage_outbox",
        )
        .fetch_one(self.pool())
        .await?;
        Ok(OutboxCounts { waiting, rejected })
    }

    /// Every OpenLineage event of the runs `run_ids` (all runs when empty), in the
    /// order they happened per run: the run's START, each step run's START and end,
    /// the run's end. The same events the outbox queued while they ran.
    pub async fn openlineage_events(
        &self,
        ctx: &Context,
        run_ids: &[i64],
    ) -> Result<Vec<serde_json::Value>> {
        let mut conn = self.pool().acquire().await?;
        let runs: Vec<i64> = if run_ids.is_empty() {
            sqlx::query_scalar("SELECT id FROM runs ORDER BY id")
                .fetch_all(&mut *conn)
                .await?
        } else {
            run_ids.to_vec()
        };
        let mut out = Vec::new();
        for run_id in runs {
            let run = run_facts(&mut conn, run_id).await?;
            out.push(openlineage::run_event(ctx, &run, EventType::Start));
            let steps: Vec<i64> =
                sqlx::query_scalar("SELECT id FROM step_runs WHERE run_id = ? ORDER BY id")
                    .bind(run_id)
                    .fetch_all(&mut *conn)
                    .await?;
            for id in steps {
                let (_, step) = step_facts(&mut conn, id).await?;
                out.push(openlineage::step_event(ctx, &run, &step, EventType::Start));
                if let Some(end) = EventType::terminal(&step.status) {
                    out.push(openlineage::step_event(ctx, &run, &step, end));
                }
            }
            if let Some(end) = EventType::terminal(&run.status) {
                out.push(openlineage::run_event(ctx, &run, end));
            }
        }
        Ok(out)
    }
}
