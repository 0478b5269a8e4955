//! A source transaction too large to hold in memory, applied to one table
//! in parts that stay invisible until its last part commits.
//!
//! Why parts and not a spill file: a Delta data file is invisible to every
//! reader until a committed `add` names it, and one commit may carry any
//! number of actions. So each part is planned and its data, change-data and
//! deletion-vector files are written as it arrives (memory holds one part),
//! and only the actions are kept here; the transaction's last part is
//! committed together with all of them and the position (txn action) in one
//! Delta commit. The transaction still lands atomically per table, and its
//! change feed is exactly what one commit of the whole transaction would
//! have written (each part writes the change rows of its own changes).
//!
//! Later parts must see what earlier parts did: the writer's file index is
//! kept as an overlay (files removed by a part leave it, files a part added
//! or marked enter it), so a key touched again is looked up in the file
//! that holds it now, committed or not. Merging the parts' actions keeps one
//! action per path:
//! - a committed file removed by several parts keeps its first `remove` (the
//!   one that matches the committed state); its latest `add` (carrying the
//!   merged deletion vector) replaces earlier ones;
//! - a file written by an earlier part and rewritten by a later one
//!   (copy-on-write) is dropped from the actions and deleted from storage at
//!   once; one marked by a later part (deletion vectors) keeps only its
//!   latest `add`, which carries the vector.
//!
//! Nothing here is durable before the final commit: after a crash, the
//! table holds none of the transaction, the source sends it again from the
//! table's position, and the written files are orphans no `add` names
//! (vacuum deletes them). A commit overtaken by another writer is committed
//! again when nothing it read changed; it cannot be re-planned (the earlier
//! parts' changes are gone from memory), so such a conflict abandons the
//! parts and fails with [`crate::DeltaError::State`]: the pipeline reads the
//! transaction again from the source.

use crate::apply::Plan;
use crate::commit::CommitMetrics;
use crate::files::FileEntry;
use deltalake::kernel::{Action, Add, Remove};
use std::collections::{BTreeMap, BTreeSet};

/// The parts of one source transaction applied to a table but not committed.
#[derive(Debug)]
pub(crate) struct OpenParts {
    /// The txn version of the position every part's rows carry (where the
    /// transaction began): the table's committed version must stay below it.
    pub rows_version: i64,
    /// Parts absorbed so far.
    pub parts: usize,
    /// Data files this transaction adds, by path: the latest `add` of each and its index entry.
    adds: BTreeMap<String, (Add, Option<FileEntry>)>,
    /// Committed data files the transaction removes (or replaces with a
    /// deletion vector), by path: the first `remove`, matching the committed state.
    removes: BTreeMap<String, Remove>,
    /// Change-data files and any other action, in order.
    others: Vec<Action>,
    /// Data files written by earlier parts and rewritten by later ones: no
    /// action names them, but the file index (the overlay) must drop them.
    superseded: Vec<String>,
    /// Every file the parts wrote that is still needed by the actions above
    /// (plus deletion-vector files a later part superseded: left as orphans).
    written: Vec<String>,
    /// Data files read to look up stored rows.
    read: BTreeSet<String>,
    reads_keys: bool,
    whole_table: bool,
    rewrites: bool,
    metrics: CommitMetrics,
    rows_written: u64,
    rows_deleted: u64,
    rows_copied: u64,
    missing_keys: u64,
}

impl OpenParts {
    pub fn new(rows_version: i64) -> Self {
        OpenParts {
            rows_version,
            parts: 0,
            adds: BTreeMap::new(),
            removes: BTreeMap::new(),
            others: Vec::new(),
            superseded: Vec::new(),
            written: Vec::new(),
            read: BTreeSet::new(),
            reads_keys: false,
            whole_table: false,
            rewrites: false,
            metrics: CommitMetrics::default(),
            rows_written: 0,
            rows_deleted: 0,
            rows_copied: 0,
            missing_keys: 0,
        }
    }

    /// The pending `add` of a data file an earlier part wrote (not committed).
    pub fn uncommitted_add(&self, path: &str) -> Option<&Add> {
        self.adds.get(path).filter(|_| !self.removes.contains_key(path)).map(|(add, _)| add)
    }

    /// Takes in one part's plan. Returns the data files written by earlier
    /// parts that this part rewrote: no action names them any more, the
    /// caller deletes them from storage.
    pub fn absorb(&mut self, plan: Plan) -> Vec<String> {
        let mut superseded: Vec<String> = Vec::new();
        for action in plan.actions {
            match action {
                Action::Add(add) => {
                    superseded.retain(|p| p != &add.path);
                    self.adds.insert(add.path.clone(), (add, None));
                }
                Action::Remove(remove) => {
                    let committed = self.removes.contains_key(&remove.path);
                    let ours = self.adds.remove(&remove.path).is_some();
                    if ours && !committed {
                        superseded.push(remove.path);
                    } else if !committed {
                        self.removes.insert(remove.path.clone(), remove);
                    }
                }
                other => self.others.push(other),
            }
        }
        for (path, entry) in plan.added {
            if let Some((_, slot)) = self.adds.get_mut(&path) {
                *slot = Some(entry);
            }
        }
        self.written.extend(plan.written);
        self.written.retain(|p| !superseded.contains(p));
        self.superseded.extend(superseded.iter().cloned());
        self.read.extend(plan.read);
        self.reads_keys |= plan.reads_keys;
        self.whole_table |= plan.whole_table;
        self.rewrites |= plan.rewrites;
        self.metrics.rows_written += plan.metrics.rows_written;
        self.metrics.bytes_written += plan.metrics.bytes_written;
        self.metrics.changes += plan.metrics.changes;
        self.rows_written += plan.rows_written;
        self.rows_deleted += plan.rows_deleted;
        self.rows_copied += plan.rows_copied;
        self.missing_keys += plan.missing_keys;
        self.parts += 1;
        superseded
    }

    /// Every file the parts wrote that the final commit would name (deleted
    /// when the transaction is abandoned).
    pub fn written(&self) -> &[String] {
        &self.written
    }

    /// Takes in the last part and returns the plan of the one commit that
    /// lands the whole transaction, and the data files the last part
    /// superseded (to delete once the commit succeeded or certainly failed).
    pub fn finish(mut self, last: Plan) -> (Plan, Vec<String>) {
        let superseded = self.absorb(last);
        let mut plan = Plan {
            read: self.read.into_iter().collect(),
            reads_keys: self.reads_keys,
            whole_table: self.whole_table,
            rewrites: self.rewrites || !self.removes.is_empty(),
            rows_written: self.rows_written,
            rows_deleted: self.rows_deleted,
            rows_copied: self.rows_copied,
            missing_keys: self.missing_keys,
            written: self.written,
            ..Plan::default()
        };
        plan.metrics = self.metrics;
        plan.metrics.files_removed = self.removes.len();
        plan.metrics.files_added = self.adds.keys().filter(|p| !self.removes.contains_key(*p)).count();
        for (path, remove) in self.removes {
            plan.removed.push(path);
            plan.actions.push(Action::Remove(remove));
        }
        // Not in the log, but in the overlay index the commit's outcome is applied to.
        plan.removed.extend(self.superseded);
        for (path, (add, entry)) in self.adds {
            plan.actions.push(Action::Add(add));
            if let Some(entry) = entry {
                plan.added.push((path, entry));
            }
        }
        plan.actions.extend(self.others);
        (plan, superseded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commit::{add_action, cdc_action, remove_action};

    fn entry() -> FileEntry {
        FileEntry { size: 10, rows: Some(1), bounds: Default::default(), deleted: None }
    }

    fn plan(actions: Vec<Action>, written: &[&str]) -> Plan {
        let added = actions
            .iter()
            .filter_map(|a| match a {
                Action::Add(add) => Some((add.path.clone(), entry())),
                _ => None,
            })
            .collect();
        Plan { actions, added, written: written.iter().map(|s| s.to_string()).collect(), ..Plan::default() }
    }

    fn paths(plan: &Plan) -> Vec<String> {
        plan.actions
            .iter()
            .map(|a| match a {
                Action::Add(a) => format!("add {}", a.path),
                Action::Remove(r) => format!("remove {}", r.path),
                Action::Cdc(c) => format!("cdc {}", c.path),
                _ => "other".into(),
            })
            .collect()
    }

    #[test]
    fn a_file_rewritten_by_a_later_part_is_dropped_and_the_committed_one_removed_once() {
        let mut parts = OpenParts::new(1);
        let first =
            plan(vec![remove_action("old", 10), add_action("a1", 10, "{}".into()), cdc_action("c1", 5)], &["a1", "c1"]);
        assert!(parts.absorb(first).is_empty());
        let second =
            plan(vec![remove_action("a1", 10), add_action("a2", 10, "{}".into()), cdc_action("c2", 5)], &["a2", "c2"]);
        assert_eq!(parts.absorb(second), ["a1"]);
        let last = plan(vec![remove_action("old", 10), cdc_action("c3", 5)], &["c3"]);
        let (plan, superseded) = parts.finish(last);
        assert!(superseded.is_empty());
        assert_eq!(paths(&plan), ["remove old", "add a2", "cdc c1", "cdc c2", "cdc c3"]);
        assert_eq!(plan.removed, ["old", "a1"]);
        assert_eq!(plan.written, ["c1", "a2", "c2", "c3"]);
        assert!(plan.rewrites);
    }

    #[test]
    fn a_file_marked_by_several_parts_keeps_its_first_remove_and_its_latest_add() {
        let mut parts = OpenParts::new(1);
        let marked = |size: i64| {
            let mut add = add_action("f", 10, "{}".into());
            if let Action::Add(a) = &mut add {
                a.size = size; // stands for the vector the add carries
            }
            add
        };
        let first = plan(vec![remove_action("f", 10), marked(11)], &[]);
        parts.absorb(first);
        assert!(parts.uncommitted_add("f").is_none(), "a committed file is not ours");
        let second = plan(vec![remove_action("f", 11), marked(12)], &[]);
        assert!(parts.absorb(second).is_empty());
        let (plan, _) = parts.finish(Plan::default());
        assert_eq!(paths(&plan), ["remove f", "add f"]);
        let sizes: Vec<i64> = plan
            .actions
            .iter()
            .map(|a| match a {
                Action::Add(a) => a.size,
                Action::Remove(r) => r.size.unwrap_or(0),
                _ => 0,
            })
            .collect();
        assert_eq!(sizes, [10, 12]);
    }

    #[test]
    fn a_new_file_marked_by_a_later_part_keeps_only_its_latest_add() {
        let mut parts = OpenParts::new(1);
        parts.absorb(plan(vec![add_action("n", 10, "{}".into())], &["n"]));
        assert!(parts.uncommitted_add("n").is_some());
        let mut marked = add_action("n", 10, "{}".into());
        if let Action::Add(a) = &mut marked {
            a.size = 13;
        }
        assert!(parts.absorb(plan(vec![marked], &["dv.bin"])).is_empty());
        let (plan, _) = parts.finish(Plan::default());
        assert_eq!(paths(&plan), ["add n"]);
        assert!(plan.removed.is_empty());
        assert_eq!(plan.written, ["n", "dv.bin"]);
    }
}
