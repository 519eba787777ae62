//! Draining the outbox: the oldest events first, one at a time, each deleted once
//! the catalogue took it. A refusal (4xx) sets the event aside and goes on; a
//! failure that may pass (down, slow, 5xx, 429) stops the drain and backs the
//! event off, so the catalogue always sees a run's events in the order they
//! happened. Nothing is lost: what is not delivered stays queued for the next run
//! or `pedigree openlineage flush`.

use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::Settings;
use super::transport::{Client, Outcome};
use crate::lineage::{Db, LineageError};

/// Events leased at once.
const BATCH: usize = 64;
/// How long a lease outlives one delivery's timeout (a sender that died holding
/// events frees them after this).
const LEASE_MARGIN: Duration = Duration::from_secs(30);
/// How often a run's sender looks for new events.
const POLL: Duration = Duration::from_millis(200);
/// The first backoff, doubled per failed attempt up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What a drain did, and what is left.
#[derive(Debug, Clone, Default)]
pub struct Drained {
    pub delivered: usize,
    /// Set aside now (refused by the catalogue).
    pub rejected: usize,
    /// Left in the outbox: waiting, and set aside (all time).
    pub waiting: i64,
    pub rejected_total: i64,
    /// The newest error, if an attempt failed.
    pub error: Option<String>,
}

/// 200 ms doubling per attempt, capped at 30 s, with ±20% jitter so senders that
/// failed together do not retry together.
pub fn backoff(attempts: i64) -> Duration {
    let exp = attempts.clamp(1, 16) as u32 - 1;
    let base = FIRST_BACKOFF.saturating_mul(1 << exp).min(MAX_BACKOFF);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let jitter = 0.8 + 0.4 * (f64::from(nanos % 1000) / 1000.0);
    base.mul_f64(jitter)
}

/// Deliver what is queued, oldest first, until the outbox is empty, an attempt
/// fails for now, or `deadline` passes. `now` ignores the backoff of failed
/// events (an explicit flush).
pub async fn drain(
    db: &Db,
    settings: &Settings,
    client: &Client,
    now: bool,
    deadline: Option<Instant>,
) -> Result<Drained, LineageError> {
    let holder = crate::lineage::sender_id();
    let d = drain_as(&holder, db, settings, client, now, deadline).await;
    if d.is_err() {
        // Whatever went wrong, what this drain holds is free again.
        let _ = db.release_events(&holder).await;
    }
    d
}

async fn drain_as(
    holder: &str,
    db: &Db,
    settings: &Settings,
    client: &Client,
    now: bool,
    deadline: Option<Instant>,
) -> Result<Drained, LineageError> {
    let mut out = Drained::default();
    let late = || deadline.is_some_and(|d| Instant::now() >= d);
    'outer: while !late() {
        let batch = db
            .lease_events(holder, BATCH, settings.timeout + LEASE_MARGIN, now)
            .await?;
        if batch.is_empty() {
            break;
        }
        for (i, e) in batch.iter().enumerate() {
            let rest: Vec<i64> = batch[i + 1..].iter().map(|e| e.id).collect();
            if late() {
                db.release_events(holder).await?;
                break 'outer;
            }
            match settings
                .transport
                .deliver(client, &e.body, settings.timeout)
                .await
            {
                Outcome::Delivered => {
                    db.events_delivered(&[e.id]).await?;
                    out.delivered += 1;
                }
                Outcome::Rejected(error) => {
                    db.event_rejected(e.id, &error).await?;
                    out.rejected += 1;
                    out.error = Some(error);
                }
                Outcome::Transient { error, retry_after } => {
                    let wait = retry_after.unwrap_or_else(|| backoff(e.attempts));
                    db.event_failed(e.id, &error, wait, &rest).await?;
                    out.error = Some(error);
                    break 'outer;
                }
            }
        }
    }
    let counts = db.outbox_counts().await?;
    out.waiting = counts.waiting;
    out.rejected_total = counts.rejected;
    Ok(out)
}

/// A run's sender: delivers events in the background while the run records them.
pub struct Sender {
    db: Db,
    /// The id its leases carry.
    holder: String,
    stop: watch::Sender<Option<Instant>>,
    task: JoinHandle<Result<Drained, LineageError>>,
}

impl Sender {
    /// Start delivering `db`'s queued events (those of earlier runs too).
    pub fn start(db: Db, settings: Settings) -> Sender {
        let (stop, mut stopped) = watch::channel(None::<Instant>);
        let holder = crate::lineage::sender_id();
        let (handle, me) = (db.clone(), holder.clone());
        let task = tokio::spawn(async move {
            let client = Client::default();
            let mut total = Drained::default();
            loop {
                let d = drain_as(&me, &handle, &settings, &client, false, None).await?;
                total.absorb(d);
                tokio::select! {
                    _ = tokio::time::sleep(POLL) => {}
                    r = stopped.changed() => {
                        let deadline = r.ok().and_then(|_| *stopped.borrow());
                        // The run's last events (its end), within the grace given.
                        let d = drain_as(&me, &handle, &settings, &client, false, deadline).await?;
                        total.absorb(d);
                        return Ok(total);
                    }
                }
            }
        });
        Sender {
            db,
            holder,
            stop,
            task,
        }
    }

    /// Send what is left within `grace`, then stop: a delivery still under way
    /// is cut off. What was not sent stays queued; a problem of the sender itself
    /// is the report's error, never the run's.
    pub async fn finish(self, grace: Duration) -> Drained {
        let _ = self.stop.send(Some(Instant::now() + grace));
        let abort = self.task.abort_handle();
        let mut out = match tokio::time::timeout(grace, self.task).await {
            Ok(Ok(Ok(d))) => d,
            Ok(Ok(Err(e))) => Drained {
                error: Some(e.to_string()),
                ..Default::default()
            },
            Ok(Err(e)) => Drained {
                error: Some(format!("the sender stopped: {e}")),
                ..Default::default()
            },
            Err(_) => {
                abort.abort();
                Drained {
                    error: Some(format!(
                        "no answer within {}",
                        crate::util::fmt::human_duration(grace.as_secs_f64())
                    )),
                    ..Default::default()
                }
            }
        };
        // Nothing stays held by a sender that is gone.
        let _ = self.db.release_events(&self.holder).await;
        if let Ok(counts) = self.db.outbox_counts().await {
            out.waiting = counts.waiting;
            out.rejected_total = counts.rejected;
        }
        out
    }
}

impl Drained {
    fn absorb(&mut self, d: Drained) {
        self.delivered += d.delivered;
        self.rejected += d.rejected;
        self.waiting = d.waiting;
        self.rejected_total = d.rejected_total;
        if d.error.is_some() {
            self.error = d.error;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let b1 = backoff(1);
        assert!(b1 >= Duration::from_millis(160) && b1 <= Duration::from_millis(240));
        let b3 = backoff(3);
        assert!(b3 >= Duration::from_millis(640) && b3 <= Duration::from_millis(960));
        assert!(backoff(40) <= MAX_BACKOFF.mul_f64(1.2));
    }
}
