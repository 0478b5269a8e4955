//! Where a table's files live: a local directory or an object store
//! (`s3://bucket/prefix`, and `gs://` / `abfss://` compiled in at no cost),
//! and the one place the sink reads, writes and deletes them.
//!
//! A table location stays a `Path` in the sink's signatures; its text is
//! either a local path or a URL ([`remote_url`] tells them apart). The
//! `[sink.delta.storage]` options of a root ([`StorageOptions`]) are
//! registered once per process ([`register_root`]) and apply to every table
//! below it, for delta-rs (log, commits) and for [`TableFiles`] alike.
//!
//! Stores: object_store's own builders (`AmazonS3Builder` etc., already
//! compiled into the binary through the Delta kernel) behind deltalake's
//! factory registry, with deltalake's `DefaultLogStore`, which creates each
//! commit file with a conditional put (`If-None-Match: *` on S3): two writers
//! can never both create version N, without a lock service. deltalake's own
//! `s3` feature would give the same protocol for 36 more crates (the AWS SDK;
//! docs/s3-design.md). [`probe_conditional_writes`] refuses a store that
//! ignores the condition before anything is written.
//!
//! Local tables keep `std::fs` (here and in the `durable` module) because
//! object_store's `LocalFileSystem` never fsyncs. Remote file operations are
//! synchronous calls for the planner's worker threads: each runs on a small
//! dedicated IO runtime and the caller waits for its answer ([`block_on_io`]),
//! which is safe from any thread, inside the main runtime or not.

use crate::DeltaError;
use deltalake::logstore::object_store::path::Path as StorePath;
use deltalake::logstore::object_store::{
    self, aws::AmazonS3Builder, azure::MicrosoftAzureBuilder, gcp::GoogleCloudStorageBuilder, ObjectStore,
    ObjectStoreExt as _, PutMode, PutOptions, PutPayload, RetryConfig,
};
use deltalake::logstore::{
    default_logstore, logstore_factories, object_store_factories, LogStore, LogStoreFactory, ObjectStoreFactory,
    ObjectStoreRef, StorageConfig,
};
use deltalake::{DeltaResult, DeltaTableError};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use url::Url;

/// URL schemes of the object stores a root may name.
const REMOTE_SCHEMES: [&str; 5] = ["s3", "gs", "abfss", "az", "azure"];

/// The URL of `location` when it names an object store (`s3://bucket/prefix/...`), else `None` (a local path).
pub fn remote_url(location: &Path) -> Option<Url> {
    let text = location.to_str()?;
    let (scheme, _) = text.split_once("://")?;
    if !REMOTE_SCHEMES.contains(&scheme) {
        return None;
    }
    Url::parse(text.trim_end_matches('/')).ok()
}

/// `[sink.delta.storage]`: how to reach the object store of a remote root.
/// Keys are object_store's option names without the `aws_` / `google_` /
/// `azure_` prefix where it has one (`endpoint`, `region`, `allow_http`,
/// `virtual_hosted_style_request`, `access_key_id`, `secret_access_key`,
/// `session_token`, ...); what is not set comes from the standard environment
/// (`AWS_*`, instance or task role, web identity). Secrets never appear in
/// `Debug` output or logs.
#[derive(Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct StorageOptions(pub BTreeMap<String, String>);

/// Option names whose values are never shown.
const SECRET_OPTIONS: [&str; 5] = ["secret_access_key", "session_token", "token", "access_key", "client_secret"];

impl std::fmt::Debug for StorageOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown: BTreeMap<&str, &str> = self
            .0
            .iter()
            .map(|(k, v)| {
                let secret = SECRET_OPTIONS.iter().any(|s| k.trim_start_matches("aws_").ends_with(s));
                (k.as_str(), if secret { "<redacted>" } else { v.as_str() })
            })
            .collect();
        shown.fmt(f)
    }
}

impl StorageOptions {
    /// Checks the names against the store `scheme` understands; the error names the option.
    pub fn validate(&self, scheme: &str) -> Result<(), DeltaError> {
        for key in self.0.keys() {
            if store_key(scheme, key).is_none() {
                return Err(DeltaError::Config {
                    field: "sink.delta.storage",
                    problem: format!(
                        "unknown option {key:?} for {scheme}:// (e.g. endpoint, region, allow_http, \
                         virtual_hosted_style_request, access_key_id, secret_access_key)"
                    ),
                });
            }
        }
        Ok(())
    }
}

/// object_store's name of option `key` for `scheme`, when it has one.
fn store_key(scheme: &str, key: &str) -> Option<String> {
    let (prefix, known): (&str, fn(&str) -> bool) = match scheme {
        "s3" => ("aws_", |k| k.parse::<object_store::aws::AmazonS3ConfigKey>().is_ok()),
        "gs" => ("google_", |k| k.parse::<object_store::gcp::GoogleConfigKey>().is_ok()),
        _ => ("azure_", |k| k.parse::<object_store::azure::AzureConfigKey>().is_ok()),
    };
    if key == "allow_http" || key == "timeout" || key == "connect_timeout" {
        return Some(key.to_string());
    }
    [key.to_string(), format!("{prefix}{key}")].into_iter().find(|k| known(k))
}

/// Options registered per remote root (its URL text without a trailing slash).
fn registry() -> &'static Mutex<Vec<(String, StorageOptions)>> {
    static ROOTS: OnceLock<Mutex<Vec<(String, StorageOptions)>>> = OnceLock::new();
    ROOTS.get_or_init(Default::default)
}

/// Makes `options` apply to every table below `root` (a no-op for a local root).
pub fn register_root(root: &Path, options: &StorageOptions) -> Result<(), DeltaError> {
    let Some(url) = remote_url(root) else { return Ok(()) };
    options.validate(url.scheme())?;
    register_factories();
    let key = url.as_str().trim_end_matches('/').to_string();
    let mut roots = registry().lock().unwrap_or_else(|e| e.into_inner());
    roots.retain(|(r, _)| *r != key);
    roots.push((key, options.clone()));
    Ok(())
}

/// The options for the table at `url`: those of the longest registered root holding it.
pub(crate) fn options_for(url: &Url) -> HashMap<String, String> {
    let text = url.as_str();
    let roots = registry().lock().unwrap_or_else(|e| e.into_inner());
    let best = roots
        .iter()
        .filter(|(root, _)| text == root || text.starts_with(&format!("{root}/")))
        .max_by_key(|(root, _)| root.len());
    best.map(|(_, options)| options.0.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default()
}

/// Bounded retries: a store that is down fails a command within a minute
/// instead of object_store's default three.
fn retry() -> RetryConfig {
    RetryConfig { max_retries: 6, retry_timeout: Duration::from_secs(60), ..RetryConfig::default() }
}

/// A store for the bucket / container of `url` (not prefixed), from the
/// environment plus `options`.
fn bucket_store(url: &Url, options: &HashMap<String, String>) -> DeltaResult<ObjectStoreRef> {
    let scheme = url.scheme();
    let invalid = |e: object_store::Error| DeltaTableError::ObjectStore { source: e };
    let named = |key: &str| store_key(scheme, key).unwrap_or_else(|| key.to_string());
    let store: ObjectStoreRef = match scheme {
        "s3" => {
            let mut builder = AmazonS3Builder::from_env().with_url(url.as_str()).with_retry(retry());
            for (key, value) in options {
                let key = named(key);
                builder = match key.as_str() {
                    "allow_http" => builder.with_allow_http(value == "true"),
                    _ => builder.with_config(key.parse().map_err(invalid)?, value),
                };
            }
            Arc::new(builder.build().map_err(invalid)?)
        }
        "gs" => {
            let mut builder = GoogleCloudStorageBuilder::from_env().with_url(url.as_str()).with_retry(retry());
            for (key, value) in options {
                builder = match named(key).as_str() {
                    "allow_http" => {
                        builder.with_client_options(object_store::ClientOptions::new().with_allow_http(value == "true"))
                    }
                    key => builder.with_config(key.parse().map_err(invalid)?, value),
                };
            }
            Arc::new(builder.build().map_err(invalid)?)
        }
        _ => {
            let mut builder = MicrosoftAzureBuilder::from_env().with_url(url.as_str()).with_retry(retry());
            for (key, value) in options {
                builder = match named(key).as_str() {
                    "allow_http" => builder.with_allow_http(value == "true"),
                    key => builder.with_config(key.parse().map_err(invalid)?, value),
                };
            }
            Arc::new(builder.build().map_err(invalid)?)
        }
    };
    Ok(store)
}

/// One store per bucket and options: each holds a connection pool.
fn cached_bucket_store(url: &Url, options: &HashMap<String, String>) -> DeltaResult<ObjectStoreRef> {
    type Cache = Mutex<HashMap<String, ObjectStoreRef>>;
    static STORES: OnceLock<Cache> = OnceLock::new();
    let mut sorted: Vec<_> = options.iter().collect();
    sorted.sort();
    let key = format!("{}://{}|{sorted:?}", url.scheme(), url.host_str().unwrap_or_default());
    let mut stores = STORES.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    if let Some(store) = stores.get(&key) {
        return Ok(store.clone());
    }
    let store = bucket_store(url, options)?;
    stores.insert(key, store.clone());
    Ok(store)
}

/// deltalake's factory for our schemes: the bucket store and the path in it.
struct BucketStoreFactory;

impl ObjectStoreFactory for BucketStoreFactory {
    fn parse_url_opts(&self, url: &Url, config: &StorageConfig) -> DeltaResult<(ObjectStoreRef, StorePath)> {
        let mut options = options_for(url);
        options.extend(config.raw.clone());
        let store = cached_bucket_store(url, &options)?;
        let path =
            StorePath::from_url_path(url.path()).map_err(|e| DeltaTableError::ObjectStore { source: e.into() })?;
        Ok((store, path))
    }
}

/// deltalake's default log store: commits by conditional put.
struct ConditionalPutLogStoreFactory;

impl LogStoreFactory for ConditionalPutLogStoreFactory {
    fn with_options(
        &self,
        prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &Url,
        options: &StorageConfig,
    ) -> DeltaResult<Arc<dyn LogStore>> {
        Ok(default_logstore(prefixed_store, root_store, location, options))
    }
}

/// Registers the remote schemes with deltalake (once).
fn register_factories() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        for scheme in REMOTE_SCHEMES {
            let url = Url::parse(&format!("{scheme}://")).expect("a scheme URL");
            object_store_factories().insert(url.clone(), Arc::new(BucketStoreFactory));
            logstore_factories().insert(url, Arc::new(ConditionalPutLogStoreFactory));
        }
    });
}

/// The store rooted at the remote location `url` (a table or a root).
fn prefixed_store(url: &Url) -> Result<ObjectStoreRef, DeltaTableError> {
    register_factories();
    let store = cached_bucket_store(url, &options_for(url))?;
    let prefix = StorePath::from_url_path(url.path()).map_err(|e| DeltaTableError::ObjectStore { source: e.into() })?;
    Ok(Arc::new(object_store::prefix::PrefixStore::new(store, prefix)))
}

/// The runtime remote file operations run on (see the module comment).
pub(crate) fn io_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tributary-storage")
            .enable_all()
            .build()
            .expect("start the storage IO runtime")
    })
}

/// Runs `work` on the storage IO runtime and waits for it, from any thread.
pub(crate) fn block_on_io<T: Send + 'static>(work: impl Future<Output = T> + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    io_runtime().spawn(async move {
        let _ = tx.send(work.await);
    });
    rx.recv().expect("the storage IO runtime dropped a task")
}

/// The files of one table: read, written and deleted by paths relative to it.
#[derive(Clone)]
pub(crate) enum TableFiles {
    Local(PathBuf),
    Remote { store: ObjectStoreRef, url: Url },
}

impl std::fmt::Debug for TableFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TableFiles::Local(dir) => write!(f, "TableFiles({})", dir.display()),
            TableFiles::Remote { url, .. } => write!(f, "TableFiles({url})"),
        }
    }
}

/// Why a remote file operation failed.
pub(crate) type StoreError = object_store::Error;

impl TableFiles {
    /// The files of the table at `location`.
    pub fn of(location: &Path) -> Result<Self, DeltaError> {
        match remote_url(location) {
            None => Ok(TableFiles::Local(location.to_path_buf())),
            Some(url) => {
                let store =
                    prefixed_store(&url).map_err(|e| DeltaError::delta(location, "open the object store", e))?;
                Ok(TableFiles::Remote { store, url })
            }
        }
    }

    /// The local directory, for a local table.
    pub fn local_dir(&self) -> Option<&Path> {
        match self {
            TableFiles::Local(dir) => Some(dir),
            TableFiles::Remote { .. } => None,
        }
    }

    /// The whole content of `rel_path` (remote tables only).
    pub fn get(&self, rel_path: &str) -> Result<bytes::Bytes, StoreError> {
        let TableFiles::Remote { store, .. } = self else { unreachable!("get is for remote tables") };
        let (store, location) = (store.clone(), StorePath::from(rel_path));
        block_on_io(async move { store.get(&location).await?.bytes().await })
    }

    /// Stores `bytes` as the new file `rel_path` (never over an existing one;
    /// a local file is not synced here, see [`crate::durable`]).
    pub fn put_new(&self, rel_path: &str, bytes: Vec<u8>) -> Result<(), crate::files::FileError> {
        match self {
            TableFiles::Local(dir) => {
                use std::io::Write as _;
                let path = crate::files::resolve(dir, rel_path);
                std::fs::File::create_new(&path)
                    .and_then(|mut file| file.write_all(&bytes))
                    .map_err(|source| crate::files::FileError::Io { file: path, context: "write a new file", source })
            }
            TableFiles::Remote { store, .. } => {
                let (store, location) = (store.clone(), StorePath::from(rel_path));
                let options = object_store::PutOptions { mode: object_store::PutMode::Create, ..Default::default() };
                block_on_io(async move { store.put_opts(&location, PutPayload::from(bytes), options).await })
                    .map(|_| ())
                    .map_err(|source| crate::files::FileError::Store { context: "store a new file", source })
            }
        }
    }

    /// Deletes `rel_path`; a file that is already gone is no error.
    pub fn delete(&self, rel_path: &str) {
        match self {
            TableFiles::Local(dir) => {
                let _ = std::fs::remove_file(crate::files::resolve(dir, rel_path));
            }
            TableFiles::Remote { store, .. } => {
                let (store, location) = (store.clone(), StorePath::from(rel_path));
                let _ = block_on_io(async move { store.delete(&location).await });
            }
        }
    }
}

/// Checks once, before anything is written below `root`, that its store
/// honours conditional creates (the commit protocol depends on them): a probe
/// object is created twice with `If-None-Match: *`, and the second create
/// must be refused. Also the first contact, so a wrong endpoint, missing
/// bucket or refused credentials end here with one line.
pub async fn probe_conditional_writes(root: &Path) -> Result<(), DeltaError> {
    let Some(url) = remote_url(root) else { return Ok(()) };
    let store = prefixed_store(&url).map_err(|e| DeltaError::delta(root, "open the object store", e))?;
    // One name for every prober: a concurrent prober's object makes the first
    // create fail, which proves the condition just as well.
    let probe = StorePath::from(format!("{}/conditional-write-probe", crate::table::TRIBUTARY_DIR));
    let create = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
    let outcome = block_on_io({
        let (store, probe) = (store.clone(), probe.clone());
        async move {
            let first = store.put_opts(&probe, PutPayload::from_static(b"1"), create.clone()).await;
            let second = match first {
                Ok(_) => store.put_opts(&probe, PutPayload::from_static(b"2"), create).await,
                Err(e @ StoreError::AlreadyExists { .. }) => Err(e),
                Err(e) => return Err(e),
            };
            let _ = store.delete(&probe).await;
            Ok::<_, StoreError>(second)
        }
    });
    let storage = |problem: String| DeltaError::Storage { root: root.to_path_buf(), problem };
    match outcome {
        Err(e) => Err(storage(explain(&e))),
        Ok(Err(StoreError::AlreadyExists { .. })) => Ok(()),
        Ok(Ok(_)) => Err(storage(
            "the store ignores conditional writes (If-None-Match: *): two writers could both create the same \
             commit and one would silently overwrite the other; use a store that supports them (AWS S3 does)"
                .into(),
        )),
        Ok(Err(e)) => Err(storage(format!("a conditional write failed: {}", explain(&e)))),
    }
}

/// One line naming the cause of a store error and what to check.
pub(crate) fn explain(e: &StoreError) -> String {
    let text = crate::one_line(e);
    let lower = text.to_lowercase();
    let hint = if lower.contains("nosuchbucket") || lower.contains("bucket does not exist") {
        "the bucket does not exist: create it or fix sink.delta.root"
    } else if matches!(e, StoreError::PermissionDenied { .. } | StoreError::Unauthenticated { .. })
        || lower.contains("accessdenied")
        || lower.contains("invalidaccesskeyid")
        || lower.contains("signaturedoesnotmatch")
    {
        // Matched by the error's kind (HTTP 401 / 403) or S3's codes, never by
        // a bare "403" that a port number in the text could hold.
        "the store refused the credentials: check access_key_id / secret_access_key in [sink.delta.storage] or AWS_*"
    } else if lower.contains("connect") || lower.contains("dns") || lower.contains("timed out") {
        "cannot reach the store: check sink.delta.storage.endpoint and that it is running"
    } else if matches!(e, StoreError::NotFound { .. }) {
        "not found: check the bucket in sink.delta.root"
    } else {
        "check sink.delta.root and [sink.delta.storage]"
    };
    format!("{hint} ({})", short_cause(&text))
}

/// The stable part of a store error's text: the S3 error code, the HTTP
/// status, or the last cause (no request ids, timings or object keys).
fn short_cause(text: &str) -> String {
    if let Some((_, rest)) = text.split_once("<Code>") {
        if let Some((code, _)) = rest.split_once("</Code>") {
            return format!("S3 error code {code}");
        }
    }
    if let Some((_, rest)) = text.split_once("status code: ") {
        return format!("HTTP {}", rest.split(':').next().unwrap_or(rest).trim());
    }
    text.rsplit(" - ").next().unwrap_or(text).trim().to_string()
}

/// The tables (directories holding `_delta_log/`) below the remote `root`,
/// at any depth: one delimited listing per directory level, never a listing
/// of the tables' own files.
pub(crate) fn list_remote_tables(root: &Path) -> Result<Vec<PathBuf>, DeltaError> {
    let Some(url) = remote_url(root) else { return Ok(Vec::new()) };
    let store = prefixed_store(&url).map_err(|e| DeltaError::delta(root, "open the object store", e))?;
    let found = block_on_io(async move {
        let mut tables = Vec::new();
        let mut pending: Vec<Option<StorePath>> = vec![None];
        while let Some(dir) = pending.pop() {
            let listed = store.list_with_delimiter(dir.as_ref()).await?;
            let names: Vec<StorePath> = listed.common_prefixes;
            if names.iter().any(|p| p.filename() == Some("_delta_log")) {
                tables.push(dir.map(|d| d.to_string()).unwrap_or_default());
                continue;
            }
            for sub in names {
                let name = sub.filename().unwrap_or_default();
                let tributary_state = dir.is_none() && name == crate::table::TRIBUTARY_DIR;
                if !name.starts_with('.') && !tributary_state {
                    pending.push(Some(sub));
                }
            }
        }
        Ok::<_, StoreError>(tables)
    })
    .map_err(|e| DeltaError::Storage { root: root.to_path_buf(), problem: explain(&e) })?;
    let mut tables: Vec<PathBuf> =
        found.into_iter().map(|t| if t.is_empty() { root.to_path_buf() } else { root.join(t) }).collect();
    tables.sort();
    Ok(tables)
}

/// The store and key of the remote file `location`.
fn object_at(location: &Path) -> std::io::Result<(ObjectStoreRef, StorePath)> {
    let url = remote_url(location).ok_or_else(|| std::io::Error::other("not an object-store location"))?;
    register_factories();
    let store = cached_bucket_store(&url, &options_for(&url)).map_err(std::io::Error::other)?;
    let key = StorePath::from_url_path(url.path()).map_err(std::io::Error::other)?;
    Ok((store, key))
}

/// Reads the remote file `location` (e.g. `<root>/_tributary/validation.json`); `Ok(None)`: there is none.
pub fn read_object(location: &Path) -> std::io::Result<Option<Vec<u8>>> {
    let (store, key) = object_at(location)?;
    match block_on_io(async move { store.get(&key).await?.bytes().await }) {
        Ok(bytes) => Ok(Some(bytes.to_vec())),
        Err(StoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(std::io::Error::other(explain(&e))),
    }
}

/// Stores `bytes` as the remote file `location`, replacing it whole (one PUT: readers see the old or the new).
pub fn write_object(location: &Path, bytes: Vec<u8>) -> std::io::Result<()> {
    let (store, key) = object_at(location)?;
    block_on_io(async move { store.put(&key, PutPayload::from(bytes)).await })
        .map(|_| ())
        .map_err(|e| std::io::Error::other(explain(&e)))
}

/// True when the remote table at `location` has a log (a `_delta_log/` entry).
pub(crate) fn remote_table_exists(url: &Url) -> bool {
    let Ok(store) = prefixed_store(url) else { return false };
    block_on_io(async move {
        use futures_util::StreamExt as _;
        let log = StorePath::from("_delta_log");
        store.list(Some(&log)).next().await.is_some_and(|entry| entry.is_ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_of_object_stores_are_remote_and_paths_are_not() {
        assert_eq!(remote_url(Path::new("s3://lake/prefix/db/t")).unwrap().host_str(), Some("lake"));
        assert!(remote_url(Path::new("gs://lake/x")).is_some());
        assert!(remote_url(Path::new("/tmp/lake")).is_none());
        assert!(remote_url(Path::new("./delta-tables")).is_none());
        assert!(remote_url(Path::new("file:///tmp/lake")).is_none());
        // Path::join keeps the URL text intact.
        let table = Path::new("s3://lake/prefix").join("db").join("t");
        assert_eq!(table.to_str(), Some("s3://lake/prefix/db/t"));
    }

    #[test]
    fn secrets_are_never_shown_and_unknown_options_are_named() {
        let options = StorageOptions(BTreeMap::from([
            ("endpoint".to_string(), "http://127.0.0.1:9000".to_string()),
            ("secret_access_key".to_string(), "hunter2".to_string()),
            ("aws_session_token".to_string(), "tok".to_string()),
        ]));
        let shown = format!("{options:?}");
        assert!(shown.contains("127.0.0.1:9000") && !shown.contains("hunter2") && !shown.contains("tok\""), "{shown}");
        options.validate("s3").unwrap();
        let bad = StorageOptions(BTreeMap::from([("endpont".to_string(), "x".to_string())]));
        let err = bad.validate("s3").unwrap_err().to_string();
        assert!(err.contains("endpont") && err.contains("sink.delta.storage"), "{err}");
    }

    #[test]
    fn options_follow_the_longest_registered_root() {
        let a = StorageOptions(BTreeMap::from([("region".to_string(), "a".to_string())]));
        let b = StorageOptions(BTreeMap::from([("region".to_string(), "b".to_string())]));
        register_root(Path::new("s3://opt-test/lake"), &a).unwrap();
        register_root(Path::new("s3://opt-test/lake/shard2"), &b).unwrap();
        let of = |u: &str| options_for(&Url::parse(u).unwrap()).get("region").cloned();
        assert_eq!(of("s3://opt-test/lake/db/t").as_deref(), Some("a"));
        assert_eq!(of("s3://opt-test/lake/shard2/db/t").as_deref(), Some("b"));
        assert_eq!(of("s3://opt-test/lakehouse/db/t"), None);
    }
}
