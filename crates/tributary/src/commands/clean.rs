//! `tributary clean`: removes leftovers of test runs (per-run Delta table
//! roots kept by failed tests) older than a given age.

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

/// Where the test kit puts its per-run directories (`$TRIBUTARY_TEST_ROOT` or `<tmp>/tributary-tests`).
pub fn default_root() -> PathBuf {
    std::env::var_os("TRIBUTARY_TEST_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("tributary-tests"))
}

pub fn clean(root: &Path, older_than: &str, dry_run: bool) -> anyhow::Result<ExitCode> {
    let age = parse_age(older_than)?;
    if !root.is_dir() {
        println!("nothing to clean: {} does not exist", root.display());
        return Ok(ExitCode::SUCCESS);
    }
    let now = SystemTime::now();
    let mut removed = 0;
    for entry in std::fs::read_dir(root).with_context(|| format!("list {}", root.display()))? {
        let entry = entry?;
        let modified = entry.metadata()?.modified()?;
        if now.duration_since(modified).unwrap_or_default() < age {
            continue;
        }
        let path = entry.path();
        if dry_run {
            println!("would remove {}", path.display());
        } else {
            std::fs::remove_dir_all(&path).with_context(|| format!("remove {}", path.display()))?;
            println!("removed {}", path.display());
        }
        removed += 1;
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
    fn only_old_leftovers_are_removed() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("run-1")).unwrap();
        clean(root.path(), "1h", false).unwrap();
        assert!(root.path().join("run-1").exists(), "a fresh run dir is kept");
        clean(root.path(), "0s", false).unwrap();
        assert!(!root.path().join("run-1").exists());
    }
}
