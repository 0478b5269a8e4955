//! How far a chunked snapshot copy got, recorded in the commit info of every
//! commit of snapshot rows so a restart continues from there instead of
//! copying the table again.
//!
//! A chunked copy (docs/snapshots.md) reads the table in primary-key chunks,
//! each in a short read of its own, while nothing streams; streaming then
//! starts at the position read before the first chunk (`start`) and replays
//! every change since, matching inserts by key until the position read after
//! the last chunk (the catch-up bound, see [`crate::writer`]). The `cursor`
//! is the source's own record of the copy (its lanes and the last key each
//! read), opaque to the sink: it is stored with the rows it describes, in
//! the same commit, so it never claims rows that are not in the table.

use crate::commit::SnapshotProgressNote;
use tributary_core::SourcePosition;

/// A chunked snapshot in progress: where streaming continues once it is done,
/// and the source's cursor as of the rows committed so far.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotProgress {
    /// Streaming continues from here: every chunk was read after it.
    pub start: SourcePosition,
    /// The source's record of how far each lane of the copy got.
    pub cursor: serde_json::Value,
}

impl SnapshotProgress {
    pub(crate) fn to_note(&self) -> SnapshotProgressNote {
        SnapshotProgressNote { start: position_json(&self.start), cursor: self.cursor.clone() }
    }

    pub(crate) fn from_note(note: &SnapshotProgressNote) -> Option<Self> {
        Some(SnapshotProgress { start: serde_json::from_value(note.start.clone()).ok()?, cursor: note.cursor.clone() })
    }
}

/// The JSON form of a position, as commit notes store it.
pub(crate) fn position_json(position: &SourcePosition) -> serde_json::Value {
    serde_json::from_str(&position.to_json()).expect("positions are JSON")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_core::MySqlPosition;

    #[test]
    fn progress_survives_the_commit_note() {
        let progress = SnapshotProgress {
            start: SourcePosition::MySql(MySqlPosition::new("binlog.000003", 4711)),
            cursor: serde_json::json!({"lanes": [{"after": [{"i": 42}], "until": null}]}),
        };
        let note = serde_json::to_value(progress.to_note()).unwrap();
        let back = SnapshotProgress::from_note(&serde_json::from_value(note).unwrap()).unwrap();
        assert_eq!(back, progress);
    }
}
