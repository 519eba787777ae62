//! The one status vocabulary of runs and step runs, as stored in the `status`
//! TEXT columns (the values the migrations' CHECK constraints allow).
//!
//! A run is `running`, `succeeded`, `failed` or `interrupted`; a step run may
//! also be `cached` (its outputs reused from an earlier step run) or `skipped`
//! (never started: upstream failed or the run stopped).

use serde::{Deserialize, Serialize};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type,
)]
#[serde(rename_all = "lowercase")]
#[sqlx(rename_all = "lowercase")]
pub enum Status {
    Running,
    Succeeded,
    Cached,
    Failed,
    Skipped,
    Interrupted,
}

/// A status text that is not one of [`Status`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a status (running, succeeded, cached, failed, skipped or interrupted)")]
pub struct UnknownStatus(pub String);

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Running,
        Status::Succeeded,
        Status::Cached,
        Status::Failed,
        Status::Skipped,
        Status::Interrupted,
    ];

    /// The statuses a run can have.
    pub const RUN: [Status; 4] = [
        Status::Running,
        Status::Succeeded,
        Status::Failed,
        Status::Interrupted,
    ];

    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Succeeded => "succeeded",
            Status::Cached => "cached",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
            Status::Interrupted => "interrupted",
        }
    }

    /// A step run that ended without producing outputs (the runs list counts these).
    pub fn is_failure(self) -> bool {
        matches!(self, Status::Failed | Status::Interrupted)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad` so that `{:<11}` in tables aligns like the text it replaced.
        f.pad(self.as_str())
    }
}

impl std::str::FromStr for Status {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Status, UnknownStatus> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

impl TryFrom<&str> for Status {
    type Error = UnknownStatus;

    fn try_from(s: &str) -> Result<Status, UnknownStatus> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_round_trips_through_its_stored_text() {
        for s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>(), Ok(s));
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::json!(s.as_str())
            );
        }
        assert_eq!("done".parse::<Status>(), Err(UnknownStatus("done".into())));
        assert_eq!(format!("[{:<9}]", Status::Failed), "[failed   ]");
    }
}
