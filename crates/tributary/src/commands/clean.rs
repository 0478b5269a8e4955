//! `tributary clean`: removes leftovers of test runs (per-run roots with the
//! Delta tables kept by failed tests) older than a given age. It only ever
//! removes what the test kit created: the root must carry the test kit's
//! marker file ([`MARKER`]), else it is refused, and inside it only
//! directories that carry the marker too are removed; anything else is kept
//! and listed.

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

/// The marker file the test kit (`tributary_testkit::TEST_ROOT_MARKER`) writes
/// into the test root and into every per-run root it creates.
pub const MARKER: &str = ".tributary-test-root";

/// Where the test kit puts its per-run directories (`$TRIBUTARY_TEST_ROOT` or `<tmp>/tributary-tests`).
pub fn default_root() -> PathBuf {
    std::env::var_os("TRIBUTARY_TEST_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("tributary-tests"))
}

pub fn clean(root: &Path, older_than: &str, dry_run: bool) -> anyhow::Result<ExitCode> {
    let age = parse_age(older_than)?;
    if tributary_delta::storage::remote_url(root).is_some() {
        bail!(
            "clean removes the test kit's local run directories; {} is an object store, where the test kit \
             writes nothing that outlives a test (its S3 server keeps everything in memory): pass --root a local \
             test root",
            root.display()
        );
    }
    if !root.is_dir() {
        println!("nothing to clean: {} does not exist", root.display());
        return Ok(ExitCode::SUCCESS);
    }
    if !root.join(MARKER).is_file() {
        bail!(
            "refusing to clean {}: it has no {MARKER} marker, so the test kit did not create it; \
             pass --root the test root (default $TRIBUTARY_TEST_ROOT or <tmp>/tributary-tests)",
            root.display()
        );
    }
    let now = SystemTime::now();
    let mut removed = 0;
    let mut unmarked = Vec::new();
    for entry in std::fs::read_dir(root).with_context(|| format!("list {}", root.display()))? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_name() == MARKER {
            continue;
        }
        if !(entry.file_type()?.is_dir() && path.join(MARKER).is_file()) {
            unmarked.push(path);
            continue;
        }
        let modified = entry.metadata()?.modified()?;
        if now.duration_since(modified).unwrap_or_default() < age {
            continue;
        }
        if dry_run {
            println!("would remove {}", path.display());
        } else {
            std::fs::remove_dir_all(&path).with_context(|| format!("remove {}", path.display()))?;
            println!("removed {}", path.display());
        }
        removed += 1;
    }
    for path in &unmarked {
        println!("kept {} (no {MARKER} marker: not created by the test kit)", path.display());
    }
    println!("{removed} leftover(s) older than {older_than} under {}", root.display());
    Ok(ExitCode::SUCCESS)
}

/// Parses `90s`, `30m`, `1h`, `2d`.
fn parse_age(text: &str) -> anyhow::Result<Duration> {
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: u64 = number.parse().with_context(|| format!("--older-than {text:?}: expected e.g. 30m, 1h, 2d"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" | "" => n * 3600,
        "d" => n * 86_400,
        _ => bail!("--older-than {text:?}: unit must be s, m, h or d"),
    };
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marked_dir(path: &Path) {
        std::fs::create_dir_all(path).unwrap();
        std::fs::write(path.join(MARKER), "test kit\n").unwrap();
    }

    #[test]
    fn ages_parse_with_their_units() {
        assert_eq!(parse_age("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_age("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_age("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_age("2d").unwrap(), Duration::from_secs(172_800));
        assert!(parse_age("1w").is_err());
        assert!(parse_age("h").is_err());
    }

    #[test]
    fn only_marked_leftovers_older_than_the_age_are_removed() {
        let root = tempfile::tempdir().unwrap();
        marked_dir(root.path());
        marked_dir(&root.path().join("run-1"));
        std::fs::create_dir(root.path().join("user-data")).unwrap();
        std::fs::write(root.path().join("user-data/table.parquet"), "precious").unwrap();
        std::fs::write(root.path().join("notes.txt"), "precious").unwrap();

        clean(root.path(), "1h", false).unwrap();
        assert!(root.path().join("run-1").exists(), "a fresh run dir is kept");
        clean(root.path(), "0s", true).unwrap();
        assert!(root.path().join("run-1").exists(), "a dry run removes nothing");

        clean(root.path(), "0s", false).unwrap();
        assert!(!root.path().join("run-1").exists(), "an old marked run dir is removed");
        assert!(root.path().join("user-data/table.parquet").exists(), "an unmarked dir is never removed");
        assert!(root.path().join("notes.txt").exists(), "a file is never removed");
        assert!(root.path().join(MARKER).exists(), "the root keeps its marker");
    }

    #[test]
    fn a_root_without_the_marker_is_refused_in_one_line_and_left_alone() {
        let root = tempfile::tempdir().unwrap();
        marked_dir(&root.path().join("run-1"));
        std::fs::create_dir(root.path().join("photos")).unwrap();
        let err = clean(root.path(), "0s", false).unwrap_err();
        let message = crate::one_line(&err);
        assert!(message.starts_with("refusing to clean"), "{message}");
        assert!(message.contains(MARKER) && message.contains("--root"), "names the cause and the fix: {message}");
        assert!(!message.contains('\n'));
        assert!(root.path().join("run-1").exists() && root.path().join("photos").exists());
    }

    #[test]
    fn an_object_store_root_is_refused_in_one_line() {
        let e = clean(Path::new("s3://bucket/tests"), "1d", true).unwrap_err().to_string();
        assert!(e.contains("is an object store") && e.contains("--root a local"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn the_test_kit_marks_what_clean_may_remove() {
        assert_eq!(MARKER, tributary_testkit::TEST_ROOT_MARKER);
        let dir = tributary_testkit::TestDir::new().unwrap();
        let run = dir.path().parent().unwrap();
        assert!(run.join(MARKER).is_file(), "{}", run.display());
        assert!(run.parent().unwrap().join(MARKER).is_file());
    }
}
