//! A real PostgreSQL with `wal_level=logical` and a replication role, on a
//! free loopback port in a temp dir; stopped (fast shutdown) and removed on
//! Drop. Debian's postgresql-15 by default; `TRIBUTARY_PG_VERSION=14..18`
//! picks another major (Debian's, or the registry build `make setup` fetches
//! into `$TRIBUTARY_CACHE_DIR/postgres/<major>/`). As root, the server runs as the
//! `postgres` OS user, since PostgreSQL refuses to run as root.

use crate::ports::free_loopback_port;
use crate::process::ServiceProcess;
use crate::tls::{ServerCerts, ServerTls};
use crate::TestKitError;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Superuser (`postgres`) password, for TCP connections (tests only, loopback only).
pub const SUPERUSER_PASSWORD: &str = "postgres-pw";
/// The role with `REPLICATION LOGIN` the test kit creates.
pub const REPLICATION_USER: &str = "replicator";
/// Its password.
pub const REPLICATION_PASSWORD: &str = "replicator-pw";
/// How long a server may take to accept connections.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Server settings a test can change.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    pub wal_level: String,
    pub max_replication_slots: u32,
    pub max_wal_senders: u32,
    /// `ssl=on` with a test CA and server certificate made in the server's
    /// temp dir; when required, a pg_hba.conf with `hostssl` lines only
    /// (replication included) and trust on the socket. `None` (the default): no TLS.
    pub tls: Option<ServerTls>,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions { wal_level: "logical".into(), max_replication_slots: 20, max_wal_senders: 20, tls: None }
    }
}

/// A running PostgreSQL. Superuser `postgres` / [`SUPERUSER_PASSWORD`] and
/// [`REPLICATION_USER`] / [`REPLICATION_PASSWORD`] can log in over TCP.
pub struct Postgres {
    // Field order matters: the process stops before its directory is removed.
    /// Behind a lock so that [`Postgres::restart`] works while databases borrow the server.
    process: std::sync::Mutex<ServiceProcess>,
    dir: tempfile::TempDir,
    port: u16,
    bin: PathBuf,
    /// What the server was started with, to start it again the same way.
    options: PostgresOptions,
    owner: Option<(u32, u32)>,
    certs: Option<ServerCerts>,
    psql: PathBuf,
    major: u32,
}

impl Postgres {
    /// Starts a server with logical decoding on.
    pub fn start() -> Result<Self, TestKitError> {
        Self::start_with(PostgresOptions::default())
    }

    /// Starts a server with `options`.
    pub fn start_with(options: PostgresOptions) -> Result<Self, TestKitError> {
        let (bin, psql) = postgres_bin_dir()?;
        let major = server_major(&bin)?;
        if let Ok(wanted) = std::env::var(PG_VERSION_ENV) {
            if !wanted.trim().is_empty() && wanted.trim() != major.to_string() {
                return Err(TestKitError::Start {
                    what: format!("PostgreSQL {} from {}", wanted.trim(), bin.display()),
                    detail: format!("that server is PostgreSQL {major}"),
                });
            }
        }
        let owner = run_as()?;
        let dir = tempfile::Builder::new()
            .prefix("tributary-postgres-")
            .tempdir()
            .map_err(|source| TestKitError::Io { context: "create PostgreSQL temp dir".into(), source })?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .map_err(|source| TestKitError::Io { context: format!("chown {}", dir.path().display()), source })?;
        }
        initdb(&bin, dir.path(), owner)?;
        let certs = options.tls.as_ref().map(|tls| server_tls(dir.path(), tls, owner)).transpose()?;
        let mut last_error = None;
        for _attempt in 0..5 {
            let port = free_loopback_port()
                .map_err(|source| TestKitError::Io { context: "find a free port".into(), source })?;
            let log = dir.path().join(format!("postgres-{port}.log"));
            let mut process = spawn_server(&bin, dir.path(), port, &options, owner, certs.as_ref(), &log)?;
            match wait_ready(&mut process, &psql, dir.path(), port, &log) {
                Ok(()) => {
                    let server = Postgres {
                        process: process.into(),
                        dir,
                        port,
                        bin,
                        options: options.clone(),
                        owner,
                        certs,
                        psql,
                        major,
                    };
                    server.bootstrap()?;
                    return Ok(server);
                }
                Err(e) => {
                    drop(process);
                    if !std::fs::read_to_string(&log).unwrap_or_default().contains("already in use") {
                        return Err(e);
                    }
                    // Port taken between our probe and the bind: try another one.
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.expect("at least one attempt"))
    }

    /// Shuts the server down (fast mode: sessions are terminated), waits
    /// `down`, and starts it again on the same port with the same data;
    /// returns how long the shutdown took (a replication client that does not
    /// confirm the end of the WAL holds it up; after 20 s it is killed).
    pub fn restart(&self, down: Duration) -> Result<Duration, TestKitError> {
        let mut process = self.process.lock().unwrap_or_else(|e| e.into_inner());
        let stopping = Instant::now();
        process.stop_with_children("-INT");
        let shutdown = stopping.elapsed();
        std::thread::sleep(down);
        let log = self.dir.path().join(format!("postgres-{}-restart.log", self.port));
        // A server process of the old postmaster can outlive it for a moment
        // (it notices the postmaster's death on its next wait) and keeps the
        // shared memory block: the new postmaster then refuses to start. Retry.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            *process = spawn_server(
                &self.bin,
                self.dir.path(),
                self.port,
                &self.options,
                self.owner,
                self.certs.as_ref(),
                &log,
            )?;
            match wait_ready(&mut process, &self.psql, self.dir.path(), self.port, &log) {
                Err(e) if Instant::now() < deadline && e.to_string().contains("pre-existing shared memory block") => {
                    kill_shared_memory_holders(&e.to_string());
                    std::thread::sleep(Duration::from_millis(500));
                }
                other => return other.map(|()| shutdown),
            }
        }
    }

    fn pid(&self) -> u32 {
        self.process.lock().unwrap_or_else(|e| e.into_inner()).pid()
    }

    /// The server's major version (14 to 18; see [`PG_VERSION_ENV`]).
    pub fn major(&self) -> u32 {
        self.major
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The test CA and server certificate, when started with [`PostgresOptions::tls`].
    pub fn certs(&self) -> Option<&ServerCerts> {
        self.certs.as_ref()
    }

    /// The directory holding the server's socket (and its data under `data/`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A libpq URL for `user` / `password` on `database` over TCP.
    pub fn url(&self, user: &str, password: &str, database: &str) -> String {
        format!("postgresql://{user}:{password}@127.0.0.1:{}/{database}", self.port)
    }

    /// The URL of the replication role on `database`.
    pub fn replication_url(&self, database: &str) -> String {
        self.url(REPLICATION_USER, REPLICATION_PASSWORD, database)
    }

    /// Runs SQL as the superuser in database `postgres` (through the socket with `psql`).
    pub fn exec(&self, sql: &str) -> Result<String, TestKitError> {
        self.exec_in("postgres", sql)
    }

    /// Runs SQL as the superuser in `database`; returns unaligned, tab-separated rows.
    pub fn exec_in(&self, database: &str, sql: &str) -> Result<String, TestKitError> {
        let mut cmd = Command::new(&self.psql);
        cmd.arg("-h").arg(self.dir.path()).args(["-p", &self.port.to_string(), "-U", "postgres", "-d", database]);
        self.psql(cmd, sql)
    }

    /// Runs SQL over TCP as `user` / `password` (e.g. the replication role);
    /// `database` may be a connection string such as `dbname=x replication=database`.
    pub fn exec_as(&self, user: &str, password: &str, database: &str, sql: &str) -> Result<String, TestKitError> {
        let mut cmd = Command::new(&self.psql);
        let conninfo = if database.contains('=') { database.to_string() } else { format!("dbname={database}") };
        cmd.arg(format!("host=127.0.0.1 port={} user={user} {conninfo}", self.port)).env("PGPASSWORD", password);
        self.psql(cmd, sql)
    }

    /// A fresh database `test_<8 hex>`, dropped (with its replication slots) when the test passes.
    pub fn create_database(&self) -> Result<PgDatabase<'_>, TestKitError> {
        let name = crate::unique_name();
        self.exec(&format!("CREATE DATABASE \"{name}\""))?;
        // The replication role may create publications in its own test database.
        self.exec(&format!("GRANT ALL ON DATABASE \"{name}\" TO {REPLICATION_USER}"))?;
        self.exec_in(&name, &format!("GRANT ALL ON SCHEMA public TO {REPLICATION_USER}"))?;
        Ok(PgDatabase { server: self, name })
    }

    fn psql(&self, mut cmd: Command, sql: &str) -> Result<String, TestKitError> {
        let out = cmd
            .args(["-X", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .map_err(|source| TestKitError::Io { context: "run psql".into(), source })?;
        if !out.status.success() {
            return Err(TestKitError::Start {
                what: format!("SQL `{sql}`"),
                detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    }

    fn bootstrap(&self) -> Result<(), TestKitError> {
        self.exec(&format!("CREATE ROLE {REPLICATION_USER} WITH LOGIN REPLICATION PASSWORD '{REPLICATION_PASSWORD}'"))?;
        Ok(())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Fast shutdown (SIGINT) first: SIGTERM alone, sent next by the
        // process handle, would wait for open sessions to end.
        let _ = Command::new("kill").args(["-INT", &self.pid().to_string()]).status();
    }
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Postgres {}(127.0.0.1:{}, pid {})", self.major, self.port, self.pid())
    }
}

/// A database on a test PostgreSQL; on Drop, when the test passed, its
/// replication slots are dropped and the database with them; kept (name
/// printed) when it failed.
pub struct PgDatabase<'a> {
    server: &'a Postgres,
    name: String,
}

impl PgDatabase<'_> {
    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs SQL as the superuser in this database.
    pub fn exec(&self, sql: &str) -> Result<String, TestKitError> {
        self.server.exec_in(&self.name, sql)
    }

    /// Runs SQL over TCP as the replication role in this database.
    pub fn exec_as_replicator(&self, sql: &str) -> Result<String, TestKitError> {
        self.server.exec_as(REPLICATION_USER, REPLICATION_PASSWORD, &self.name, sql)
    }

    /// A name for a slot or publication unique to this test (`test_<8 hex>`).
    pub fn unique_name(&self) -> String {
        crate::unique_name()
    }
}

impl Drop for PgDatabase<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test failed: kept PostgreSQL database {} on 127.0.0.1:{}", self.name, self.server.port());
            return;
        }
        let _ = self.server.exec(&format!(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '{}' AND NOT active",
            self.name
        ));
        let _ = self.server.exec(&format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name));
    }
}

/// Starts `postgres` on `dir`'s data directory with the test kit's settings.
fn spawn_server(
    bin: &Path,
    dir: &Path,
    port: u16,
    options: &PostgresOptions,
    owner: Option<(u32, u32)>,
    certs: Option<&ServerCerts>,
    log: &Path,
) -> Result<ServiceProcess, TestKitError> {
    let mut cmd = Command::new(bin.join("postgres"));
    cmd.arg("-D")
        .arg(dir.join("data"))
        .arg("-p")
        .arg(port.to_string())
        .args(["-c", "listen_addresses=127.0.0.1"])
        .arg("-c")
        .arg(format!("unix_socket_directories={}", dir.display()))
        .arg("-c")
        .arg(format!("wal_level={}", options.wal_level))
        .arg("-c")
        .arg(format!("max_replication_slots={}", options.max_replication_slots))
        .arg("-c")
        .arg(format!("max_wal_senders={}", options.max_wal_senders))
        .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
        .args(["-c", "shared_buffers=64MB", "-c", "max_connections=200", "-c", "logging_collector=off"]);
    if let (Some(certs), Some(tls)) = (certs, &options.tls) {
        cmd.args(["-c", "ssl=on"])
            .arg("-c")
            .arg(format!("ssl_cert_file={}", certs.server.cert.display()))
            .arg("-c")
            .arg(format!("ssl_key_file={}", certs.server.key.display()));
        if tls.require {
            cmd.arg("-c").arg(format!("hba_file={}", dir.join("pg_hba_tls.conf").display()));
        }
    }
    if let Some((uid, gid)) = owner {
        cmd.uid(uid).gid(gid);
    }
    ServiceProcess::spawn("postgres", cmd, log, dir)
}

/// Polls `SELECT 1` through the socket until it answers, failing early when the server exits.
/// Kills the processes still attached to the shared memory block named in
/// PostgreSQL's "pre-existing shared memory block (key K, ID N) is still in
/// use" (they map it as `/SYSV<key in hex>`): what is left of the stopped
/// server, never another one (keys are derived from the data directory).
fn kill_shared_memory_holders(message: &str) {
    let Some(key) = message
        .split("(key ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|key| key.trim().parse::<u32>().ok())
    else {
        return;
    };
    let mapping = format!("/SYSV{key:08x}");
    let Ok(entries) = std::fs::read_dir("/proc") else { return };
    for pid in entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()) {
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
        if maps.contains(&mapping) {
            tracing::warn!("process {pid} still holds the stopped PostgreSQL's shared memory; killing");
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

fn wait_ready(
    process: &mut ServiceProcess,
    psql: &Path,
    dir: &Path,
    port: u16,
    log: &Path,
) -> Result<(), TestKitError> {
    let start = Instant::now();
    while start.elapsed() < READY_TIMEOUT {
        if !process.is_running() {
            break;
        }
        if dir.join(format!(".s.PGSQL.{port}")).exists() {
            let ok = Command::new(psql)
                .arg("-h")
                .arg(dir)
                .args(["-p", &port.to_string(), "-U", "postgres", "-d", "postgres", "-X", "-A", "-t", "-c", "SELECT 1"])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            if ok {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(TestKitError::NotReady {
        service: format!("PostgreSQL on 127.0.0.1:{port}"),
        seconds: start.elapsed().as_secs(),
        log: crate::alertmanager::read_tail(log, 15),
    })
}

/// The environment variable that picks the PostgreSQL major version the test
/// kit starts (`14` to `18`; unset: Debian's 15).
pub const PG_VERSION_ENV: &str = "TRIBUTARY_PG_VERSION";

/// The server binaries (`postgres`, `initdb`) and the `psql` to use.
///
/// `$TRIBUTARY_PG_BIN` wins. Otherwise `$TRIBUTARY_PG_VERSION` (a major
/// version) picks `/usr/lib/postgresql/<major>/bin` when Debian has it, else
/// `$TRIBUTARY_CACHE_DIR/postgres/<major>/bin` (fetched by
/// `scripts/fetch_postgres.sh`, run by `make setup`). Unset: Debian's 15 (or
/// the newest installed). The registry builds carry no `psql`: Debian's client
/// talks to every server version the matrix runs.
fn postgres_bin_dir() -> Result<(PathBuf, PathBuf), TestKitError> {
    let server = server_bin_dir()?;
    let psql = if server.join("psql").is_file() { server.join("psql") } else { debian_psql()? };
    Ok((server, psql))
}

fn server_bin_dir() -> Result<PathBuf, TestKitError> {
    if let Some(dir) = std::env::var_os("TRIBUTARY_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let requested = std::env::var(PG_VERSION_ENV).ok().filter(|v| !v.trim().is_empty());
    if let Some(major) = requested {
        let major = major.trim();
        if !major.chars().all(|c| c.is_ascii_digit()) {
            return Err(TestKitError::Start {
                what: format!("{PG_VERSION_ENV}={major}"),
                detail: "expected a PostgreSQL major version such as 14 or 18".into(),
            });
        }
        let debian = PathBuf::from(format!("/usr/lib/postgresql/{major}/bin"));
        if debian.join("postgres").is_file() && debian.join("initdb").is_file() {
            return Ok(debian);
        }
        let cache = std::env::var_os("TRIBUTARY_CACHE_DIR").unwrap_or_else(|| "/var/cache/tributary".into());
        let fetched = PathBuf::from(cache).join("postgres").join(major).join("bin");
        if fetched.join("postgres").is_file() && fetched.join("initdb").is_file() {
            return Ok(fetched);
        }
        return Err(TestKitError::Start {
            what: format!("find PostgreSQL {major} ({PG_VERSION_ENV})"),
            detail: format!(
                "neither {} nor {} has postgres + initdb; fetch it with `TRIBUTARY_PG_MAJORS={major} make setup`",
                debian.display(),
                fetched.display()
            ),
        });
    }
    let preferred = Path::new("/usr/lib/postgresql/15/bin");
    if preferred.join("postgres").is_file() {
        return Ok(preferred.to_path_buf());
    }
    newest_debian_bin("postgres").ok_or_else(|| TestKitError::MissingBinary {
        binary: "postgres / initdb".into(),
        package: "postgresql-15".into(),
    })
}

/// Debian's `psql`: the 15 client, else the newest installed.
fn debian_psql() -> Result<PathBuf, TestKitError> {
    let preferred = Path::new("/usr/lib/postgresql/15/bin/psql");
    if preferred.is_file() {
        return Ok(preferred.to_path_buf());
    }
    newest_debian_bin("psql")
        .map(|dir| dir.join("psql"))
        .ok_or_else(|| TestKitError::MissingBinary { binary: "psql".into(), package: "postgresql-client-15".into() })
}

fn newest_debian_bin(binary: &str) -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, p): &(u32, PathBuf)| p.join(binary).is_file())
        .collect();
    versions.sort();
    versions.pop().map(|(_, p)| p)
}

/// The major version `postgres --version` reports (`postgres (PostgreSQL) 18.4` -> 18).
fn server_major(bin: &Path) -> Result<u32, TestKitError> {
    let out = Command::new(bin.join("postgres"))
        .arg("--version")
        .output()
        .map_err(|source| TestKitError::Io { context: format!("run {}/postgres --version", bin.display()), source })?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.split_whitespace()
        .last()
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse().ok())
        .filter(|_| out.status.success())
        .ok_or_else(|| TestKitError::Start {
            what: format!("{}/postgres --version", bin.display()),
            detail: format!("{}{}", text.trim(), String::from_utf8_lossy(&out.stderr).trim()),
        })
}

/// The certificates of a TLS server in `dir` (the key readable by the
/// server's user only, as PostgreSQL demands) and, when TLS is required, a
/// pg_hba.conf that accepts TCP only with TLS.
fn server_tls(dir: &Path, tls: &ServerTls, owner: Option<(u32, u32)>) -> Result<ServerCerts, TestKitError> {
    use std::os::unix::fs::PermissionsExt;
    let certs = ServerCerts::generate(dir, tls)?;
    let io = |context: String| move |source| TestKitError::Io { context, source };
    std::fs::set_permissions(&certs.server.key, std::fs::Permissions::from_mode(0o600))
        .map_err(io(format!("chmod {}", certs.server.key.display())))?;
    let hba = dir.join("pg_hba_tls.conf");
    std::fs::write(
        &hba,
        "local all all trust\n\
         hostssl all all 127.0.0.1/32 scram-sha-256\n\
         hostssl replication all 127.0.0.1/32 scram-sha-256\n",
    )
    .map_err(io(format!("write {}", hba.display())))?;
    if let Some((uid, gid)) = owner {
        for file in [&certs.server.cert, &certs.server.key, &certs.ca.cert, &hba] {
            std::os::unix::fs::chown(file, Some(uid), Some(gid)).map_err(io(format!("chown {}", file.display())))?;
        }
    }
    Ok(certs)
}

/// As root: the uid/gid of the `postgres` OS user to run the server as.
fn run_as() -> Result<Option<(u32, u32)>, TestKitError> {
    let euid = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .map_err(|source| TestKitError::Io { context: "read /proc/self".into(), source })?;
    if euid != 0 {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd")
        .map_err(|source| TestKitError::Io { context: "read /etc/passwd".into(), source })?;
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 3 && f[0] == "postgres")
        .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
        .map(Some)
        .ok_or_else(|| TestKitError::Start {
            what: "PostgreSQL as root".into(),
            detail: "PostgreSQL refuses to run as root and there is no `postgres` OS user; install postgresql-15 \
                     (`make setup`) or run the tests as an unprivileged user"
                .into(),
        })
}

fn initdb(bin: &Path, dir: &Path, owner: Option<(u32, u32)>) -> Result<(), TestKitError> {
    let pwfile = dir.join("pwfile");
    std::fs::write(&pwfile, SUPERUSER_PASSWORD)
        .map_err(|source| TestKitError::Io { context: "write the initdb password file".into(), source })?;
    if let Some((uid, gid)) = owner {
        let _ = std::os::unix::fs::chown(&pwfile, Some(uid), Some(gid));
    }
    let mut cmd = Command::new(bin.join("initdb"));
    cmd.arg("-D")
        .arg(dir.join("data"))
        .args(["-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C"])
        .arg(format!("--pwfile={}", pwfile.display()))
        .arg("--no-sync")
        .current_dir(dir);
    if let Some((uid, gid)) = owner {
        cmd.uid(uid).gid(gid);
    }
    let out = cmd.output().map_err(|source| TestKitError::Io { context: "run initdb".into(), source })?;
    let _ = std::fs::remove_file(&pwfile);
    if !out.status.success() {
        return Err(TestKitError::Start {
            what: "initdb".into(),
            detail: format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
                .trim()
                .to_string(),
        });
    }
    Ok(())
}
