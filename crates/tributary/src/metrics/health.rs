//! What `/healthz` and `/readyz` answer: whether the pipeline can still make
//! progress (the source reader runs, commits succeed, the process is not
//! shutting down) and which tables are stopped. The runner and the writers
//! report into one [`Health`] held by [`super::Metrics`]; the HTTP server
//! only reads it.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a due batch may wait for a successful commit before `/healthz`
/// fails, unless `[metrics] health_commit_stall_secs` says otherwise.
pub const DEFAULT_COMMIT_STALL: Duration = Duration::from_secs(120);

#[derive(Debug)]
struct State {
    /// Set once the pipeline cannot make progress any more (the source reader ended or failed).
    fatal: Option<String>,
    /// True from the moment the process starts shutting down.
    shutting_down: bool,
    /// Since when a due batch has been waiting for a successful commit.
    commit_waiting_since: Option<Instant>,
    /// The error of the last failed commit, cleared by a successful one.
    last_commit_error: Option<String>,
    /// Tables stopped by a schema change Delta cannot follow, with the reason.
    stopped_tables: BTreeMap<String, String>,
    commit_stall_bound: Duration,
}

/// The pipeline's health, shared by the runner, the writers and the HTTP server.
#[derive(Debug)]
pub struct Health(Mutex<State>);

impl Default for Health {
    fn default() -> Self {
        Health(Mutex::new(State {
            fatal: None,
            shutting_down: false,
            commit_waiting_since: None,
            last_commit_error: None,
            stopped_tables: BTreeMap::new(),
            commit_stall_bound: DEFAULT_COMMIT_STALL,
        }))
    }
}

impl Health {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How long a due batch may wait for a successful commit before the pipeline is unhealthy.
    pub fn set_commit_stall_bound(&self, bound: Duration) {
        self.state().commit_stall_bound = bound;
    }

    /// The pipeline cannot make progress any more (e.g. the source reader ended).
    pub fn set_fatal(&self, reason: impl Into<String>) {
        let mut state = self.state();
        state.fatal.get_or_insert_with(|| reason.into());
    }

    /// The process started shutting down.
    pub fn set_shutting_down(&self) {
        self.state().shutting_down = true;
    }

    /// A batch is due and waits for its commit (keeps the earliest moment).
    pub fn commit_waiting(&self) {
        self.state().commit_waiting_since.get_or_insert_with(Instant::now);
    }

    /// A commit failed with `error`; the batch still waits.
    pub fn commit_failed(&self, error: &str) {
        let mut state = self.state();
        state.commit_waiting_since.get_or_insert_with(Instant::now);
        state.last_commit_error = Some(error.to_string());
    }

    /// A batch committed: nothing waits any more.
    pub fn commit_succeeded(&self) {
        let mut state = self.state();
        state.commit_waiting_since = None;
        state.last_commit_error = None;
    }

    /// `table` is stopped for `reason` (a schema change Delta cannot follow).
    pub fn table_stopped(&self, table: &str, reason: &str) {
        self.state().stopped_tables.insert(table.to_string(), reason.to_string());
    }

    /// The stopped tables with their reasons, sorted by name.
    pub fn stopped_tables(&self) -> Vec<(String, String)> {
        self.state().stopped_tables.iter().map(|(t, r)| (t.clone(), r.clone())).collect()
    }

    /// `Ok` while the pipeline can make progress, else why not (one line).
    pub fn check(&self) -> Result<(), String> {
        let state = self.state();
        if let Some(reason) = &state.fatal {
            return Err(reason.clone());
        }
        if state.shutting_down {
            return Err("shutting down".into());
        }
        if let Some(since) = state.commit_waiting_since {
            let waited = since.elapsed();
            if waited > state.commit_stall_bound {
                let error = state.last_commit_error.as_deref().unwrap_or("no error: the commit has not been attempted");
                return Err(format!(
                    "no successful Delta commit for {} s (bound: metrics.health_commit_stall_secs = {}); last error: {error}",
                    waited.as_secs(),
                    state.commit_stall_bound.as_secs()
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_stall_beyond_the_bound_is_unhealthy_until_a_commit_succeeds() {
        let health = Health::default();
        health.set_commit_stall_bound(Duration::from_millis(20));
        assert_eq!(health.check(), Ok(()));
        health.commit_failed("conflict with another writer");
        assert_eq!(health.check(), Ok(()), "within the bound");
        std::thread::sleep(Duration::from_millis(40));
        let reason = health.check().unwrap_err();
        assert!(
            reason.contains("no successful Delta commit") && reason.contains("conflict with another writer"),
            "{reason}"
        );
        health.commit_succeeded();
        assert_eq!(health.check(), Ok(()));
    }

    #[test]
    fn a_fatal_reason_and_shutting_down_are_unhealthy_and_the_first_reason_stays() {
        let health = Health::default();
        health.set_fatal("the source stream ended unexpectedly");
        health.set_fatal("later");
        assert_eq!(health.check(), Err("the source stream ended unexpectedly".into()));
        let other = Health::default();
        other.set_shutting_down();
        assert_eq!(other.check(), Err("shutting down".into()));
    }
}
