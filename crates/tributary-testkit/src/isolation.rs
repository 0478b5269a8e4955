//! Per-test isolation: unique names, databases dropped and directories
//! removed when the test passes, kept and printed when it fails.

use crate::MariaDb;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A unique name `test_<8 hex>`.
pub fn unique_name() -> String {
    format!("test_{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// The per-run root holding every test's directories
/// (`$TRIBUTARY_TEST_ROOT` or `<tmp>/tributary-tests/run-<pid>`).
pub fn run_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let base = std::env::var_os("TRIBUTARY_TEST_ROOT")
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("tributary-tests"));
        base.join(format!("run-{}", std::process::id()))
    })
}

/// A directory `test_<8 hex>` under the run root (e.g. a Delta table root).
/// Removed on Drop when the test passed; kept and its path printed when it failed.
pub struct TestDir {
    path: PathBuf,
}

impl TestDir {
    pub fn new() -> std::io::Result<Self> {
        let path = run_root().join(unique_name());
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
