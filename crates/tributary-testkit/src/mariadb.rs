//! A real MariaDB server (Debian's mariadb-server) with a ROW binlog, on a
//! free loopback port in a temp dir; stopped and removed on Drop.

use crate::ports::free_loopback_port;
use crate::process::{find_binary, ServiceProcess};
use crate::tls::{ServerCerts, ServerTls};
use crate::{TestDatabase, TestKitError};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Password of the `admin` user the test kit creates (tests only, loopback only).
pub const ADMIN_PASSWORD: &str = "admin-pw";
/// How long a server may take to accept connections.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Server settings a test can change.
#[derive(Debug, Clone)]
pub struct MariaDbOptions {
    pub binlog_format: String,
    pub binlog_row_image: String,
    pub log_bin: bool,
    /// TLS with a test CA and server certificate made in the server's temp dir
    /// (`ssl_ca`, `ssl_cert`, `ssl_key`; `require_secure_transport=ON` when
    /// required); `None` (the default): no TLS.
    pub tls: Option<ServerTls>,
    /// `--server-id` (1 by default; servers that replicate from each other need distinct ids).
    pub server_id: u32,
    /// Further `mariadbd` options, e.g. `--log-slave-updates=ON`, `--gtid-strict-mode=ON`.
    pub extra_args: Vec<String>,
}

impl Default for MariaDbOptions {
    fn default() -> Self {
        MariaDbOptions {
            binlog_format: "ROW".into(),
            binlog_row_image: "FULL".into(),
            log_bin: true,
            tls: None,
            server_id: 1,
            extra_args: Vec::new(),
        }
    }
}

/// A running MariaDB. `admin` / [`ADMIN_PASSWORD`] has every privilege over TCP.
pub struct MariaDb {
    // Field order matters: the process stops before its directory is removed.
    process: ServiceProcess,
    dir: tempfile::TempDir,
    port: u16,
    /// What the server was started with, to start it again the same way.
    mariadbd: PathBuf,
    options: MariaDbOptions,
    certs: Option<ServerCerts>,
}

impl MariaDb {
    /// Starts a server with the default CDC-ready settings.
    pub fn start() -> Result<Self, TestKitError> {
        Self::start_with(MariaDbOptions::default())
    }

    /// Starts a server with `options`.
    pub fn start_with(options: MariaDbOptions) -> Result<Self, TestKitError> {
        let mariadbd = find_binary("mariadbd", "mariadb-server")?;
        let install_db = find_binary("mariadb-install-db", "mariadb-server")?;
        let mut dir = tempfile::Builder::new()
            .prefix("tributary-mariadb-")
            .tempdir()
            .map_err(|source| TestKitError::Io { context: "create MariaDB temp dir".into(), source })?;
        install(&install_db, dir.path())?;
        let certs = options.tls.as_ref().map(|tls| ServerCerts::generate(dir.path(), tls)).transpose()?;
        let mut last_error = None;
        for _attempt in 0..5 {
            let port = free_loopback_port()
                .map_err(|source| TestKitError::Io { context: "find a free port".into(), source })?;
            let process = spawn_server(&mariadbd, dir.path(), port, &options, certs.as_ref())?;
            let mut server = MariaDb {
                process,
                dir,
                port,
                mariadbd: mariadbd.clone(),
                options: options.clone(),
                certs: certs.clone(),
            };
            match server.wait_ready() {
                Ok(()) => {
                    server.bootstrap()?;
                    return Ok(server);
                }
                Err(e) => {
                    // Port taken between our probe and the bind: try another one.
                    last_error = Some(e);
                    let MariaDb { process, dir: d, .. } = server;
                    drop(process);
                    dir = d;
                }
            }
        }
        Err(last_error.expect("at least one attempt"))
    }

    /// Shuts the server down cleanly, waits `down`, and starts it again on
    /// the same port with the same data: what a maintenance restart does to
    /// the clients connected to it.
    pub fn restart(&mut self, down: Duration) -> Result<(), TestKitError> {
        self.process.stop();
        std::thread::sleep(down);
        self.process = spawn_server(&self.mariadbd, self.dir.path(), self.port, &self.options, self.certs.as_ref())?;
        self.wait_ready()
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The test CA and server certificate, when started with [`MariaDbOptions::tls`].
    pub fn certs(&self) -> Option<&ServerCerts> {
        self.certs.as_ref()
    }

    /// The server's data directory (binlogs live here).
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// URL for the admin user, e.g. for `mysql_async::Pool::new`.
    pub fn admin_url(&self) -> String {
        format!("mysql://admin:{ADMIN_PASSWORD}@127.0.0.1:{}", self.port)
    }

    /// Runs SQL as root through the server's socket with the `mariadb` client.
    pub fn exec(&self, sql: &str) -> Result<String, TestKitError> {
        let out = Command::new("mariadb")
            .arg(format!("--socket={}", self.socket().display()))
            .args(["-uroot", "--batch", "--skip-column-names", "--default-character-set=utf8mb4", "-e", sql])
            .output()
            .map_err(|source| TestKitError::Io { context: "run the mariadb client".into(), source })?;
        if !out.status.success() {
            return Err(TestKitError::Start {
                what: format!("SQL `{sql}`"),
                detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    }

    /// A fresh database `test_<8 hex>`, dropped when the test passes.
    pub fn create_database(&self) -> Result<TestDatabase<'_>, TestKitError> {
        let name = crate::unique_name();
        self.exec(&format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"))?;
        Ok(TestDatabase::new(self, name))
    }

    /// Creates a user with a password and grants (e.g. `REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.*`).
    pub fn create_user(&self, user: &str, password: &str, grants: &[&str]) -> Result<(), TestKitError> {
        self.exec(&format!("CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{password}'"))?;
        for grant in grants {
            self.exec(&format!("GRANT {grant} TO '{user}'@'127.0.0.1'"))?;
        }
        Ok(())
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("mysqld.sock")
    }

    fn wait_ready(&mut self) -> Result<(), TestKitError> {
        let start = Instant::now();
        while start.elapsed() < READY_TIMEOUT {
            if !self.process.is_running() {
                return Err(self.not_ready(start));
            }
            if self.socket().exists() && self.exec("SELECT 1").is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(self.not_ready(start))
    }

    fn not_ready(&self, start: Instant) -> TestKitError {
        let log = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        TestKitError::NotReady {
            service: format!("MariaDB on 127.0.0.1:{}", self.port),
            seconds: start.elapsed().as_secs(),
            log: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        }
    }

    fn bootstrap(&self) -> Result<(), TestKitError> {
        self.exec(&format!(
            "CREATE USER 'admin'@'127.0.0.1' IDENTIFIED BY '{ADMIN_PASSWORD}'; \
             GRANT ALL PRIVILEGES ON *.* TO 'admin'@'127.0.0.1' WITH GRANT OPTION;"
        ))?;
        Ok(())
    }
}

impl std::fmt::Debug for MariaDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MariaDb(127.0.0.1:{}, pid {})", self.port, self.process.pid())
    }
}

/// A private tmpdir: a starting mariadbd deletes the `#sql*` temp files it finds
/// in its tmpdir, so servers sharing /tmp break each other's bootstrap.
fn tmp_dir(dir: &Path) -> Result<PathBuf, TestKitError> {
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp)
        .map_err(|source| TestKitError::Io { context: "create MariaDB tmpdir".into(), source })?;
    Ok(tmp)
}

fn install(install_db: &Path, dir: &Path) -> Result<(), TestKitError> {
    let out = Command::new(install_db)
        .args(["--no-defaults", "--user=root", "--skip-test-db", "--auth-root-authentication-method=socket"])
        .arg(format!("--datadir={}", dir.join("data").display()))
        .arg(format!("--tmpdir={}", tmp_dir(dir)?.display()))
        .output()
        .map_err(|source| TestKitError::Io { context: "run mariadb-install-db".into(), source })?;
    if !out.status.success() {
        return Err(TestKitError::Start {
            what: "mariadb-install-db".into(),
            detail: last_lines(&String::from_utf8_lossy(&out.stderr), 5),
        });
    }
    Ok(())
}

fn spawn_server(
    mariadbd: &Path,
    dir: &Path,
    port: u16,
    options: &MariaDbOptions,
    certs: Option<&ServerCerts>,
) -> Result<ServiceProcess, TestKitError> {
    let mut cmd = Command::new(mariadbd);
    cmd.arg("--no-defaults")
        .arg(format!("--datadir={}", dir.join("data").display()))
        .arg(format!("--socket={}", dir.join("mysqld.sock").display()))
        .arg(format!("--pid-file={}", dir.join("mysqld.pid").display()))
        .arg(format!("--tmpdir={}", tmp_dir(dir)?.display()))
        .arg(format!("--port={port}"))
        .args(["--bind-address=127.0.0.1", "--user=root", "--skip-name-resolve"])
        .arg(format!("--server-id={}", options.server_id))
        .args(["--innodb-buffer-pool-size=256M", "--innodb-flush-log-at-trx-commit=2", "--sync-binlog=0"])
        .args(["--max-connections=300", "--character-set-server=utf8mb4", "--collation-server=utf8mb4_bin"])
        .arg(format!("--binlog-format={}", options.binlog_format))
        .arg(format!("--binlog-row-image={}", options.binlog_row_image))
        .arg("--binlog-row-metadata=FULL");
    if options.log_bin {
        cmd.arg(format!("--log-bin={}", dir.join("data").join("mariadb-bin").display()));
    }
    if let (Some(certs), Some(tls)) = (certs, &options.tls) {
        cmd.arg(format!("--ssl-ca={}", certs.ca.cert.display()))
            .arg(format!("--ssl-cert={}", certs.server.cert.display()))
            .arg(format!("--ssl-key={}", certs.server.key.display()));
        if tls.require {
            cmd.arg("--require-secure-transport=ON");
        }
    }
    cmd.args(&options.extra_args);
    ServiceProcess::spawn("mariadbd", cmd, &dir.join("server.log"), dir)
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}
