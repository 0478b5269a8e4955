//! Who may write a table. Every table records the pipeline that writes it
//! and the identity of that pipeline's source (table properties
//! [`PROP_OWNER_PIPELINE`], [`PROP_OWNER_SOURCE`]); a writer of another
//! pipeline or another source refuses the table instead of writing it, so
//! nothing is ever removed from a table this pipeline does not own (a second
//! pipeline on the same root, a shard whose databases have the same names).
//! [`adopt`] hands a table over when a person decided so.
//!
//! Tables written before ownership was recorded are claimed by the pipeline
//! whose commits they hold; an empty table is claimed by whoever opens it.

use crate::commit::{self, CommitKind, CommitNote};
use crate::config::DeltaSinkConfig;
use crate::DeltaError;
use deltalake::kernel::{Action, MetadataExt as _};
use deltalake::protocol::DeltaOperation;
use deltalake::DeltaTable;
use std::collections::HashMap;
use std::path::Path;
use tributary_core::{SourcePosition, TableId};

/// Table property: the pipeline (`[pipeline] name`, the txn app id) that writes the table.
pub const PROP_OWNER_PIPELINE: &str = "tributary.owner.pipeline";
/// Table property: the identity of that pipeline's source (see each source's `identity` module).
pub const PROP_OWNER_SOURCE: &str = "tributary.owner.source";

/// A pipeline and, when known, the identity of its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub pipeline: String,
    /// `None`: the source's identity is not known (it is not checked, and not recorded).
    pub source: Option<String>,
}

impl Owner {
    pub fn new(pipeline: impl Into<String>, source: impl Into<String>) -> Self {
        Owner { pipeline: pipeline.into(), source: Some(source.into()) }
    }

    /// The table properties that record this owner.
    pub fn properties(&self) -> HashMap<String, String> {
        let mut props = HashMap::from([(PROP_OWNER_PIPELINE.to_string(), self.pipeline.clone())]);
        if let Some(source) = &self.source {
            props.insert(PROP_OWNER_SOURCE.to_string(), source.clone());
        }
        props
    }
}

/// A pipeline whose source identity is not known (tests, tools that only read).
impl From<&str> for Owner {
    fn from(pipeline: &str) -> Self {
        Owner { pipeline: pipeline.to_string(), source: None }
    }
}

/// The owner a table records, if it records one.
pub(crate) fn recorded_owner(config: &HashMap<String, String>) -> Option<Owner> {
    let pipeline = config.get(PROP_OWNER_PIPELINE)?.clone();
    Some(Owner { pipeline, source: config.get(PROP_OWNER_SOURCE).cloned() })
}

/// What opening a table as `ours` must do about its ownership.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Claim {
    /// The table records `ours` already.
    Owned,
    /// The table is ours but does not record it (fully): record `ours`.
    Record,
}

/// Decides whether `ours` may write a table that records `recorded` (and,
/// for a table recording nobody, whether it holds commits of `ours` or is
/// empty). The error text names the owner and the options.
pub(crate) fn claim(
    table: &Path,
    recorded: Option<&Owner>,
    ours: &Owner,
    holds_our_commits: bool,
    is_empty: bool,
) -> Result<Claim, DeltaError> {
    let refuse = |owner: String| DeltaError::NotOwner { table: table.to_path_buf(), owner, ours: describe(ours) };
    match recorded {
        Some(owner) if owner.pipeline != ours.pipeline => Err(refuse(describe(owner))),
        Some(owner) => match (&owner.source, &ours.source) {
            (Some(theirs), Some(mine)) if theirs != mine => Err(refuse(describe(owner))),
            (None, Some(_)) => Ok(Claim::Record),
            _ => Ok(Claim::Owned),
        },
        None if holds_our_commits || is_empty => Ok(Claim::Record),
        None => Err(refuse(format!(
            "another writer (no {PROP_OWNER_PIPELINE} property and no commit of pipeline {:?})",
            ours.pipeline
        ))),
    }
}

fn describe(owner: &Owner) -> String {
    match &owner.source {
        Some(source) => format!("pipeline {:?} (source {source})", owner.pipeline),
        None => format!("pipeline {:?}", owner.pipeline),
    }
}

/// Commits `owner` as the table's owner (metadata only, no data change),
/// plus, with `carry`, the position the table holds as `owner`'s txn.
pub(crate) async fn record_owner(
    table: &mut DeltaTable,
    owner: &Owner,
    carry: Option<(&SourcePosition, i64)>,
) -> Result<i64, deltalake::DeltaTableError> {
    let state = table.snapshot()?;
    let mut metadata = state.metadata().clone();
    for (key, value) in owner.properties() {
        metadata = metadata.add_config_key(key, value)?;
    }
    let note = match carry {
        Some((position, version)) => CommitNote::new(&owner.pipeline, CommitKind::Batch, Some(position), Some(version)),
        None => CommitNote::new(&owner.pipeline, CommitKind::Upgrade, None, None),
    };
    let operation = DeltaOperation::UpdateTableMetadata {
        metadata_update: deltalake::operations::update_table_metadata::TableMetadataUpdate {
            name: None,
            description: None,
        },
    };
    commit::commit(table, vec![Action::Metadata(metadata)], operation, note, Default::default()).await
}

/// What [`adopt`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct Adopted {
    /// The owner the table recorded before, if any.
    pub previous: Option<Owner>,
    /// The position the adopting pipeline continues from (the previous
    /// owner's, carried over because it read the same source and its copy was
    /// complete); `None`: the pipeline copies the table again on its next start.
    pub continues_from: Option<SourcePosition>,
    /// The table's Delta version after the adoption (unchanged when it was owned already).
    pub delta_version: i64,
}

/// Makes `owner` the owner of the Delta table of `id`. When the previous
/// owner read the same source and its copy is complete, its committed
/// position is carried over (a txn of `owner` in the same commit), so the
/// adopting pipeline continues exactly once; otherwise the adopting pipeline
/// copies the table again on its next start (replacing the rows).
pub async fn adopt(cfg: &DeltaSinkConfig, id: &TableId, owner: &Owner) -> Result<Adopted, DeltaError> {
    let path = cfg.table_path(id);
    let mut table = crate::table::open_existing(&path).await?;
    let err = |e| DeltaError::delta(&path, "adopt", e);
    let state = table.snapshot().map_err(err)?;
    let previous = recorded_owner(state.metadata().configuration());
    let latest = state.version() as i64;
    if previous.as_ref() == Some(owner) {
        return Ok(Adopted { previous, continues_from: None, delta_version: latest });
    }
    let same_source = previous.as_ref().is_some_and(|p| p.source.is_some() && p.source == owner.source);
    let carry = match (&previous, same_source) {
        (Some(prev), true) => complete_position(&table, &prev.pipeline).await.map_err(err)?,
        _ => None,
    };
    let version = record_owner(&mut table, owner, carry.as_ref().map(|(p, v)| (p, *v))).await.map_err(err)?;
    tracing::info!(table = %path.display(), previous = ?previous, owner = ?owner, version, "table adopted");
    Ok(Adopted { previous, continues_from: carry.map(|(p, _)| p), delta_version: version })
}

/// The position (and its txn version) `pipeline` committed last, when its
/// copy of the table is complete; `None` otherwise.
async fn complete_position(
    table: &DeltaTable,
    pipeline: &str,
) -> Result<Option<(SourcePosition, i64)>, deltalake::DeltaTableError> {
    let latest = table.snapshot()?.version() as i64;
    let log_store = table.log_store();
    let last = commit::find_note(log_store.as_ref(), latest, pipeline, |n| !n.kind.is_upgrade()).await?;
    let Some(found) = last.filter(|f| f.note.kind.completes_snapshot()) else { return Ok(None) };
    let with_txn = if found.note.txn_version.is_some() {
        Some(found)
    } else {
        commit::find_note(log_store.as_ref(), found.version, pipeline, |n| n.txn_version.is_some()).await?
    };
    Ok(with_txn.and_then(|f| Some((f.note.position()?, f.note.txn_version?))))
}

/// What a table records about its writer: the owner, and the position that
/// owner's complete copy holds (`None` while a copy is unfinished).
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub owner: Owner,
    pub position: Option<SourcePosition>,
}

/// What the table of `id` records, if it exists and records an owner.
pub async fn recorded(cfg: &DeltaSinkConfig, id: &TableId) -> Result<Option<Recorded>, DeltaError> {
    let path = cfg.table_path(id);
    if !crate::table::exists(&path) {
        return Ok(None);
    }
    let table = crate::table::open_existing(&path).await?;
    let err = |e| DeltaError::delta(&path, "read the table's owner", e);
    let Some(owner) = recorded_owner(table.snapshot().map_err(err)?.metadata().configuration()) else {
        return Ok(None);
    };
    let position = complete_position(&table, &owner.pipeline).await.map_err(err)?.map(|(p, _)| p);
    Ok(Some(Recorded { owner, position }))
}

/// After a failover (the same pipeline, a new server of the same source):
/// records `owner` (the new server's identity) and `position` (where the
/// table continues in the new server's binlog) as the table's txn, in one
/// commit, so the pipeline continues on the new server exactly once. Refused
/// when the table no longer records `previous` (someone else moved it meanwhile).
pub async fn follow_failover(
    cfg: &DeltaSinkConfig,
    id: &TableId,
    previous: &Owner,
    owner: &Owner,
    position: &SourcePosition,
) -> Result<i64, DeltaError> {
    let path = cfg.table_path(id);
    let mut table = crate::table::open_existing(&path).await?;
    let err = |e| DeltaError::delta(&path, "continue after the failover", e);
    let recorded = recorded_owner(table.snapshot().map_err(err)?.metadata().configuration());
    if recorded.as_ref() != Some(previous) {
        return Err(DeltaError::NotOwner {
            table: path.clone(),
            owner: recorded.as_ref().map_or_else(|| "nobody".to_string(), describe),
            ours: describe(owner),
        });
    }
    let version = position.to_version().map_err(|source| DeltaError::Position {
        table: path.clone(),
        position: position.to_string(),
        source,
    })?;
    record_owner(&mut table, owner, Some((position, version))).await.map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(p: &str, s: Option<&str>) -> Owner {
        Owner { pipeline: p.into(), source: s.map(str::to_string) }
    }

    #[test]
    fn another_pipeline_or_another_source_is_refused_naming_the_owner_and_the_options() {
        let path = Path::new("/lake/shop/orders");
        let a = owner("a", Some("mariadb:server_id=1,gtid_domain_id=0"));
        let err = claim(path, Some(&a), &owner("b", a.source.as_deref()), false, false).unwrap_err().to_string();
        assert!(
            err.contains("pipeline \"a\"") && err.contains("tributary adopt") && err.contains("table_prefix"),
            "{err}"
        );
        let shard = owner("a", Some("mariadb:server_id=2,gtid_domain_id=0"));
        assert!(claim(path, Some(&a), &shard, true, false).is_err(), "same name, other source");
        assert_eq!(claim(path, Some(&a), &a, true, false).unwrap(), Claim::Owned);
        assert_eq!(claim(path, Some(&owner("a", None)), &a, true, false).unwrap(), Claim::Record);
        assert_eq!(claim(path, Some(&a), &owner("a", None), true, false).unwrap(), Claim::Owned);
    }

    #[test]
    fn a_table_recording_nobody_is_claimed_only_when_it_holds_our_commits_or_nothing() {
        let path = Path::new("/lake/shop/orders");
        let a = owner("a", Some("x"));
        assert_eq!(claim(path, None, &a, true, false).unwrap(), Claim::Record);
        assert_eq!(claim(path, None, &a, false, true).unwrap(), Claim::Record);
        let err = claim(path, None, &a, false, false).unwrap_err().to_string();
        assert!(err.contains("another writer"), "{err}");
    }
}
