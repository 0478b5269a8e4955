//! Per-test isolation: unique names, databases dropped and directories
//! removed when the test passes, kept and printed when it fails.

use crate::MariaDb;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A unique name `test_<8 hex>`.
pub fn unique_name() -> String {
    format!("test_{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// The marker file the test kit writes into the test root and into every
/// per-run root it creates. `tributary clean` refuses a root without it and
/// removes only directories that carry it, so it never deletes a user's data.
pub const TEST_ROOT_MARKER: &str = ".tributary-test-root";

/// The test root holding the per-run roots (`$TRIBUTARY_TEST_ROOT` or `<tmp>/tributary-tests`).
pub fn test_root() -> PathBuf {
    std::env::var_os("TRIBUTARY_TEST_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("tributary-tests"))
}

/// The per-run root holding every test's directories
/// (`<test root>/run-<pid>`, see [`test_root`]); [`TestDir::new`] creates it
/// with its markers.
pub fn run_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| test_root().join(format!("run-{}", std::process::id())))
}

/// Creates the run root (once) and writes [`TEST_ROOT_MARKER`] into it and
/// into the test root above it, so `tributary clean` may remove it later.
fn create_marked_run_root() -> std::io::Result<&'static Path> {
    let run = run_root();
    let marker = run.join(TEST_ROOT_MARKER);
    if !marker.exists() {
        std::fs::create_dir_all(run)?;
        let text = format!(
            "created by the Tributary test kit (process {}); `tributary clean` may remove this directory\n",
            std::process::id()
        );
        if let Some(base) = run.parent() {
            let base_marker = base.join(TEST_ROOT_MARKER);
            if !base_marker.exists() {
                std::fs::write(base_marker, "the Tributary test kit keeps its per-run directories here\n")?;
            }
        }
        std::fs::write(marker, text)?;
    }
    Ok(run)
}

/// A directory `test_<8 hex>` under the run root (e.g. a Delta table root).
/// Removed on Drop when the test passed; kept and its path printed when it failed.
pub struct TestDir {
    path: PathBuf,
}

impl TestDir {
    pub fn new() -> std::io::Result<Self> {
        let path = create_marked_run_root()?.join(unique_name());
        std::fs::create_dir_all(&path)?;
        Ok(TestDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test failed: kept its directory {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A database on a test MariaDB, dropped when the test passes and kept
/// (name printed) when it fails.
pub struct TestDatabase<'a> {
    server: &'a MariaDb,
    name: String,
}

impl<'a> TestDatabase<'a> {
    pub(crate) fn new(server: &'a MariaDb, name: String) -> Self {
        TestDatabase { server, name }
    }

    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs SQL with this database selected.
    pub fn exec(&self, sql: &str) -> Result<String, crate::TestKitError> {
        self.server.exec(&format!("USE `{}`; {sql}", self.name))
    }
}

impl Drop for TestDatabase<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test failed: kept database {} on 127.0.0.1:{}", self.name, self.server.port());
        } else {
            let _ = self.server.exec(&format!("DROP DATABASE IF EXISTS `{}`", self.name));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_dir_lives_in_a_run_root_marked_for_tributary_clean() {
        let dir = TestDir::new().unwrap();
        let run = dir.path().parent().unwrap();
        assert_eq!(run, run_root());
        assert!(run.join(TEST_ROOT_MARKER).is_file());
        assert!(run.parent().unwrap().join(TEST_ROOT_MARKER).is_file(), "the test root is marked too");
        assert!(!dir.path().join(TEST_ROOT_MARKER).exists(), "a test's own dir is not a run root");
    }
}
