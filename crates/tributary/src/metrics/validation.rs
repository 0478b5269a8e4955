//! The last `tributary validate` result, as the running pipeline exports it.
//!
//! `tributary validate` writes `<sink.delta.root>/_tributary/validation.json`
//! (temp file + rename, so a reader never sees half a file); `/metrics` reads
//! it at scrape time — parsed again only when its modification time or size
//! changed — and exports `tributary_validation_passed{table}`,
//! `tributary_validation_differences{table,kind}` and
//! `tributary_validation_last_run_timestamp_seconds`. A missing file exports
//! no per-table series (and a last-run timestamp of 0); a malformed one is
//! logged once (a warning) and exported like a missing one.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// The file name under `<sink.delta.root>/_tributary/`.
pub const FILE_NAME: &str = "validation.json";

/// Where `tributary validate` records its result for the pipeline whose Delta root is `root`.
pub fn file_path(root: &Path) -> PathBuf {
    root.join(tributary_delta::TRIBUTARY_DIR).join(FILE_NAME)
}

/// The content of `validation.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationFile {
    /// When the run that wrote the file finished (seconds since the epoch).
    pub timestamp: f64,
    /// `passed` (exit 0) or `failed` (exit 1); a run that could not validate (exit 2) writes nothing.
    pub outcome: String,
    pub exit_code: u8,
    /// Every table validated, by this run or (when it was limited with `--table`) an earlier one.
    pub tables: Vec<TableResult>,
}

/// One table's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableResult {
    /// `<database>.<table>`.
    pub table: String,
    /// False when the table failed (rows, schema, lag or no mirror); true when
    /// it passed or was not compared row by row (no primary key).
    pub passed: bool,
    /// `passed`, `failed` or `not_compared` (no primary key: schema and lag
    /// checked, rows not compared).
    pub status: String,
    pub source_rows: Option<u64>,
    pub delta_rows: Option<u64>,
    pub missing: u64,
    pub extra: u64,
    pub different: u64,
    /// Missing and extra columns plus type changes.
    pub schema_problems: u64,
    /// Other failures (no mirror, lag over the threshold).
    pub problems: u64,
    pub lag_secs: Option<f64>,
    /// When this table was validated (seconds since the epoch).
    pub timestamp: f64,
}

impl ValidationFile {
    /// Writes the file atomically: a temp file in the same directory, synced, then renamed over.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        use std::io::Write;
        if tributary_delta::remote_url(path).is_some() {
            let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)? + "\n";
            return tributary_delta::storage::write_object(path, text.into_bytes());
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(".{FILE_NAME}.{}.tmp", std::process::id()));
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        let result = (|| {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(text.as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// Reads the file; `Ok(None)` when there is none.
    pub fn read(path: &Path) -> anyhow::Result<Option<ValidationFile>> {
        if tributary_delta::remote_url(path).is_some() {
            let bytes = tributary_delta::storage::read_object(path)?;
            return Ok(bytes.map(|b| serde_json::from_slice(&b)).transpose()?);
        }
        match std::fs::read(path) {
            Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// The file a pipeline exports, and its last parse keyed by modification time and size.
#[derive(Default)]
pub struct ValidationSource {
    path: Mutex<Option<PathBuf>>,
    cache: Mutex<Option<(SystemTime, u64, Option<ValidationFile>)>>,
}

impl ValidationSource {
    pub fn set_path(&self, path: PathBuf) {
        *self.path.lock().unwrap() = Some(path);
        *self.cache.lock().unwrap() = None;
    }

    /// The current result: `None` when there is no path, no file or a malformed file.
    pub fn current(&self) -> Option<ValidationFile> {
        let path = self.path.lock().unwrap().clone()?;
        let key = if tributary_delta::remote_url(&path).is_some() {
            // An object store has no cheap modification time to watch: read it again once a minute.
            let now = std::time::UNIX_EPOCH
                + std::time::Duration::from_secs(
                    SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() / 60 * 60),
                );
            (now, 0)
        } else {
            let meta = std::fs::metadata(&path).ok()?;
            (meta.modified().ok()?, meta.len())
        };
        let mut cache = self.cache.lock().unwrap();
        if let Some((modified, len, parsed)) = cache.as_ref() {
            if (*modified, *len) == key {
                return parsed.clone();
            }
        }
        let parsed = match ValidationFile::read(&path) {
            Ok(parsed) => parsed,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring a malformed validation result");
                None
            }
        };
        *cache = Some((key.0, key.1, parsed.clone()));
        parsed
    }
}

/// This run's `current` tables plus the tables of `previous` this run did not
/// validate (a `--table` run replaces only its own tables), sorted by name.
pub fn merge_tables(mut current: Vec<TableResult>, previous: Option<ValidationFile>) -> Vec<TableResult> {
    if let Some(previous) = previous {
        let kept: Vec<TableResult> =
            previous.tables.into_iter().filter(|old| !current.iter().any(|t| t.table == old.table)).collect();
        current.extend(kept);
    }
    current.sort_by(|a, b| a.table.cmp(&b.table));
    current
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ValidationFile {
        ValidationFile {
            timestamp: 1_700_000_000.5,
            outcome: "failed".into(),
            exit_code: 1,
            tables: vec![TableResult {
                table: "shop.items".into(),
                passed: false,
                status: "failed".into(),
                source_rows: Some(10),
                delta_rows: Some(9),
                missing: 1,
                extra: 0,
                different: 2,
                schema_problems: 0,
                problems: 0,
                lag_secs: Some(1.5),
                timestamp: 1_700_000_000.5,
            }],
        }
    }

    #[test]
    fn a_table_run_replaces_only_its_tables_and_keeps_the_others() {
        let item = |table: &str, passed: bool| TableResult {
            table: table.into(),
            passed,
            status: if passed { "passed" } else { "failed" }.into(),
            ..sample().tables[0].clone()
        };
        let previous =
            ValidationFile { tables: vec![item("shop.items", false), item("shop.orders", false)], ..sample() };
        let merged = merge_tables(vec![item("shop.items", true), item("shop.a", true)], Some(previous));
        let got: Vec<(&str, bool)> = merged.iter().map(|t| (t.table.as_str(), t.passed)).collect();
        assert_eq!(got, [("shop.a", true), ("shop.items", true), ("shop.orders", false)]);
        assert_eq!(merge_tables(vec![item("b.x", true)], None).len(), 1);
    }

    #[test]
    fn written_atomically_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = file_path(dir.path());
        sample().write(&path).unwrap();
        assert_eq!(ValidationFile::read(&path).unwrap(), Some(sample()));
        let names: Vec<_> =
            std::fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, [FILE_NAME], "no temp file left behind");
    }

    #[test]
    fn missing_and_malformed_files_are_not_exported() {
        let dir = tempfile::tempdir().unwrap();
        let path = file_path(dir.path());
        let source = ValidationSource::default();
        assert_eq!(source.current(), None, "no path");
        source.set_path(path.clone());
        assert_eq!(source.current(), None, "no file");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "{ not json").unwrap();
        assert_eq!(source.current(), None, "malformed");
        sample().write(&path).unwrap();
        assert_eq!(source.current(), Some(sample()));
    }
}
