//! Where the repo is, and a disk-space pre-check run before heavy tests so a
//! full disk gives one clear message instead of a confusing failure later.

use crate::TestKitError;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Free space the Spark and pipeline tests want under the test root.
pub const HEAVY_TEST_MIB: u64 = 2048;

/// The workspace root (configs and scripts live there). Found from the
/// crate under test, which cargo names at run time: the path compiled into
/// this crate can be another checkout's when a shared target directory reused
/// its build (CI's clone and a working copy share one).
pub fn repo_root() -> PathBuf {
    let compiled = Path::new(env!("CARGO_MANIFEST_DIR"));
    let runtime = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
    let is_root = |p: &Path| p.join("Cargo.lock").is_file() && p.join("scripts").is_dir();
    let found = runtime
        .as_deref()
        .into_iter()
        .chain([compiled])
        .find_map(|start| start.ancestors().find(|p| is_root(p)).map(Path::to_path_buf));
    found.unwrap_or_else(|| compiled.parent().and_then(Path::parent).unwrap_or(compiled).to_path_buf())
}

/// Free bytes on the file system holding `path` (or its nearest existing ancestor).
pub fn free_bytes(path: &Path) -> Result<u64, TestKitError> {
    let existing = path.ancestors().find(|p| p.exists()).unwrap_or(Path::new("/"));
    let out = Command::new("df")
        .args(["-Pk"])
        .arg(existing)
        .output()
        .map_err(|source| TestKitError::Io { context: "run df".into(), source })?;
    let text = String::from_utf8_lossy(&out.stdout);
    // POSIX format: Filesystem 1024-blocks Used Available Capacity Mounted-on
    let available_kib =
        text.lines().nth(1).and_then(|l| l.split_whitespace().nth(3)).and_then(|v| v.parse::<u64>().ok()).ok_or_else(
            || TestKitError::Start {
                what: format!("df -Pk {}", existing.display()),
                detail: format!("unexpected output: {}{}", text, String::from_utf8_lossy(&out.stderr)),
            },
        )?;
    Ok(available_kib * 1024)
}

/// Fails with a clear message when fewer than `need_mib` MiB are free where
/// `path` lives; `purpose` says what needs the space.
pub fn ensure_free_space(path: &Path, need_mib: u64, purpose: &str) -> Result<(), TestKitError> {
    let free_mib = free_bytes(path)? / (1024 * 1024);
    if free_mib < need_mib {
        return Err(TestKitError::Start {
            what: format!("disk-space pre-check for {purpose}"),
            detail: format!(
                "only {free_mib} MiB free under {} but {need_mib} MiB are needed; free some space \
                 (`make clean-delta-tables` removes test leftovers) or point TMPDIR / TRIBUTARY_TEST_ROOT \
                 at a larger disk",
                path.display()
            ),
        });
    }
    Ok(())
}

/// The pre-check for heavy tests on the per-run test root.
pub fn ensure_space_for_heavy_tests(purpose: &str) -> Result<(), TestKitError> {
    ensure_free_space(crate::isolation::run_root(), HEAVY_TEST_MIB, purpose)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_precheck_names_the_path_and_the_shortfall() {
        assert!(free_bytes(Path::new("/definitely/not/here")).unwrap() > 0);
        let err = ensure_free_space(Path::new("/tmp"), u64::MAX / (2 << 20), "a test").unwrap_err().to_string();
        assert!(err.contains("MiB free under /tmp") && err.contains("a test"), "{err}");
        ensure_free_space(Path::new("/tmp"), 1, "a test").unwrap();
        assert!(repo_root().join("Cargo.toml").is_file());
    }
}
