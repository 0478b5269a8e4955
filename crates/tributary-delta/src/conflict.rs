//! Tributary's own rules for a commit that lost the race against another
//! writer of the table (a Spark or delta-rs OPTIMIZE, a VACUUM, a user's
//! command, or another process of the same pipeline).
//!
//! Tributary does not rely on delta-rs' conflict checker: it lets a commit
//! through when the other commit's removes were `dataChange = false` (a
//! compaction), so an update batch planned on the older snapshot removed
//! files the compaction had already removed and added their rows again,
//! duplicating every row of them (issue 12). Tributary therefore commits with
//! delta-rs' retries switched off, so that any version collision comes back
//! as an error, and then reads the commits that landed since the snapshot the
//! plan was made on and judges them here:
//!
//! - when the plan stores this pipeline's position, a commit that also
//!   stores it (a `txn` action, or a Tributary note of the same app id other
//!   than a compaction or format-only one) means another process of the same
//!   pipeline writes the table: stop, never overwrite it. A compaction by
//!   `tributary optimize` of the same pipeline stores no position and is
//!   judged like any other writer's OPTIMIZE; a compaction plan (storing no
//!   position) is judged the same way against the pipeline's batches;
//! - a commit that removed (with or without `dataChange`) a file the plan
//!   removes or read, that touched any data file while the plan covers the
//!   whole table (TRUNCATE, reset, schema rewrite), that added data while the
//!   plan looked up stored rows by key, or that changed the metadata the plan
//!   replaces: re-plan the batch on the new snapshot;
//! - anything else (the plan only appends, or the other commit touched files
//!   the plan never looked at): commit the same actions at the next version.
//!
//! A metadata or protocol change by another writer is accepted when the table
//! still passes the writer's checks (`check_writable`, the schema), else the
//! table stops with one line naming the commit and the problem. Attempts are
//! bounded ([`MAX_ATTEMPTS`]) with a growing, jittered pause ([`backoff`]).

use crate::apply::{Plan, Planner};
use crate::commit::{CommitNote, COMMIT_INFO_KEY};
use crate::files::percent_decode;
use crate::DeltaError;
use deltalake::kernel::Action;
use deltalake::logstore::{get_actions, LogStore};
use deltalake::table::state::DeltaTableState;
use deltalake::DeltaTableError;
use std::collections::HashSet;
use std::time::Duration;

/// Most commit attempts of one batch (the first one included).
pub(crate) const MAX_ATTEMPTS: u32 = 10;

/// Makes a plan again on the table state after a conflicting commit (the
/// planner holds the reloaded file index).
pub(crate) type Replan<'a> = &'a (dyn Fn(&Planner<'_>, &DeltaTableState) -> Result<Plan, DeltaError> + Sync);

/// What one commit of another writer did, as far as a plan can depend on it.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Winner {
    pub version: i64,
    /// The commit info's operation (e.g. `OPTIMIZE`), or `unknown`.
    pub operation: String,
    /// Data files it removed (decoded paths), whatever their `dataChange`.
    pub removed: Vec<String>,
    /// Data files it added (decoded paths).
    pub added_paths: Vec<String>,
    /// True when one of its adds carries new rows (`dataChange = true`).
    pub added_data: bool,
    pub metadata: bool,
    pub protocol: bool,
    /// Its `txn` actions: (app id, version).
    pub txns: Vec<(String, i64)>,
    /// The app id of the Tributary note in its commit info, if it has one
    /// that stores a position (not a compaction or format-only commit).
    pub tributary_app: Option<String>,
}

impl Winner {
    /// Summarises the actions of commit `version`.
    pub fn from_actions(version: i64, actions: &[Action]) -> Self {
        let mut winner = Winner { version, operation: "unknown".into(), ..Winner::default() };
        for action in actions {
            match action {
                Action::Add(add) => {
                    winner.added_paths.push(percent_decode(&add.path));
                    winner.added_data |= add.data_change;
                }
                Action::Remove(remove) => winner.removed.push(percent_decode(&remove.path)),
                Action::Metadata(_) => winner.metadata = true,
                Action::Protocol(_) => winner.protocol = true,
                Action::Txn(txn) => winner.txns.push((txn.app_id.clone(), txn.version)),
                Action::CommitInfo(info) => {
                    if let Some(op) = &info.operation {
                        winner.operation = op.clone();
                    }
                    let note = info.info.get(COMMIT_INFO_KEY);
                    // A note this version cannot read counts as storing a position.
                    let format_only = note
                        .and_then(|n| serde_json::from_value::<CommitNote>(n.clone()).ok())
                        .is_some_and(|n| n.kind.is_upgrade());
                    winner.tributary_app = note
                        .filter(|_| !format_only)
                        .and_then(|note| note.get("app_id"))
                        .and_then(|app| app.as_str())
                        .map(str::to_string);
                }
                _ => {}
            }
        }
        winner
    }

    /// True when this commit writes the position of pipeline `app_id`.
    fn writes_position_of(&self, app_id: &str) -> bool {
        self.tributary_app.as_deref() == Some(app_id) || self.txns.iter().any(|(app, _)| app == app_id)
    }
}

/// The commits after `base` up to `latest`, oldest first. A commit file that
/// is missing (cleaned up already) is an error: nothing can be judged then.
pub(crate) async fn read_commits(
    log_store: &dyn LogStore,
    base: i64,
    latest: i64,
) -> Result<Vec<Winner>, DeltaTableError> {
    let mut winners = Vec::new();
    for version in base + 1..=latest {
        let Some(bytes) = log_store.read_commit_entry(version as u64).await? else {
            return Err(DeltaTableError::Generic(format!("commit {version} is missing from the log")));
        };
        winners.push(Winner::from_actions(version, &get_actions(version as u64, &bytes)?));
    }
    Ok(winners)
}

/// What to do with a plan that lost the race against `winners`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nothing the plan depends on changed: commit the same actions again.
    Retry,
    /// Make the plan again on the new snapshot, for this reason.
    Replan(String),
    /// Another writer did what this one must not paper over.
    Stop { version: i64, operation: String, problem: String },
}

/// Judges a plan against the commits that landed since it was made (see the
/// module docs); `position_of` is the pipeline whose position the plan's
/// commit stores (`None` for a compaction or a format-only commit).
pub(crate) fn judge(winners: &[Winner], plan: &Plan, position_of: Option<&str>) -> Verdict {
    let same_pipeline = |w: &&Winner| position_of.is_some_and(|app_id| w.writes_position_of(app_id));
    if let Some((w, app_id)) = winners.iter().find(same_pipeline).zip(position_of) {
        return Verdict::Stop {
            version: w.version,
            operation: w.operation.clone(),
            problem: format!(
                "also stores the position of pipeline {app_id}: another process of this pipeline writes the table; \
                 run one process per pipeline name (stop the other one, or give one of them another name or root)"
            ),
        };
    }
    let sets_metadata = plan.actions.iter().any(|a| matches!(a, Action::Metadata(_) | Action::Protocol(_)));
    let depends: HashSet<&str> = plan.removed.iter().chain(&plan.read).map(String::as_str).collect();
    for w in winners {
        let what = || format!("commit {} ({})", w.version, w.operation);
        if let Some(file) = w.removed.iter().find(|f| depends.contains(f.as_str())) {
            return Verdict::Replan(format!("{} removed {file}, which this batch read or rewrites", what()));
        }
        if plan.whole_table && (!w.added_paths.is_empty() || !w.removed.is_empty()) {
            return Verdict::Replan(format!("{} changed data files and this commit covers the whole table", what()));
        }
        if plan.reads_keys && w.added_data {
            return Verdict::Replan(format!("{} added rows, which may hold keys this batch changes", what()));
        }
        if sets_metadata && (w.metadata || w.protocol) {
            return Verdict::Replan(format!("{} changed the table metadata this commit replaces", what()));
        }
    }
    Verdict::Retry
}

/// A commit among `winners` that compacted an older snapshot: it adds no
/// rows (`dataChange = false` adds) yet removes data files that were no
/// longer active when it landed (`active_before`: the paths active at the
/// version before the first winner). Its new files then hold rows the table
/// already holds elsewhere (every row twice). A writer whose conflict check
/// ignores concurrent compactions commits such a thing: delta-rs 1.6's
/// `optimize.compact()` racing another compaction (seen with Tributary's own
/// automatic compaction on S3, 2026-12-05). Returns the commit and how many
/// of its removes were stale.
pub(crate) fn stale_compaction<'w>(
    winners: &'w [Winner],
    active_before: &HashSet<String>,
) -> Option<(&'w Winner, usize)> {
    let mut active = active_before.clone();
    for w in winners {
        let stale = w.removed.iter().filter(|path| !active.contains(path.as_str())).count();
        if stale > 0 && !w.added_data && !w.added_paths.is_empty() {
            return Some((w, stale));
        }
        for path in &w.removed {
            active.remove(path);
        }
        active.extend(w.added_paths.iter().cloned());
    }
    None
}

/// The pause before attempt `attempt` (2 = the first retry): none before the
/// first retry (a re-plan takes its own time), then 20 ms doubling up to 2 s,
/// each with up to 50 % jitter so that two writers do not collide in step.
pub(crate) fn backoff(attempt: u32) -> Duration {
    if attempt <= 2 {
        return Duration::ZERO;
    }
    let base = Duration::from_millis(20).saturating_mul(1 << (attempt - 3).min(10)).min(Duration::from_secs(2));
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    base + base.mul_f64(f64::from(nanos % 1000) / 2000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commit::{add_action, remove_action, remove_action_no_data_change, CommitKind};

    fn compaction(version: i64, removed: &[&str]) -> Winner {
        let mut actions: Vec<Action> = removed.iter().map(|p| remove_action_no_data_change(p, 10)).collect();
        let mut add = add_action("part-c.parquet", 10, "{}".into());
        if let Action::Add(a) = &mut add {
            a.data_change = false;
        }
        actions.push(add);
        Winner { operation: "OPTIMIZE".into(), ..Winner::from_actions(version, &actions) }
    }

    fn update_plan(removed: &[&str], read: &[&str]) -> Plan {
        Plan {
            actions: removed.iter().map(|p| remove_action(p, 10)).collect(),
            removed: removed.iter().map(|p| p.to_string()).collect(),
            read: read.iter().map(|p| p.to_string()).collect(),
            reads_keys: true,
            rewrites: !removed.is_empty(),
            ..Plan::default()
        }
    }

    #[test]
    fn a_compaction_of_a_file_the_batch_rewrites_or_read_forces_a_replan() {
        let w = compaction(5, &["a.parquet", "b.parquet"]);
        assert!(!w.added_data && w.removed.len() == 2);
        let plan = update_plan(&["a.parquet"], &["a.parquet"]);
        assert!(
            matches!(judge(std::slice::from_ref(&w), &plan, Some("p")), Verdict::Replan(r) if r.contains("commit 5 (OPTIMIZE)"))
        );
        let read_only = update_plan(&[], &["b.parquet", "x.parquet"]);
        assert!(matches!(judge(&[w], &read_only, Some("p")), Verdict::Replan(_)));
    }

    #[test]
    fn a_compaction_of_files_an_earlier_compaction_removed_is_stale() {
        let active: HashSet<String> = ["a.parquet", "b.parquet", "c.parquet"].map(String::from).into();
        let first = compaction(5, &["a.parquet", "b.parquet"]);
        // Built on the snapshot before commit 5: it removes a and b again.
        let second = compaction(6, &["a.parquet", "b.parquet"]);
        let winners = [first.clone(), second];
        let (w, stale) = stale_compaction(&winners, &active).expect("stale");
        assert_eq!((w.version, stale), (6, 2));
        // Compactions of active files, one after the other, are not.
        let of_the_first = compaction(7, &["part-c.parquet", "c.parquet"]);
        assert_eq!(stale_compaction(&[first.clone(), of_the_first], &active), None);
        // A remove of a file added by an earlier winner is of an active file.
        assert_eq!(stale_compaction(&[first], &active), None);
    }

    #[test]
    fn a_compaction_of_other_files_and_pure_appends_retry_as_they_are() {
        let w = compaction(5, &["c.parquet"]);
        assert_eq!(
            judge(std::slice::from_ref(&w), &update_plan(&["a.parquet"], &["a.parquet"]), Some("p")),
            Verdict::Retry
        );
        let append = Plan { actions: vec![add_action("new.parquet", 1, "{}".into())], ..Plan::default() };
        assert_eq!(judge(&[w], &append, Some("p")), Verdict::Retry);
        let user_append = Winner::from_actions(6, &[add_action("u.parquet", 1, "{}".into())]);
        assert_eq!(judge(std::slice::from_ref(&user_append), &append, Some("p")), Verdict::Retry);
        assert!(matches!(judge(&[user_append], &update_plan(&[], &["a.parquet"]), Some("p")), Verdict::Replan(_)));
    }

    #[test]
    fn whole_table_plans_replan_on_any_data_file_change() {
        let plan = Plan { whole_table: true, ..Plan::default() };
        assert!(matches!(judge(&[compaction(3, &["z.parquet"])], &plan, Some("p")), Verdict::Replan(_)));
        let metadata_only = Winner { metadata: true, ..Winner::default() };
        assert_eq!(judge(&[metadata_only], &plan, Some("p")), Verdict::Retry);
    }

    #[test]
    fn the_same_pipelines_position_written_by_someone_else_stops() {
        let txn = deltalake::kernel::Transaction::new("p", 42);
        let w = Winner::from_actions(7, &[Action::Txn(txn)]);
        let verdict = judge(&[w], &Plan::default(), Some("p"));
        assert!(matches!(&verdict, Verdict::Stop { version: 7, problem, .. } if problem.contains("pipeline p")));
        let other = Winner::from_actions(7, &[Action::Txn(deltalake::kernel::Transaction::new("q", 42))]);
        assert_eq!(judge(&[other], &Plan::default(), Some("p")), Verdict::Retry);
    }

    /// A commit of pipeline `app` with a Tributary note of `kind` (and its txn, if it stores a position).
    fn noted(version: i64, app: &str, kind: CommitKind, mut actions: Vec<Action>) -> Winner {
        let txn = (!kind.is_upgrade()).then_some(7);
        if let Some(v) = txn {
            actions.push(Action::Txn(deltalake::kernel::Transaction::new(app, v)));
        }
        let note = serde_json::to_value(CommitNote::new(app, kind, None, txn)).unwrap();
        actions.push(Action::CommitInfo(deltalake::kernel::CommitInfo {
            operation: Some("OPTIMIZE".into()),
            info: [(COMMIT_INFO_KEY.to_string(), note)].into_iter().collect(),
            ..Default::default()
        }));
        Winner::from_actions(version, &actions)
    }

    /// Regression (issue 15): `tributary optimize` beside `tributary run` of the
    /// same pipeline stopped the streaming table ("another process of this
    /// pipeline writes the table"), and its compactions failed the same way.
    #[test]
    fn a_compaction_by_another_process_of_the_same_pipeline_is_judged_like_any_optimize() {
        let removes = |paths: &[&str]| paths.iter().map(|p| remove_action_no_data_change(p, 10)).collect::<Vec<_>>();
        let optimize = noted(5, "p", CommitKind::Compaction, removes(&["a.parquet"]));
        assert_eq!(optimize.tributary_app, None, "a compaction stores no position");
        let batch = update_plan(&["a.parquet"], &["a.parquet"]);
        assert!(matches!(judge(std::slice::from_ref(&optimize), &batch, Some("p")), Verdict::Replan(_)));
        let elsewhere = update_plan(&["b.parquet"], &["b.parquet"]);
        assert_eq!(judge(&[optimize], &elsewhere, Some("p")), Verdict::Retry);

        // The compaction's side: the pipeline's batches store its position, which a compaction does not write.
        let streamed = noted(6, "p", CommitKind::Batch, removes(&["c.parquet"]));
        let compaction_plan = update_plan(&[], &["a.parquet", "c.parquet"]);
        assert!(matches!(judge(std::slice::from_ref(&streamed), &compaction_plan, None), Verdict::Replan(_)));
        // A batch of another process of the pipeline still stops a batch.
        assert!(matches!(judge(&[streamed], &batch, Some("p")), Verdict::Stop { version: 6, .. }));
    }

    #[test]
    fn backoff_grows_and_stays_bounded() {
        assert_eq!(backoff(2), Duration::ZERO);
        assert!(backoff(3) >= Duration::from_millis(20) && backoff(3) < Duration::from_millis(31));
        assert!(backoff(MAX_ATTEMPTS) <= Duration::from_secs(3));
        let total: Duration = (2..=MAX_ATTEMPTS).map(backoff).sum();
        assert!(total < Duration::from_secs(10), "{total:?}");
    }
}
