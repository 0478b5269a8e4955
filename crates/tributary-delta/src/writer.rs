//! [`TableWriter`]: the Delta table of one source table. It creates or opens
//! the table, keeps the active data files with their primary-key bounds in
//! memory, and turns every batch of whole source transactions into exactly one
//! Delta commit that also stores the batch's source position (txn action +
//! commit info). Snapshot rows arrive through
//! [`TableWriter::append_snapshot_chunk`] (one transaction) or
//! [`TableWriter::append_snapshot_rows`] (a chunked copy, whose commits also
//! record its progress so that a restart continues it); only the snapshot's
//! last commit stores a position, so a half-copied table is recognisable
//! after a crash. After a chunked copy, streaming replays every change since
//! the copy's start position, and until its catch-up bound (a position read
//! after the last chunk) inserts are matched by key like updates, so a row
//! the copy already read is replaced, never held twice (docs/snapshots.md).
//! A source transaction too large for one batch arrives in parts
//! ([`TableWriter::apply_part`]) whose files are written but committed only
//! with the transaction's rest (see [`crate::transaction_parts`]).

use crate::apply::{push_add, Plan, Planner};
use crate::commit::{self, check_writable, CommitKind, CommitNote};
use crate::compact::{CompactionOptions, CompactionStats};
use crate::config::{DeltaSinkConfig, TypeChangePolicy, UpdateMode};
use crate::conflict::{self, Replan, Verdict};
use crate::encode::{encode, Op, OutRow, RowMeta};
use crate::evolve::ColumnChange;
use crate::files::{data_file_name, FileIndex, OpenFile};
use crate::ownership::Owner;
use crate::schema::{
    schema_difference, TableLayout, CHANGE_SEQ_COLUMN, PROP_PRIMARY_KEY, PROP_SCHEMA, PROP_SOURCE_COLUMNS,
    PROP_TEXT_COLUMNS,
};
use crate::snapshot_progress::{position_json, SnapshotProgress};
use crate::storage::TableFiles;
use crate::transaction_parts::OpenParts;
use crate::DeltaError;
use deltalake::protocol::{DeltaOperation, OutputMode, SaveMode};
use deltalake::table::state::DeltaTableState;
use deltalake::DeltaTable;
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tributary_core::{Row, RowChange, SourcePosition, TableId, TableSchema, Value};

/// One row change with the source transaction it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct SourcedChange {
    pub change: RowChange,
    /// The commit position of the change's source transaction.
    pub position: SourcePosition,
    /// The source commit time, microseconds since the epoch (UTC).
    pub commit_ts: i64,
    /// The change's index within its source transaction (over all its tables),
    /// stored as `_tributary_change_seq`.
    pub change_seq: i64,
}

/// The changes of one table from a run of whole source transactions, in
/// source order; applied as one Delta commit.
#[derive(Debug, Clone, PartialEq)]
pub struct TableBatch {
    pub changes: Vec<SourcedChange>,
    /// The commit position of the batch's last source transaction (stored as
    /// the table's position; may be later than any change, e.g. an idle table).
    pub position: SourcePosition,
}

/// What one call wrote.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CommitStats {
    /// The table version after the call (the last commit it made).
    pub delta_version: i64,
    /// Rows written with new content: inserts, after-images, snapshot and changelog rows.
    pub rows_written: u64,
    /// Rows removed from the table (deletes, truncated rows).
    pub rows_deleted: u64,
    /// Unchanged rows copied while rewriting files (write amplification).
    pub rows_copied: u64,
    /// Bytes of data and change-data files written.
    pub bytes_written: u64,
    pub files_added: usize,
    pub files_removed: usize,
    /// Delta commits made (0 when a snapshot chunk only buffered rows).
    pub commits: usize,
    /// Time spent writing files and committing.
    pub commit_duration: Duration,
    /// Commit attempts lost to another writer's commit (each judged, then
    /// committed again or re-planned).
    pub conflicts: usize,
    /// Time spent re-reading the table and re-planning after those conflicts.
    pub replan_duration: Duration,
}

impl CommitStats {
    fn absorb(&mut self, other: CommitStats) {
        self.delta_version = other.delta_version;
        self.rows_written += other.rows_written;
        self.rows_deleted += other.rows_deleted;
        self.rows_copied += other.rows_copied;
        self.bytes_written += other.bytes_written;
        self.files_added += other.files_added;
        self.files_removed += other.files_removed;
        self.commits += other.commits;
        self.commit_duration += other.commit_duration;
        self.conflicts += other.conflicts;
        self.replan_duration += other.replan_duration;
    }
}

/// Largest file a rewrite writes: a big file (e.g. from the snapshot) is split
/// into pieces of this size the first time one of its rows changes, so later
/// changes rewrite only the pieces they touch, and pieces are written in parallel.
const REWRITE_PIECE_ROWS: usize = 256 * 1024;

/// Rows encoded per record batch when copying snapshot rows.
const SNAPSHOT_ENCODE_ROWS: usize = 32 * 1024;

/// Writes the Delta table of one source table.
pub struct TableWriter {
    cfg: DeltaSinkConfig,
    layout: TableLayout,
    path: PathBuf,
    /// The table's files (a local directory or an object-store prefix).
    files: TableFiles,
    table: DeltaTable,
    index: FileIndex,
    committed_version: Option<i64>,
    committed_position: Option<SourcePosition>,
    snapshot_complete: bool,
    /// The kind of this app's last commit, when there is one.
    last_kind: Option<CommitKind>,
    /// The snapshot file being filled, not yet committed.
    snapshot_file: Option<OpenFile>,
    /// Set when the in-memory index may not match the log (a failed commit).
    stale: bool,
    /// This pipeline (its name is the txn app id) and its source: a table
    /// recording another owner is refused.
    owner: Owner,
    /// True when updates and deletes mark rows in deletion vectors (the table
    /// has the feature and the property, and a primary key) instead of
    /// rewriting files.
    deletion_vectors: bool,
    /// A chunked snapshot copy in progress: what its last commit recorded.
    snapshot_progress: Option<SnapshotProgress>,
    /// After a chunked snapshot copy: until this position (and its txn
    /// version) streamed inserts may meet rows the copy already read, so
    /// they are matched by key like updates (module docs).
    catch_up_until: Option<(SourcePosition, i64)>,
    /// The parts of a source transaction applied but not committed yet (see
    /// [`crate::transaction_parts`]); the file index includes what they did.
    open_parts: Option<OpenParts>,
}

impl std::fmt::Debug for TableWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableWriter")
            .field("path", &self.path)
            .field("app_id", &self.owner.pipeline)
            .field("delta_version", &self.delta_version())
            .field("committed_version", &self.committed_version)
            .field("files", &self.index.len())
            .finish()
    }
}

impl TableWriter {
    /// Opens the table of `schema` at [`DeltaSinkConfig::table_path`]
    /// (`<root>/<schema>/<table>`), creating it when it does not exist, and
    /// reads back the position stored for the owner's pipeline (its txn app
    /// id). A table that belongs to another pipeline or another source is
    /// refused ([`DeltaError::NotOwner`], see [`crate::ownership`]).
    pub async fn open_or_create(
        cfg: &DeltaSinkConfig,
        schema: Arc<TableSchema>,
        owner: impl Into<Owner>,
    ) -> Result<Self, DeltaError> {
        cfg.validate()?;
        let owner = owner.into();
        let path = cfg.table_path(&schema.id);
        for part in [&schema.id.schema, &schema.id.name] {
            if part.is_empty() || part == "." || part == ".." || part.contains(['/', '\\', '\0']) {
                return Err(DeltaError::Unsupported {
                    table: path,
                    problem: format!("source name {part:?} cannot be a directory name"),
                });
            }
        }
        let files = TableFiles::of(&path)?;
        if let Some(dir) = files.local_dir() {
            std::fs::create_dir_all(dir).map_err(|e| DeltaError::io(&path, "create directory", &path, e))?;
        }
        let layout = TableLayout::new(schema);
        let want_vectors = cfg.update_mode() == UpdateMode::DeletionVectors && layout.has_pk();
        let (table, created) = crate::table::load_or_create(&path, &layout, &owner.properties(), want_vectors).await?;
        // The directories just made (table, schema, root) are part of what a commit needs to survive.
        if crate::durable::local_dir(&table).is_some() {
            crate::durable::sync_dirs_up_to(&path, &cfg.root)
                .map_err(|e| DeltaError::delta(&path, "sync the table's directories", e))?;
        }
        // The schema stored with the table is the one in force at its committed
        // position: decoding resumes with it, whatever the source says now.
        let layout = stored_layout(&table).unwrap_or(layout);
        let mut writer = TableWriter {
            cfg: cfg.clone(),
            layout,
            path,
            files,
            table,
            index: FileIndex::default(),
            committed_version: None,
            committed_position: None,
            snapshot_complete: false,
            last_kind: None,
            snapshot_file: None,
            stale: false,
            owner,
            deletion_vectors: false,
            snapshot_progress: None,
            catch_up_until: None,
            open_parts: None,
        };
        writer.check_owner().await?;
        writer.add_missing_metadata_columns().await?;
        writer.check_table()?;
        writer.load_state().await?;
        if want_vectors && !created && !writer.deletion_vectors && cfg.update_mode.is_some() {
            tracing::warn!(table = %writer.path.display(),
                "update_mode = \"deletion_vectors\" but this existing table has no deletion vectors: its files are \
                 still rewritten (enabling them is a one-way protocol upgrade Tributary never makes silently; \
                 upgrade it with `tributary optimize --enable-deletion-vectors --table <database.table>`, see \
                 docs/deletion-vectors.md)");
        }
        tracing::debug!(table = %writer.path.display(), version = writer.delta_version(), files = writer.index.len(),
            committed = ?writer.committed_version, "delta table opened");
        Ok(writer)
    }

    /// The source's schema as the table last followed it (the columns the
    /// source fills, without the kept dropped ones): what the source's rows
    /// must look like from the committed position on.
    pub fn source_schema(&self) -> Arc<TableSchema> {
        let sink = &self.layout.source;
        if self.layout.source_columns == sink.columns.len() {
            return sink.clone();
        }
        let mut schema = (**sink).clone();
        schema.columns.truncate(self.layout.source_columns);
        Arc::new(schema)
    }

    /// The table's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The table's current Delta version.
    pub fn delta_version(&self) -> i64 {
        self.table.version().map_or(-1, |v| v as i64)
    }

    /// The txn version stored for this writer's app id (the committed source position as i64).
    pub fn committed_version(&self) -> Option<i64> {
        self.committed_version
    }

    /// The full source position of the last commit that stored a txn version.
    pub fn committed_position(&self) -> Option<SourcePosition> {
        self.committed_position.clone()
    }

    /// False while a snapshot copy has started but not finished (also after [`TableWriter::reset`]),
    /// and for a table that never received data.
    pub fn snapshot_complete(&self) -> bool {
        self.snapshot_complete
    }

    /// Number of active data files.
    pub fn file_count(&self) -> usize {
        self.index.len()
    }

    /// Rows in the active data files (as their statistics count them; rows
    /// deletion vectors delete are subtracted). E.g. what a resumed snapshot
    /// copy does not read again.
    pub fn stored_rows(&self) -> u64 {
        let rows = |e: &crate::files::FileEntry| {
            let deleted = e.deleted_rows().map_or(0, |d| d.len() as i64);
            (e.rows.unwrap_or(0) - deleted).max(0) as u64
        };
        self.index.files.values().map(rows).sum()
    }

    /// True when updates and deletes mark rows in deletion vectors instead of
    /// rewriting data files (docs/deletion-vectors.md).
    pub fn uses_deletion_vectors(&self) -> bool {
        self.deletion_vectors
    }

    /// Upgrades the table's protocol for deletion vectors and sets
    /// `delta.enableDeletionVectors = true` (one commit, no data change); from
    /// then on updates and deletes mark rows instead of rewriting files. The
    /// upgrade is one-way: readers without deletion-vector support can no
    /// longer read the table. Returns false when the table had them already.
    pub async fn enable_deletion_vectors(&mut self) -> Result<bool, DeltaError> {
        if self.stale {
            self.reload().await?;
        }
        let version =
            crate::deletion_vector_commit::enable_deletion_vectors(&mut self.table, &self.owner.pipeline).await;
        let upgraded = match version {
            Ok(version) => version.is_some(),
            Err(e) => {
                self.stale = true;
                return Err(e);
            }
        };
        self.check_table()?;
        self.load_state().await?;
        Ok(upgraded)
    }

    /// Makes the named NOT NULL columns nullable in one metadata-only commit
    /// (no data change, no position; primary-key columns never): a chunked
    /// copy continued after the source dropped such a column fills NULL
    /// there until the stream brings the drop, which keeps it nullable
    /// anyway ([`crate::evolve`]). Returns the columns it relaxed.
    pub async fn relax_not_null(&mut self, columns: &[&str]) -> Result<Vec<String>, DeltaError> {
        if self.stale {
            self.reload().await?;
        }
        let mut source = (*self.layout.source).clone();
        let mut relaxed = Vec::new();
        for (i, column) in source.columns.iter_mut().enumerate().take(self.layout.source_columns) {
            if !column.nullable && !self.layout.pk.contains(&i) && columns.contains(&column.name.as_str()) {
                column.nullable = true;
                relaxed.push(column.name.clone());
            }
        }
        if relaxed.is_empty() {
            return Ok(relaxed);
        }
        let layout = TableLayout::evolved(Arc::new(source), self.layout.source_columns, &self.layout.text_columns());
        let version = self.commit_layout(layout, "make a dropped NOT NULL column nullable").await?;
        tracing::info!(table = %self.path.display(), version, columns = ?relaxed,
            "columns the source dropped are nullable from now on (NULL in rows copied without them)");
        Ok(relaxed)
    }

    /// Refuses a table of another pipeline or source; records `owner` in a
    /// table that is ours but does not say so yet (metadata-only commit).
    async fn check_owner(&mut self) -> Result<(), DeltaError> {
        let owner = &self.owner.clone();
        let err = |e| DeltaError::delta(&self.path, "check the table's owner", e);
        let state = self.table.snapshot().map_err(err)?;
        let recorded = crate::ownership::recorded_owner(state.metadata().configuration());
        let (holds_ours, is_empty) = if recorded.is_none() {
            let latest = state.version() as i64;
            let log_store = self.table.log_store();
            let ours =
                commit::find_note(log_store.as_ref(), latest, &self.owner.pipeline, |_| true).await.map_err(err)?;
            let files = crate::table::file_index(&self.table, &self.layout).map_err(err)?;
            (ours.is_some(), files.files.is_empty())
        } else {
            (false, false)
        };
        let claim = crate::ownership::claim(&self.path, recorded.as_ref(), owner, holds_ours, is_empty)?;
        if claim == crate::ownership::Claim::Record && (recorded.is_none() || owner.source.is_some()) {
            let version = crate::ownership::record_owner(&mut self.table, owner, None).await.map_err(err)?;
            tracing::info!(table = %self.path.display(), version, pipeline = %owner.pipeline, "recorded the table's owner");
        }
        Ok(())
    }

    /// A table written before `_tributary_change_seq` existed gains the
    /// column (NULL in its older rows) in one metadata-only commit; any other
    /// difference is left for [`TableWriter::check_table`] to report.
    async fn add_missing_metadata_columns(&mut self) -> Result<(), DeltaError> {
        let path = self.path.clone();
        let err = |e| DeltaError::delta(&path, "add the change sequence column", e);
        let state = self.table.snapshot().map_err(err)?;
        let on_disk = state.schema();
        let expected = self.layout.delta_fields();
        if on_disk.field(CHANGE_SEQ_COLUMN).is_some()
            || schema_difference(&expected[..expected.len() - 1], &on_disk).is_some()
        {
            return Ok(());
        }
        let metadata = crate::table::metadata_for(state, &self.layout).map_err(err)?;
        let version = self.commit_metadata(metadata).await.map_err(err)?;
        tracing::info!(table = %self.path.display(), version, column = CHANGE_SEQ_COLUMN, "added a metadata column");
        Ok(())
    }

    /// The loaded table state.
    fn state(&self) -> Result<&DeltaTableState, DeltaError> {
        self.table.snapshot().map_err(|e| DeltaError::delta(&self.path, "load", e))
    }

    fn check_table(&self) -> Result<(), DeltaError> {
        let state = self.table.snapshot().map_err(|e| DeltaError::delta(&self.path, "load", e))?;
        check_writable(state).map_err(|problem| DeltaError::Unsupported { table: self.path.clone(), problem })?;
        // Someone may have handed the table to another pipeline (`tributary adopt`) meanwhile.
        if let Some(recorded) = crate::ownership::recorded_owner(state.metadata().configuration()) {
            crate::ownership::claim(&self.path, Some(&recorded), &self.owner, true, false)?;
        }
        if let Some(problem) = schema_difference(&self.layout.delta_fields(), &state.schema()) {
            return Err(DeltaError::SchemaMismatch { table: self.path.clone(), problem });
        }
        let want = self.layout.tributary_properties().remove(PROP_PRIMARY_KEY);
        if let (Some(have), Some(want)) = (state.metadata().configuration().get(PROP_PRIMARY_KEY), want) {
            if *have != want {
                return Err(DeltaError::SchemaMismatch {
                    table: self.path.clone(),
                    problem: format!("primary key is {have} on disk, {want} in the source"),
                });
            }
        }
        Ok(())
    }

    /// Rebuilds the file index and the stored position from the loaded table state.
    async fn load_state(&mut self) -> Result<(), DeltaError> {
        let err = |e| DeltaError::delta(&self.path, "read table state", e);
        self.index = crate::table::file_index(&self.table, &self.layout).map_err(err)?;
        crate::deletion_vector::load_into(&self.table, &mut self.index).await?;
        let state = self.table.snapshot().map_err(err)?;
        self.deletion_vectors = self.layout.has_pk() && crate::deletion_vector_commit::writable_with_vectors(state);
        let log_store = self.table.log_store();
        self.committed_version =
            state.transaction_version(log_store.as_ref(), &self.owner.pipeline).await.map_err(err)?;
        let latest = state.version() as i64;
        let last = commit::find_note(log_store.as_ref(), latest, &self.owner.pipeline, |n| !n.kind.is_upgrade())
            .await
            .map_err(err)?;
        self.last_kind = last.as_ref().map(|found| found.note.kind);
        self.snapshot_complete = match self.last_kind {
            Some(kind) => kind.completes_snapshot(),
            None => self.committed_version.is_some(),
        };
        self.snapshot_progress = last
            .as_ref()
            .filter(|found| found.note.kind == CommitKind::SnapshotChunk)
            .and_then(|found| found.note.snapshot.as_ref())
            .and_then(SnapshotProgress::from_note);
        let with_txn = match last {
            Some(found) if found.note.txn_version.is_some() => Some(found),
            Some(found) => {
                commit::find_note(log_store.as_ref(), found.version, &self.owner.pipeline, |n| n.txn_version.is_some())
                    .await
                    .map_err(err)?
            }
            None => None,
        };
        self.catch_up_until = with_txn
            .as_ref()
            .and_then(|found| found.note.catch_up_until())
            .and_then(|until| Some((until.to_version().ok()?, until)))
            .filter(|(v, _)| self.committed_version.is_some_and(|c| c < *v))
            .map(|(v, until)| (until, v));
        self.committed_position = match with_txn {
            Some(found) if found.note.txn_version == self.committed_version => found.note.position(),
            Some(found) => {
                tracing::warn!(table = %self.path.display(), note = ?found.note.txn_version, txn = ?self.committed_version,
                    "commit info position does not match the txn version; position unknown");
                None
            }
            // The commit that held the full position is gone from the log (log
            // cleanup after a checkpoint): the txn version still says where.
            None => self.committed_version.and_then(|version| {
                let source = self.owner.source.as_deref()?;
                let mysql = source.starts_with("mysql:") || source.starts_with("mariadb:");
                let position = SourcePosition::from_version(version, mysql);
                tracing::info!(table = %self.path.display(), %position,
                    "position read from the txn version (its commit info is no longer in the log)");
                Some(position)
            }),
        };
        self.stale = false;
        Ok(())
    }

    /// Reloads the table from the log (after a failed commit or a concurrent writer).
    async fn reload(&mut self) -> Result<(), DeltaError> {
        self.table.update_state().await.map_err(|e| DeltaError::delta(&self.path, "reload", e))?;
        self.check_table()?;
        self.load_state().await
    }

    fn version_of(&self, position: &SourcePosition) -> Result<i64, DeltaError> {
        position.to_version().map_err(|source| DeltaError::Position {
            table: self.path.clone(),
            position: position.to_string(),
            source,
        })
    }

    fn planner(&self) -> Planner<'_> {
        Planner {
            layout: &self.layout,
            table_dir: &self.path,
            files: &self.files,
            index: &self.index,
            piece_rows: self.cfg.target_file_rows.min(REWRITE_PIECE_ROWS),
            deletion_vectors: self.deletion_vectors,
            inserts_may_exist: false,
            uncommitted: self.open_parts.as_ref(),
        }
    }

    /// True while parts of a source transaction are applied but not committed.
    pub fn has_open_parts(&self) -> bool {
        self.open_parts.is_some()
    }

    /// Applies one part of a source transaction too large to hold whole
    /// (see [`crate::transaction_parts`]): its files are written, its actions
    /// kept; nothing is committed. The next [`TableWriter::apply`] commits
    /// every part with its own batch in one Delta commit. `part.position` is
    /// the position every row of the transaction carries (where it began);
    /// a part at or below the table's position is skipped (the table holds
    /// the transaction already). Returns the rows the part wrote.
    pub async fn apply_part(&mut self, part: &TableBatch) -> Result<u64, DeltaError> {
        self.check_batch_allowed()?;
        let version = self.version_of(&part.position)?;
        if let Some(open) = &self.open_parts {
            if open.rows_version != version {
                return Err(DeltaError::State {
                    table: self.path.clone(),
                    problem: format!(
                        "a part of the source transaction at version {version} while one at {} is open",
                        open.rows_version
                    ),
                });
            }
        } else {
            if self.stale {
                self.reload().await?;
            }
            if self.committed_version.is_some_and(|stored| version <= stored) {
                return Ok(0);
            }
        }
        if self.stale {
            return Err(DeltaError::State {
                table: self.path.clone(),
                problem: "the table's state was lost while a transaction was open in parts".into(),
            });
        }
        let padded;
        let part = if self.layout.source_columns < self.layout.n_source() {
            padded = pad_batch(part, self.layout.n_source());
            &padded
        } else {
            part
        };
        let written = self.write_parts(part, version);
        if written.is_err() {
            self.abandon_parts();
        }
        written
    }

    /// Writes `changes` as uncommitted parts (see [`TableWriter::apply_part`]),
    /// planned on the file index as the earlier parts left it. Returns the
    /// rows written.
    fn write_parts(&mut self, changes: &TableBatch, rows_version: i64) -> Result<u64, DeltaError> {
        // Open before planning: a part's planner knows it plans a part.
        self.open_parts.get_or_insert_with(|| OpenParts::new(rows_version));
        let planner = Planner { inserts_may_exist: self.catching_up(changes), ..self.planner() };
        let plan = plan_changes(&planner, changes, self.state()?)?;
        let rows = plan.rows_written;
        for path in &plan.removed {
            self.index.files.remove(path);
        }
        self.index.files.extend(plan.added.iter().cloned());
        let open = self.open_parts.as_mut().expect("opened above");
        let superseded = open.absorb(plan);
        remove_files(&self.files, &superseded);
        tracing::debug!(table = %self.path.display(), part = open.parts, rows, files = open.written().len(),
            "part of a large source transaction written (not committed)");
        Ok(rows)
    }

    /// Drops the open parts of a source transaction: their files are deleted
    /// (no commit names them) and the file index is read again from the log
    /// at the next use. Nothing happens when none is open.
    pub fn abandon_parts(&mut self) {
        if let Some(open) = self.open_parts.take() {
            tracing::info!(table = %self.path.display(), parts = open.parts,
                "abandoned the uncommitted parts of a source transaction; it is read again from the source");
            remove_files(&self.files, open.written());
            self.stale = true;
        }
    }

    fn check_batch_allowed(&self) -> Result<(), DeltaError> {
        if self.snapshot_file.is_some() {
            return Err(DeltaError::State {
                table: self.path.clone(),
                problem: "a snapshot is in progress; finish it (last = true) before applying changes".into(),
            });
        }
        if matches!(self.last_kind, Some(CommitKind::SnapshotChunk | CommitKind::Reset)) {
            return Err(DeltaError::State {
                table: self.path.clone(),
                problem: "the table holds a partial snapshot copy (or was reset for one); copy the snapshot \
                          (append_snapshot_chunk ... last = true) before applying changes"
                    .into(),
            });
        }
        Ok(())
    }

    /// Applies a batch of whole source transactions as one Delta commit, which
    /// also stores `batch.position` (txn action `{app_id, position version}`
    /// and the full position in the commit info). An empty batch only moves
    /// the position. A position at or below the stored one is refused and
    /// nothing is written. Parts applied with [`TableWriter::apply_part`]
    /// land in the same commit (the batch holds their transaction's rest).
    pub async fn apply(&mut self, batch: &TableBatch) -> Result<CommitStats, DeltaError> {
        let result = self.apply_with_parts(batch).await;
        if result.is_err() {
            self.abandon_parts();
        }
        result
    }

    async fn apply_with_parts(&mut self, batch: &TableBatch) -> Result<CommitStats, DeltaError> {
        let started = Instant::now();
        self.check_batch_allowed()?;
        let version = self.version_of(&batch.position)?;
        if let Some(stored) = self.committed_version {
            if version <= stored {
                return Err(DeltaError::PositionBackwards { table: self.path.clone(), stored, offered: version });
            }
        }
        if self.stale && self.open_parts.is_some() {
            return Err(DeltaError::State {
                table: self.path.clone(),
                problem: "the table's state was lost while a transaction was open in parts".into(),
            });
        }
        if self.stale {
            self.reload().await?;
            if let Some(stored) = self.committed_version.filter(|&s| version <= s) {
                return Err(DeltaError::PositionBackwards { table: self.path.clone(), stored, offered: version });
            }
        }
        let padded;
        let batch = if self.layout.source_columns < self.layout.n_source() {
            padded = pad_batch(batch, self.layout.n_source());
            &padded
        } else {
            batch
        };
        // Right after a chunked copy, a streamed insert may be of a row the copy already read.
        let catching_up = self.catching_up(batch);
        let make_plan = |planner: &Planner<'_>, state: &DeltaTableState| {
            let planner = Planner { inserts_may_exist: catching_up, ..*planner };
            plan_changes(&planner, batch, state)
        };
        let plan = make_plan(&self.planner(), self.state()?)?;
        // The rest of a transaction applied in parts: one commit for all of
        // them. It cannot be re-planned after a conflict (the earlier parts'
        // changes are no longer in memory).
        let (plan, replan, superseded) = match self.open_parts.take() {
            Some(open) => {
                let parts = open.parts + 1;
                let (plan, superseded) = open.finish(plan);
                tracing::info!(table = %self.path.display(), parts, rows = plan.rows_written,
                    files = plan.written.len(), "committing a source transaction applied in parts");
                (plan, None, superseded)
            }
            None => (plan, Some(&make_plan as Replan<'_>), Vec::new()),
        };
        remove_files(&self.files, &superseded);
        if plan.missing_keys > 0 && catching_up {
            // Expected: the stream replays changes of rows the chunked copy saw deleted.
            tracing::debug!(table = %self.path.display(), count = plan.missing_keys,
                "catching up after the copy: updates / deletes of keys the table does not hold");
        } else if plan.missing_keys > 0 {
            tracing::warn!(table = %self.path.display(), count = plan.missing_keys,
                "updates / deletes of keys the table does not hold (updates were applied as inserts)");
        }
        let operation = if plan.rewrites {
            DeltaOperation::StreamingUpdate {
                output_mode: OutputMode::Update,
                query_id: self.owner.pipeline.clone(),
                epoch_id: version,
            }
        } else {
            DeltaOperation::Write { mode: SaveMode::Append, partition_by: None, predicate: None }
        };
        let mut note = CommitNote::new(&self.owner.pipeline, CommitKind::Batch, Some(&batch.position), Some(version));
        let still_catching_up = self.catch_up_until.clone().filter(|(_, until)| version < *until);
        note.catch_up_until = still_catching_up.as_ref().map(|(position, _)| position_json(position));
        let mut stats = self.commit_plan(plan, operation, note, replan).await?;
        self.catch_up_until = still_catching_up;
        self.committed_position = Some(batch.position.clone());
        self.snapshot_complete = true;
        stats.commit_duration = started.elapsed();
        Ok(stats)
    }

    /// Commits a plan; on success updates the index and the stored position.
    /// A commit that loses the race against another writer is judged by
    /// [`crate::conflict`] and committed again as it is, re-planned with
    /// `replan` on the new table state, or refused; each abandoned plan's
    /// files are deleted.
    async fn commit_plan(
        &mut self,
        mut plan: Plan,
        operation: DeltaOperation,
        note: CommitNote,
        replan: Option<Replan<'_>>,
    ) -> Result<CommitStats, DeltaError> {
        let txn_version = note.txn_version;
        let kind = note.kind;
        let mut attempt = 1;
        let mut replan_duration = Duration::ZERO;
        let version = loop {
            let before = self.delta_version();
            let result =
                commit::commit(&mut self.table, plan.actions.clone(), operation.clone(), note.clone(), plan.metrics)
                    .await;
            match result {
                Ok(version) => break version,
                Err(e) if crate::error::is_conflict(&e) => {
                    attempt += 1;
                    let started = Instant::now();
                    let stores_position = !kind.is_upgrade();
                    let resolved = self.resolve_conflict(&mut plan, before, attempt, stores_position, replan).await;
                    replan_duration += started.elapsed();
                    if let Err(err) = resolved {
                        // Certainly not committed: the plan's files are garbage.
                        remove_files(&self.files, &plan.written);
                        self.stale = true;
                        return Err(err);
                    }
                    tokio::time::sleep(conflict::backoff(attempt)).await;
                }
                Err(e) => {
                    // Other failures may come after the commit landed (e.g. reading the
                    // new state back): keep the files, and read the log again now so
                    // that committed_version() tells the caller what the table holds.
                    let err = DeltaError::delta(&self.path, "commit", e);
                    self.stale = true;
                    if let Err(reload) = self.reload().await {
                        tracing::warn!(table = %self.path.display(), error = %reload, "reload after a failed commit failed");
                    }
                    return Err(err);
                }
            }
        };
        if version != self.delta_version() {
            // Not expected (delta-rs does not retry): rebuild the index from the log.
            self.table.update_state().await.map_err(|e| DeltaError::delta(&self.path, "reload", e))?;
            self.load_state().await?;
        } else {
            for path in &plan.removed {
                self.index.files.remove(path);
            }
            self.index.files.extend(plan.added);
        }
        if let Some(v) = txn_version {
            self.committed_version = Some(v);
        }
        if !kind.is_upgrade() {
            self.snapshot_complete = kind.completes_snapshot();
            self.last_kind = Some(kind);
        }
        if version > 0 && (version as u64).is_multiple_of(self.cfg.checkpoint_interval) {
            if let Err(e) = commit::checkpoint_and_cleanup(&self.table).await {
                tracing::warn!(table = %self.path.display(), version, error = %e, "checkpoint failed; will retry at the next interval");
            }
        }
        Ok(CommitStats {
            delta_version: version,
            rows_written: plan.rows_written,
            rows_deleted: plan.rows_deleted,
            rows_copied: plan.rows_copied,
            bytes_written: plan.metrics.bytes_written,
            files_added: plan.metrics.files_added,
            files_removed: plan.metrics.files_removed,
            commits: 1,
            commit_duration: Duration::ZERO,
            conflicts: (attempt - 1) as usize,
            replan_duration,
        })
    }

    /// After a commit based on version `base` lost the race: reads the table
    /// and the commits since `base`, and makes `plan` ready for attempt
    /// `attempt` (unchanged, or made again with `replan`), or says why not.
    /// `stores_position`: the plan's commit stores the pipeline's position
    /// (not a compaction or format-only commit, which may land beside
    /// another process of the pipeline, e.g. `tributary optimize` beside `run`).
    async fn resolve_conflict(
        &mut self,
        plan: &mut Plan,
        base: i64,
        attempt: u32,
        stores_position: bool,
        replan: Option<Replan<'_>>,
    ) -> Result<(), DeltaError> {
        let started = Instant::now();
        let stored = self.committed_version;
        let active_before: std::collections::HashSet<String> =
            self.state()?.log_data().iter().map(|f| crate::files::percent_decode(f.path().as_ref())).collect();
        self.table.update_state().await.map_err(|e| DeltaError::delta(&self.path, "reload", e))?;
        let latest = self.delta_version();
        let winners = conflict::read_commits(self.table.log_store().as_ref(), base, latest)
            .await
            .map_err(|e| DeltaError::delta(&self.path, "read the commits of other writers", e))?;
        let table = self.path.clone();
        let foreign = |version: i64, operation: &str, problem: String| DeltaError::ForeignChange {
            table: table.clone(),
            version,
            operation: operation.to_string(),
            problem,
        };
        if let Some((w, stale)) = conflict::stale_compaction(&winners, &active_before) {
            return Err(foreign(
                w.version,
                &w.operation,
                format!(
                    "removed {stale} data files an earlier commit had already removed: it compacted an older \
                     snapshot, so its {} new files hold rows the table already holds (every row twice). Its \
                     writer's conflict check missed a concurrent compaction (delta-rs optimize beside another \
                     compactor, e.g. this pipeline's [maintenance]); run one compactor per table, and restore \
                     the version before it (Spark: RESTORE TABLE delta.`<path>` TO VERSION AS OF {})",
                    w.added_paths.len(),
                    w.version - 1
                ),
            ));
        }
        let verdict = conflict::judge(&winners, plan, stores_position.then_some(self.owner.pipeline.as_str()));
        if let Verdict::Stop { version, operation, problem } = &verdict {
            return Err(foreign(*version, operation, problem.clone()));
        }
        if let Err(e) = self.check_table() {
            let problem = match e {
                DeltaError::Unsupported { problem, .. } | DeltaError::SchemaMismatch { problem, .. } => problem,
                other => other.to_string(),
            };
            let changed = winners.iter().rev().find(|w| w.metadata || w.protocol).or(winners.last());
            let (version, operation) = changed.map_or((latest, "unknown"), |w| (w.version, w.operation.as_str()));
            return Err(foreign(
                version,
                operation,
                format!(
                    "made the table unwritable for Tributary: {problem}; undo that change, or move the table aside \
                     so that Tributary copies it anew"
                ),
            ));
        }
        self.load_state().await?;
        if stores_position && self.committed_version != stored {
            // Not seen in the commits read (e.g. they were written without a
            // txn action); the position moved all the same.
            return Err(foreign(
                latest,
                "unknown",
                format!(
                    "moved the position of pipeline {} from {stored:?} to {:?}: another process of this pipeline \
                     writes the table; run one process per pipeline name",
                    self.owner.pipeline, self.committed_version
                ),
            ));
        }
        if attempt > conflict::MAX_ATTEMPTS {
            return Err(DeltaError::ConflictRetriesExhausted {
                table: self.path.clone(),
                attempts: attempt - 1,
                version: latest,
            });
        }
        let ops: Vec<String> = winners.iter().map(|w| format!("{} {}", w.version, w.operation)).collect();
        match verdict {
            Verdict::Retry => {
                tracing::info!(table = %self.path.display(), attempt, commits = ?ops,
                    "table changed by another writer; nothing this commit depends on changed, committing again");
            }
            Verdict::Replan(reason) => {
                let Some(replan) = replan else {
                    return Err(DeltaError::State {
                        table: self.path.clone(),
                        problem: format!("cannot re-plan this commit after a conflict: {reason}"),
                    });
                };
                remove_files(&self.files, &plan.written);
                plan.written.clear();
                let state = self.table.snapshot().map_err(|e| DeltaError::delta(&self.path, "load", e))?;
                *plan = replan(&self.planner(), state)?;
                tracing::info!(table = %self.path.display(), attempt, commits = ?ops, %reason,
                    replan_ms = started.elapsed().as_millis() as u64, "table changed by another writer; batch re-planned");
            }
            Verdict::Stop { .. } => unreachable!("returned above"),
        }
        Ok(())
    }

    /// Opens the existing table of `id` with the schema it stores (for
    /// maintenance without the source: `tributary optimize`).
    pub async fn open_stored(cfg: &DeltaSinkConfig, id: &TableId, owner: impl Into<Owner>) -> Result<Self, DeltaError> {
        let path = cfg.table_path(id);
        let table = crate::table::open_existing(&path).await?;
        let layout = stored_layout(&table).ok_or_else(|| DeltaError::Unsupported {
            table: path.clone(),
            problem: "the table records no Tributary schema (not written by Tributary)".into(),
        })?;
        Self::open_or_create(cfg, layout.source.clone(), owner).await
    }

    /// Records `retention` as the table's `delta.deletedFileRetentionDuration`
    /// (metadata only, when it differs): how long files the table no longer
    /// references are kept, for every vacuum (Tributary's and Spark's).
    pub async fn keep_unreferenced_files_for(&mut self, retention: Duration) -> Result<bool, DeltaError> {
        use deltalake::kernel::MetadataExt as _;
        use deltalake::table::config::TablePropertiesExt as _;
        let path = self.path.clone();
        let err = |e: deltalake::DeltaTableError| DeltaError::delta(&path, "set delta.deletedFileRetentionDuration", e);
        let state = self.table.snapshot().map_err(err)?;
        if state.table_config().deleted_file_retention_duration().as_secs() == retention.as_secs() {
            return Ok(false);
        }
        let metadata = state
            .metadata()
            .clone()
            .add_config_key(
                "delta.deletedFileRetentionDuration".to_string(),
                format!("interval {} seconds", retention.as_secs()),
            )
            .map_err(|e| err(e.into()))?;
        self.commit_metadata(metadata).await.map_err(err)?;
        Ok(true)
    }

    /// Commits `metadata` alone (no data change, no position): a format
    /// change the notes' readers skip ([`CommitKind::Upgrade`]).
    async fn commit_metadata(
        &mut self,
        metadata: deltalake::kernel::Metadata,
    ) -> Result<i64, deltalake::DeltaTableError> {
        self.commit_format(vec![deltalake::kernel::Action::Metadata(metadata)]).await
    }

    /// Commits `actions` (metadata / protocol) as a format change: no data
    /// change, no position ([`CommitKind::Upgrade`]).
    async fn commit_format(
        &mut self,
        actions: Vec<deltalake::kernel::Action>,
    ) -> Result<i64, deltalake::DeltaTableError> {
        let note = CommitNote::new(&self.owner.pipeline, CommitKind::Upgrade, None, None);
        let operation = DeltaOperation::UpdateTableMetadata {
            metadata_update: deltalake::operations::update_table_metadata::TableMetadataUpdate {
                name: None,
                description: None,
            },
        };
        commit::commit(&mut self.table, actions, operation, note, Default::default()).await
    }

    /// Makes `layout` the table's schema in one format commit (its metadata,
    /// and the protocol it needs when the table's lacks it) and follows it;
    /// `what` names the step in an error.
    async fn commit_layout(&mut self, layout: TableLayout, what: &'static str) -> Result<i64, DeltaError> {
        let err = |e| DeltaError::delta(&self.path, what, e);
        let state = self.state()?;
        let metadata = crate::table::metadata_for(state, &layout).map_err(err)?;
        let mut actions = vec![deltalake::kernel::Action::Metadata(metadata)];
        if let Some(protocol) = crate::table::protocol_upgrade(state, &layout) {
            actions.push(deltalake::kernel::Action::Protocol(protocol));
        }
        let version = self.commit_format(actions).await.map_err(|e| {
            self.stale = true;
            DeltaError::delta(&self.path, what, e)
        })?;
        self.layout = layout;
        Ok(version)
    }

    /// How many of the table's data files are small for `options`.
    pub fn small_file_count(&self, options: &CompactionOptions) -> usize {
        options.small_files(&self.index)
    }

    /// True when a compaction run is due: `min_small_files` small files, or
    /// a file whose deletion vector deletes most of it ([`crate::compact`]).
    pub fn compaction_due(&self, options: &CompactionOptions) -> bool {
        options.due(&self.index)
    }

    /// Rewrites small data files into files near the target size, ordered by
    /// primary key, in one commit without data change ([`crate::compact`]);
    /// `None` when the table has too few small files, a snapshot copy is
    /// unfinished, or nothing could be combined.
    pub async fn compact(&mut self, options: &CompactionOptions) -> Result<Option<CompactionStats>, DeltaError> {
        self.compact_with(options, &|| {}).await
    }

    /// [`TableWriter::compact`], calling `before_commit` once the new files
    /// are written and before they are committed (a test failpoint dies there).
    pub async fn compact_with(
        &mut self,
        options: &CompactionOptions,
        before_commit: &(dyn Fn() + Sync),
    ) -> Result<Option<CompactionStats>, DeltaError> {
        if self.snapshot_file.is_some() || !self.snapshot_complete {
            return Ok(None);
        }
        if self.stale {
            self.reload().await?;
        }
        let Some(plan) = crate::compact::plan(&self.path, &self.files, &self.layout, &self.index, options)? else {
            return Ok(None);
        };
        let bytes_removed: u64 =
            plan.removed.iter().filter_map(|p| self.index.files.get(p)).map(|e| e.size as u64).sum();
        let options_again = options.clone();
        let replan = move |planner: &Planner<'_>, _: &DeltaTableState| {
            crate::compact::plan(planner.table_dir, planner.files, planner.layout, planner.index, &options_again)?
                .ok_or_else(|| DeltaError::State {
                    table: planner.table_dir.to_path_buf(),
                    problem: "nothing left to compact after another writer's commit".into(),
                })
        };
        let operation = DeltaOperation::Optimize { predicate: None, target_size: options.target_file_bytes as i64 };
        let note = CommitNote::new(&self.owner.pipeline, CommitKind::Compaction, None, None);
        let (files_removed, rows) = (plan.removed.len(), plan.rows_copied);
        before_commit();
        let stats = self.commit_plan(plan, operation, note, Some(&replan)).await?;
        Ok(Some(CompactionStats {
            delta_version: stats.delta_version,
            files_removed: stats.files_removed.max(files_removed),
            files_added: stats.files_added,
            bytes_removed,
            bytes_written: stats.bytes_written,
            rows: stats.rows_copied.max(rows),
            conflicts: stats.conflicts,
        }))
    }

    /// Adds snapshot rows (op `r`). Rows are streamed into data files of
    /// `target_file_rows`; each full file is committed on its own, without a
    /// position. The call with `last = true` commits the rest together with
    /// the position (txn), which marks the snapshot complete.
    pub async fn append_snapshot_chunk(
        &mut self,
        rows: Vec<Row>,
        position: &SourcePosition,
        commit_ts: i64,
        last: bool,
    ) -> Result<CommitStats, DeltaError> {
        let end = if last { SnapshotEnd::Done { catch_up_until: None } } else { SnapshotEnd::More };
        self.write_snapshot_rows(rows, position, commit_ts, None, end).await
    }

    /// The chunked snapshot copy this table holds part of (what its last
    /// commit recorded), if any: continue from it with
    /// [`TableWriter::append_snapshot_rows`] instead of resetting the table.
    /// Also a re-copy ([`TableWriter::begin_recopy`]) of a table that holds
    /// an older position.
    pub fn snapshot_progress(&self) -> Option<&SnapshotProgress> {
        self.snapshot_progress.as_ref().filter(|_| !self.snapshot_complete)
    }

    /// True while a re-copy of this streamed table is in progress: its
    /// rows were removed by [`TableWriter::begin_recopy`] and its txn still
    /// holds the position streamed before (replaced by the copy's start when
    /// [`TableWriter::finish_chunked_snapshot`] ends it).
    pub fn recopy_in_progress(&self) -> bool {
        self.committed_version.is_some() && self.snapshot_progress().is_some()
    }

    /// Drops snapshot rows written but not committed (a chunked copy given
    /// up mid-way in this process): what the last commit recorded is where
    /// the copy continues.
    pub fn abandon_snapshot_rows(&mut self) {
        if let Some(file) = self.snapshot_file.take() {
            file.discard();
        }
    }

    /// Starts copying this streamed table again (`tributary resnapshot`):
    /// one commit removes every data file (the change feed shows them as
    /// deletes) and records `progress` (the copy's start position, at or
    /// after the table's committed one, and its lanes before the first
    /// chunk). The copy continues with [`TableWriter::append_snapshot_rows`]
    /// and ends with [`TableWriter::finish_chunked_snapshot`]; a restart in
    /// between continues it ([`TableWriter::snapshot_progress`]).
    pub async fn begin_recopy(&mut self, progress: &SnapshotProgress) -> Result<CommitStats, DeltaError> {
        let started = Instant::now();
        if self.open_parts.is_some() || self.snapshot_file.is_some() || !self.snapshot_complete {
            return Err(DeltaError::State {
                table: self.path.clone(),
                problem: "a re-copy starts only between batches of a table whose copy is complete".into(),
            });
        }
        let start = self.version_of(&progress.start)?;
        if let Some(stored) = self.committed_version.filter(|&s| start < s) {
            return Err(DeltaError::PositionBackwards { table: self.path.clone(), stored, offered: start });
        }
        if self.stale {
            self.reload().await?;
        }
        let remove_all = |planner: &Planner<'_>, _: &DeltaTableState| Ok(planner.plan_remove_all());
        let plan = remove_all(&self.planner(), self.state()?)?;
        let mut note = CommitNote::new(&self.owner.pipeline, CommitKind::SnapshotChunk, Some(&progress.start), None);
        note.snapshot = Some(progress.to_note());
        let operation = DeltaOperation::Delete { predicate: None };
        let mut stats = self.commit_plan(plan, operation, note, Some(&remove_all)).await?;
        self.catch_up_until = None;
        self.snapshot_progress = Some(progress.clone());
        stats.commit_duration = started.elapsed();
        Ok(stats)
    }

    /// True when `batch` starts at or before the catch-up bound of a chunked
    /// copy: its inserts are matched by key (module docs).
    fn catching_up(&self, batch: &TableBatch) -> bool {
        self.catch_up_until.as_ref().is_some_and(|(_, until)| {
            batch.changes.first().is_some_and(|c| c.position.to_version().is_ok_and(|v| v <= *until))
        })
    }

    /// After a chunked snapshot copy: the position until which streamed
    /// inserts are matched by key (the copy may have read their rows).
    pub fn catching_up_until(&self) -> Option<&SourcePosition> {
        self.catch_up_until.as_ref().map(|(position, _)| position)
    }

    /// Adds one chunk of a chunked snapshot copy (rows read at or after
    /// `progress.start`, with keys no earlier chunk read). `progress` is the
    /// copy's state including this chunk: it is committed with these rows,
    /// at the first chunk boundary where the open file holds at least
    /// `target_file_rows`, so the recorded progress always matches the rows
    /// in the table.
    pub async fn append_snapshot_rows(
        &mut self,
        rows: Vec<Row>,
        commit_ts: i64,
        progress: &SnapshotProgress,
    ) -> Result<CommitStats, DeltaError> {
        self.write_snapshot_rows(rows, &progress.start, commit_ts, Some(progress), SnapshotEnd::More).await
    }

    /// Ends a chunked snapshot copy: commits what is open with the txn of
    /// `progress.start` (streaming continues from there) and records
    /// `catch_up_until`, a source position read after the last chunk: until
    /// the stream passes it, inserts are matched by key (module docs).
    pub async fn finish_chunked_snapshot(
        &mut self,
        commit_ts: i64,
        progress: &SnapshotProgress,
        catch_up_until: &SourcePosition,
    ) -> Result<CommitStats, DeltaError> {
        let end = SnapshotEnd::Done { catch_up_until: Some(catch_up_until.clone()) };
        self.write_snapshot_rows(Vec::new(), &progress.start, commit_ts, Some(progress), end).await
    }

    /// [`TableWriter::append_snapshot_chunk`] and the chunked copy's calls.
    /// Without `progress`, a file is committed as soon as it is full; with
    /// it, only after the whole chunk is in the file.
    async fn write_snapshot_rows(
        &mut self,
        mut rows: Vec<Row>,
        position: &SourcePosition,
        commit_ts: i64,
        progress: Option<&SnapshotProgress>,
        end: SnapshotEnd,
    ) -> Result<CommitStats, DeltaError> {
        let started = Instant::now();
        let last = matches!(end, SnapshotEnd::Done { .. });
        if self.snapshot_complete && self.snapshot_file.is_none() && self.committed_version.is_some() {
            return Err(DeltaError::State {
                table: self.path.clone(),
                problem: "the table already holds a complete snapshot; reset() it before copying again".into(),
            });
        }
        let version = self.version_of(position)?;
        if last {
            if let Some(stored) = self.committed_version.filter(|&s| version < s) {
                return Err(DeltaError::PositionBackwards { table: self.path.clone(), stored, offered: version });
            }
        }
        if self.stale {
            self.reload().await?;
        }
        self.snapshot_complete = false;
        for row in rows.iter_mut() {
            row.resize(self.layout.n_source(), Value::Null);
        }
        let meta = RowMeta {
            op: Some(Op::Snapshot),
            position: Some(Arc::from(position.to_string())),
            source_version: Some(version),
            commit_ts: Some(commit_ts),
            change_seq: Some(0),
        };
        let target = self.cfg.target_file_rows as i64;
        let mut stats = CommitStats::default();
        let mut offset = 0;
        while offset < rows.len() {
            if self.snapshot_file.is_none() {
                let file = OpenFile::create(&self.files, data_file_name(), &self.layout, &self.layout.arrow)
                    .map_err(|e| e.into_delta(&self.path))?;
                self.snapshot_file = Some(file);
            }
            let file = self.snapshot_file.as_mut().expect("opened above");
            let room = (target - file.rows()).max(1) as usize;
            let take = room.min(rows.len() - offset).min(SNAPSHOT_ENCODE_ROWS);
            let out: Vec<OutRow> = rows[offset..offset + take]
                .iter()
                .map(|r| OutRow { values: Cow::Borrowed(r), meta: meta.clone() })
                .collect();
            let refs: Vec<&OutRow> = out.iter().collect();
            let batch = encode(&self.layout, &refs, None).map_err(|e| DeltaError::Encode {
                table: self.path.clone(),
                column: e.column,
                problem: e.problem,
            })?;
            file.write(&batch, true).map_err(|e| e.into_delta(&self.path))?;
            offset += take;
            let full = file.rows() >= target;
            if full && progress.is_none() && !(last && offset == rows.len()) {
                stats.absorb(self.commit_snapshot_file(position, None, None, None).await?);
            }
        }
        let full = self.snapshot_file.as_ref().is_some_and(|f| f.rows() >= target);
        match end {
            SnapshotEnd::Done { catch_up_until } => {
                stats.absorb(self.commit_snapshot_file(position, Some(version), progress, catch_up_until).await?);
            }
            SnapshotEnd::More if full && progress.is_some() => {
                stats.absorb(self.commit_snapshot_file(position, None, progress, None).await?);
            }
            SnapshotEnd::More => {}
        }
        if stats.commits == 0 {
            stats.delta_version = self.delta_version();
        }
        stats.commit_duration = started.elapsed();
        Ok(stats)
    }

    /// Commits the open snapshot file (if any); with `txn`, also the position.
    async fn commit_snapshot_file(
        &mut self,
        position: &SourcePosition,
        txn: Option<i64>,
        progress: Option<&SnapshotProgress>,
        catch_up_until: Option<SourcePosition>,
    ) -> Result<CommitStats, DeltaError> {
        let mut plan = Plan::default();
        if let Some(file) = self.snapshot_file.take() {
            let rows = file.rows();
            if rows > 0 {
                let written = file.close().map_err(|e| e.into_delta(&self.path))?;
                plan.written.push(written.rel_path.clone());
                plan.rows_written = rows as u64;
                plan.metrics.rows_written = rows as u64;
                push_add(&mut plan, written);
            } else {
                file.discard();
            }
        }
        let kind = if txn.is_some() { CommitKind::SnapshotDone } else { CommitKind::SnapshotChunk };
        let mut note = CommitNote::new(&self.owner.pipeline, kind, Some(position), txn);
        note.snapshot = progress.map(SnapshotProgress::to_note);
        let catch_up = catch_up_until
            .map(|until| Ok::<_, DeltaError>((self.version_of(&until)?, until)))
            .transpose()?
            .filter(|(until, _)| txn.is_some_and(|t| t < *until));
        note.catch_up_until = catch_up.as_ref().map(|(_, until)| position_json(until));
        let operation = DeltaOperation::Write { mode: SaveMode::Append, partition_by: None, predicate: None };
        // Only appends: a conflict never needs a new plan.
        let stats = self.commit_plan(plan, operation, note, None).await?;
        if txn.is_some() {
            self.committed_position = Some(position.clone());
            self.snapshot_progress = None;
            self.catch_up_until = catch_up.map(|(version, until)| (until, version));
        } else {
            self.snapshot_progress = progress.cloned();
        }
        Ok(stats)
    }

    /// The source schema `source` planned against the schema the table
    /// follows ([`crate::evolve::plan`], with this table's text columns and
    /// the `renamed` columns the source reported).
    fn plan_towards(
        &self,
        source: &TableSchema,
        renamed: &[(String, String)],
    ) -> Result<Option<crate::evolve::SchemaPlan>, DeltaError> {
        let text_columns = self.layout.text_columns();
        let sink = crate::evolve::SinkState {
            schema: &self.layout.source,
            source_columns: self.layout.source_columns,
            text_columns: &text_columns,
        };
        let to_text = self.cfg.incompatible_type_changes == TypeChangePolicy::String;
        crate::evolve::plan(sink, source, renamed, to_text)
            .map_err(|e| DeltaError::SchemaChange { table: self.path.clone(), source: e })
    }

    /// False when a chunked copy recorded in this table cannot continue with
    /// rows read with `catalog` (the source's schema now): a column's type
    /// changed since the copy started so that its values need another Delta
    /// type (a widening, or a type Delta cannot follow), which the stream
    /// would only bring after the copy. Added and dropped columns do not
    /// matter: the copy puts rows into the table's columns by name.
    pub fn copy_can_continue_with(&self, catalog: &TableSchema) -> bool {
        match self.plan_towards(catalog, &[]) {
            Ok(None) => true,
            Ok(Some(planned)) => !planned.rewrite,
            Err(_) => false,
        }
    }

    /// Makes an empty table that is about to be copied from its first row
    /// follow `catalog`, the schema the copy reads with and in force at the
    /// copy's position, from which streaming continues: one metadata commit
    /// without position when anything changed (columns added, dropped ones
    /// kept, types widened; nothing to rewrite in an empty table). Before
    /// 2026-12-05 the table kept the schema of an earlier, abandoned copy:
    /// a column widened since then failed every copy ("does not fit"), and
    /// a column added since then was left out of the copied rows (missing
    /// from the mirror until the table's next change brought it with the
    /// source's default). A change Delta cannot follow is
    /// [`DeltaError::SchemaChange`].
    pub async fn follow_for_copy(&mut self, catalog: &TableSchema) -> Result<Vec<ColumnChange>, DeltaError> {
        if self.stale {
            self.reload().await?;
        }
        if !self.index.files.is_empty() {
            return Ok(Vec::new());
        }
        let Some(planned) = self.plan_towards(catalog, &[])? else { return Ok(Vec::new()) };
        let layout = TableLayout::evolved(Arc::new(planned.sink), planned.source_columns, &planned.text_columns);
        let version = self.commit_layout(layout, "follow the source's schema before a copy").await?;
        tracing::info!(table = %self.path.display(), version, changes = ?planned.changes,
            "the table follows the source's schema before it is copied");
        Ok(planned.changes)
    }

    /// Follows a source schema change that took effect in the source
    /// transaction committed at `position`: one commit with the new schema
    /// (and, for a widened type, every data file rewritten with it, marked as
    /// no data change). Returns what changed; nothing when the schema is the
    /// same or the table already holds `position` (a replay after a restart).
    /// A change Delta cannot follow is [`DeltaError::SchemaChange`] and
    /// writes nothing.
    ///
    /// `existing` gives, for added columns, the value the source shows for
    /// rows that existed before the column (PostgreSQL / MySQL `ADD COLUMN
    /// ... DEFAULT`): the data files are rewritten with it (no data change).
    /// `renamed` lists the `(from, to)` renames the source reported: older
    /// rows get the new column filled from the old one, the same way.
    pub async fn change_schema(
        &mut self,
        source: &TableSchema,
        position: &SourcePosition,
        existing: &[(String, Value)],
        renamed: &[(String, String)],
    ) -> Result<Vec<ColumnChange>, DeltaError> {
        let version = self.version_of(position)?;
        if self.committed_version.is_some_and(|stored| version <= stored) {
            return Ok(Vec::new());
        }
        if self.stale {
            self.reload().await?;
        }
        let Some(planned) = self.plan_towards(source, renamed)? else { return Ok(Vec::new()) };
        let layout = TableLayout::evolved(Arc::new(planned.sink), planned.source_columns, &planned.text_columns);
        // Columns this change adds read, in older rows, what the source shows
        // there (`existing`: a default); a renamed column, the values of its
        // old name. A column added again after a drop keeps the values it
        // held: the drop may only have been seen through a catalog read after
        // later DDL, and a rewrite must never lose data.
        let index_of = |name: &str| layout.source.column_index(name);
        let mut fills: Vec<(usize, Fill<'_>)> = existing
            .iter()
            .filter(|(name, value)| {
                !value.is_null()
                    && planned.changes.iter().any(|c| matches!(c, ColumnChange::Added { column, .. } if column == name))
            })
            .filter_map(|(name, value)| index_of(name).map(|i| (i, Fill::Value(value))))
            .collect();
        for change in &planned.changes {
            if let ColumnChange::Renamed { from, to } = change {
                if let (Some(to), Some(from)) = (index_of(to), index_of(from)) {
                    fills.push((to, Fill::Column(from)));
                }
            }
        }
        let rewrite = planned.rewrite || !fills.is_empty();
        // Made again on the new table state should another writer commit first.
        let make_plan = |planner: &Planner<'_>, state: &DeltaTableState| -> Result<Plan, DeltaError> {
            let mut plan = Plan { whole_table: rewrite, ..Plan::default() };
            if rewrite {
                // Spark 3.5 reads a file only with its own physical types: rewrite
                // every data file with the widened types (no data change).
                for (path, entry) in &planner.index.files {
                    let batches =
                        crate::files::read_file(planner.files, path).map_err(|e| e.into_delta(planner.table_dir))?;
                    // The rewrite drops the rows the file's deletion vector deletes.
                    let batches = crate::files::drop_deleted(batches, entry.deleted_rows())
                        .map_err(|e| DeltaError::arrow(planner.table_dir, "drop deleted rows", e))?;
                    let batches = batches
                        .iter()
                        .map(|b| crate::encode::conform(b, &layout.arrow))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| {
                            DeltaError::arrow(planner.table_dir, "cast a data file to the widened schema", e)
                        })?;
                    let batches = fill_columns(&layout, batches, &fills).map_err(|problem| DeltaError::Encode {
                        table: planner.table_dir.to_path_buf(),
                        column: "(added column)".into(),
                        problem,
                    })?;
                    let written = crate::files::write_file(
                        planner.files,
                        data_file_name(),
                        &layout,
                        &layout.arrow,
                        &batches,
                        true,
                    )
                    .map_err(|e| e.into_delta(planner.table_dir))?;
                    plan.written.push(written.rel_path.clone());
                    push_add(&mut plan, written);
                    if let Some(deltalake::kernel::Action::Add(add)) = plan.actions.last_mut() {
                        add.data_change = false;
                    }
                    plan.actions.push(commit::remove_file_action(path, entry, false));
                    plan.removed.push(path.clone());
                    plan.metrics.files_removed += 1;
                }
            }
            let metadata = crate::table::metadata_for(state, &layout)
                .map_err(|e| DeltaError::delta(planner.table_dir, "new metadata", e))?;
            plan.actions.push(deltalake::kernel::Action::Metadata(metadata));
            if let Some(protocol) = crate::table::protocol_upgrade(state, &layout) {
                plan.actions.push(deltalake::kernel::Action::Protocol(protocol));
            }
            Ok(plan)
        };
        let plan = make_plan(&self.planner(), self.state()?)?;
        let mut note = CommitNote::new(&self.owner.pipeline, CommitKind::SchemaChange, Some(position), None);
        note.schema_changes = planned.changes.clone();
        // Recorded as a metadata update ("UPDATE TABLE METADATA"); the note in
        // the commit info lists the column changes.
        let operation = DeltaOperation::UpdateTableMetadata {
            metadata_update: deltalake::operations::update_table_metadata::TableMetadataUpdate {
                name: None,
                description: None,
            },
        };
        self.commit_plan(plan, operation, note, Some(&make_plan)).await?;
        self.layout = layout;
        Ok(planned.changes)
    }

    /// Removes every data file in one commit (no position is stored), so a
    /// snapshot can start over; drops snapshot rows not yet committed.
    pub async fn reset(&mut self) -> Result<(), DeltaError> {
        if let Some(file) = self.snapshot_file.take() {
            file.discard();
        }
        self.snapshot_progress = None;
        self.catch_up_until = None;
        if self.stale {
            self.reload().await?;
        }
        let remove_all = |planner: &Planner<'_>, _: &DeltaTableState| Ok(planner.plan_remove_all());
        let plan = remove_all(&self.planner(), self.state()?)?;
        let note = CommitNote::new(&self.owner.pipeline, CommitKind::Reset, self.committed_position.as_ref(), None);
        let operation = DeltaOperation::Delete { predicate: None };
        self.commit_plan(plan, operation, note, Some(&remove_all)).await?;
        Ok(())
    }
}

/// How a call of [`TableWriter::write_snapshot_rows`] ends the copy.
enum SnapshotEnd {
    /// More rows follow.
    More,
    /// The copy is complete: commit the rest with the txn (and, after a
    /// chunked copy, the catch-up bound).
    Done { catch_up_until: Option<SourcePosition> },
}

/// Deletes files a plan wrote that no commit refers to (best effort).
fn remove_files(files: &TableFiles, written: &[String]) {
    for path in written {
        files.delete(path);
    }
}

/// Plans `batch`: an upsert on a table with a primary key, else a changelog
/// append; a batch holding a TRUNCATE in streamed segments.
fn plan_changes(planner: &Planner<'_>, batch: &TableBatch, state: &DeltaTableState) -> Result<Plan, DeltaError> {
    if batch.changes.iter().any(|c| matches!(c.change, RowChange::Truncate)) {
        planner.plan_in_segments(batch, state)
    } else if planner.layout.has_pk() {
        planner.plan_upsert(batch, state)
    } else {
        planner.plan_changelog(batch)
    }
}

/// The layout stored with the table (its schema property), if it has one.
fn stored_layout(table: &DeltaTable) -> Option<TableLayout> {
    let state = table.snapshot().ok()?;
    let config = state.metadata().configuration();
    let schema: TableSchema = serde_json::from_str(config.get(PROP_SCHEMA)?).ok()?;
    let source_columns = config.get(PROP_SOURCE_COLUMNS).and_then(|n| n.parse().ok()).unwrap_or(schema.columns.len());
    let text_columns: BTreeSet<String> =
        config.get(PROP_TEXT_COLUMNS).and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default();
    Some(TableLayout::evolved(Arc::new(schema), source_columns, &text_columns))
}

/// `batch` with every row padded with NULLs to `width` columns (the kept
/// columns the source dropped).
fn pad_batch(batch: &TableBatch, width: usize) -> TableBatch {
    let pad = |row: &Row| {
        let mut row = row.clone();
        row.resize(width, Value::Null);
        row
    };
    let changes = batch
        .changes
        .iter()
        .map(|c| SourcedChange {
            change: match &c.change {
                RowChange::Insert { after } => RowChange::Insert { after: pad(after) },
                RowChange::Update { before, after } => RowChange::Update { before: pad(before), after: pad(after) },
                RowChange::Delete { before } => RowChange::Delete { before: pad(before) },
                RowChange::Truncate => RowChange::Truncate,
            },
            position: c.position.clone(),
            commit_ts: c.commit_ts,
            change_seq: c.change_seq,
        })
        .collect();
    TableBatch { changes, position: batch.position.clone() }
}

/// What an added column holds in rows older than it.
enum Fill<'a> {
    /// This value (the source's default).
    Value(&'a Value),
    /// The values of this column of the layout (the old name of a renamed column).
    Column(usize),
}

/// `batches` with the columns of `fills` set in every row.
fn fill_columns(
    layout: &TableLayout,
    batches: Vec<deltalake::arrow::array::RecordBatch>,
    fills: &[(usize, Fill<'_>)],
) -> Result<Vec<deltalake::arrow::array::RecordBatch>, String> {
    if fills.is_empty() {
        return Ok(batches);
    }
    batches
        .into_iter()
        .map(|batch| {
            let mut columns = batch.columns().to_vec();
            for (index, fill) in fills {
                columns[*index] = match fill {
                    Fill::Value(value) => {
                        let cells = vec![*value; batch.num_rows()];
                        crate::encode::encode_column(layout.stored_type(*index), &cells)?
                    }
                    Fill::Column(from) => batch.column(*from).clone(),
                };
            }
            deltalake::arrow::array::RecordBatch::try_new(layout.arrow.clone(), columns).map_err(|e| e.to_string())
        })
        .collect()
}
