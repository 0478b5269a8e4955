//! The Delta Lake sink of Tributary.
//!
//! Each source table is mirrored into one Delta table at
//! `<root>/<schema>/<table>` with Change Data Feed enabled, readable by Spark
//! 3.5 + Delta 3.x and any other Delta reader. A [`TableWriter`] applies each
//! batch of whole source transactions as exactly one Delta commit which also
//! stores the batch's source position (a `txn` action `{app_id, position as
//! i64}` plus the full position in the commit info), so a restart resumes
//! exactly where the table stands. Inserts are appended; updates and deletes
//! rewrite only the files whose primary-key statistics can hold the key and
//! record the changes in `_change_data` files. Tables without primary key are
//! append-only changelogs. See [`schema`] for the type mapping and the
//! metadata columns. A commit overtaken by another writer's commit (an
//! OPTIMIZE, say) is judged by Tributary's own conflict rules (module
//! `conflict`): committed again, re-planned on the new version, or refused.

mod apply;
pub mod cdf;
mod commit;
pub mod compact;
pub mod config;
mod conflict;
mod constant_columns;
mod deletion_vector;
mod deletion_vector_commit;
mod durable;
pub mod encode;
pub mod error;
pub mod evolve;
mod files;
mod int_lookup;
mod key;
pub mod mirror;
pub mod ownership;
mod remote_file;
pub mod schema;
mod snapshot_progress;
mod stats;
pub mod status;
pub mod storage;
mod table;
mod transaction_parts;
pub mod vacuum;
pub mod writer;

pub use cdf::{read_changes, read_rows, ChangeRecord};
pub use compact::{CompactionOptions, CompactionStats};
pub use config::{DeltaSinkConfig, TypeChangePolicy, UpdateMode};
pub use encode::{value_to_json, Op};
pub use error::DeltaError;
pub use evolve::{ColumnChange, SchemaChangeError};
pub use mirror::{expected_delta_type, for_each_row, mirror_columns, MirrorColumn};
pub use ownership::{adopt, Adopted, Owner, Recorded};
pub use snapshot_progress::SnapshotProgress;
pub use status::{table_status, SchemaChangeRecord, TableStatus};
pub use storage::{probe_conditional_writes, register_root, remote_url, StorageOptions};
pub use table::{exists as table_exists, list_tables, TRIBUTARY_DIR};
pub use vacuum::{vacuum, VacuumOptions, VacuumStats};
pub use writer::{CommitStats, SourcedChange, TableBatch, TableWriter};

pub(crate) use tributary_core::error::one_line;

#[cfg(test)]
mod deletion_vector_tests;
#[cfg(test)]
mod deletion_vector_writer_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod transaction_parts_tests;
