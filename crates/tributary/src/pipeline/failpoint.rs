//! Test failpoints: hooks that let the integration tests provoke a failure of
//! a running `tributary run` from outside. Compiled only with the cargo
//! feature `failpoints` (`make test` sets it); without it every hook is a
//! constant `false`, so production builds carry none.
//!
//! `TRIBUTARY_FAILPOINT_STALL_FILE=<path>`: while the file `<path>` exists the
//! streaming loop keeps reading the binlog but commits nothing to Delta, so
//! the source lag grows (the live alert test stalls the sink this way); once
//! the file is removed the pending batch is committed and the lag drops.
//!
//! `TRIBUTARY_FAILPOINT_HOLD_COMMIT_FILE=<path>`: while the file exists a
//! commit that starts waits inside the commit (a Delta commit that takes as
//! long as the file lives): the loop reads nothing meanwhile, so the source
//! reader's channel fills and the reader stops reading the connection.
//!
//! `TRIBUTARY_FAILPOINT_HOLD_START_FILE=<path>`: while the file exists a
//! PostgreSQL start waits after its copy, before streaming starts (the
//! replication session idles as it does after a long initial copy).
//!
//! `TRIBUTARY_FAILPOINT_DIE_AFTER_FOLLOW=<n>`: after carrying `n` tables over
//! to a promoted replica ([`super::failover`]) the process dies at once
//! (abort: no cleanup, as kill -9), in the middle of the hand-over.
//!
//! `TRIBUTARY_FAILPOINT_DIE_IN_COMPACTION=1`: the first compaction dies at
//! once after writing its new files, before committing them.

#[cfg(feature = "failpoints")]
use std::path::PathBuf;
#[cfg(feature = "failpoints")]
use std::sync::OnceLock;

/// The environment variable naming the stall file.
#[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
pub const STALL_FILE_VAR: &str = "TRIBUTARY_FAILPOINT_STALL_FILE";

/// True while the stall file of [`STALL_FILE_VAR`] exists.
#[cfg(feature = "failpoints")]
pub fn sink_stalled() -> bool {
    static STALL_FILE: OnceLock<Option<PathBuf>> = OnceLock::new();
    STALL_FILE
        .get_or_init(|| std::env::var_os(STALL_FILE_VAR).filter(|v| !v.is_empty()).map(PathBuf::from))
        .as_ref()
        .is_some_and(|path| path.exists())
}

/// Without the `failpoints` feature the sink never stalls.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn sink_stalled() -> bool {
    false
}

/// The environment variable naming the hold-commit file.
#[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
pub const HOLD_COMMIT_FILE_VAR: &str = "TRIBUTARY_FAILPOINT_HOLD_COMMIT_FILE";

/// Waits while the file named by the environment variable `var` exists.
#[cfg(feature = "failpoints")]
async fn wait_while_file_exists(var: &str) {
    let Some(path) = std::env::var_os(var).filter(|v| !v.is_empty()).map(PathBuf::from) else { return };
    while path.exists() {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Waits while the hold-commit file of [`HOLD_COMMIT_FILE_VAR`] exists.
#[cfg(feature = "failpoints")]
pub async fn hold_commit() {
    wait_while_file_exists(HOLD_COMMIT_FILE_VAR).await;
}

/// Without the `failpoints` feature a commit is never held.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub async fn hold_commit() {}

/// The environment variable naming the hold-start file.
#[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
pub const HOLD_START_FILE_VAR: &str = "TRIBUTARY_FAILPOINT_HOLD_START_FILE";

/// Waits while the hold-start file of [`HOLD_START_FILE_VAR`] exists.
#[cfg(feature = "failpoints")]
pub async fn hold_start() {
    wait_while_file_exists(HOLD_START_FILE_VAR).await;
}

/// Without the `failpoints` feature a start is never held.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub async fn hold_start() {}

/// The environment variable giving the number of tables after which the failover hand-over dies.
#[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
pub const DIE_AFTER_FOLLOW_VAR: &str = "TRIBUTARY_FAILPOINT_DIE_AFTER_FOLLOW";

/// Dies at once when `followed` reaches the count of [`DIE_AFTER_FOLLOW_VAR`].
#[cfg(feature = "failpoints")]
pub fn after_followed(followed: usize) {
    let limit = std::env::var(DIE_AFTER_FOLLOW_VAR).ok().and_then(|v| v.parse::<usize>().ok());
    if limit.is_some_and(|n| followed >= n) {
        eprintln!("failpoint {DIE_AFTER_FOLLOW_VAR}: dying after carrying {followed} tables over");
        std::process::abort();
    }
}

/// Without the `failpoints` feature the hand-over never dies on purpose.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn after_followed(_followed: usize) {}

/// The environment variable that makes a compaction die before its commit.
#[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
pub const DIE_IN_COMPACTION_VAR: &str = "TRIBUTARY_FAILPOINT_DIE_IN_COMPACTION";

/// Dies at once when [`DIE_IN_COMPACTION_VAR`] is set (called between a compaction's files and its commit).
#[cfg(feature = "failpoints")]
pub fn in_compaction() {
    if std::env::var(DIE_IN_COMPACTION_VAR).is_ok_and(|v| v == "1") {
        eprintln!("failpoint {DIE_IN_COMPACTION_VAR}: dying with a compaction's files written and not committed");
        std::process::abort();
    }
}

/// Without the `failpoints` feature a compaction never dies on purpose.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn in_compaction() {}
