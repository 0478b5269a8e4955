//! Child processes that never outlive the test run: each is stopped on Drop
//! and, should the test process die first, by a small watchdog.

use crate::TestKitError;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Finds a program on PATH or in the sbin directories Debian uses for daemons.
pub fn find_binary(name: &str, package: &str) -> Result<PathBuf, TestKitError> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"])
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file());
    found.ok_or_else(|| TestKitError::MissingBinary { binary: name.into(), package: package.into() })
}

/// A running child process, terminated on Drop.
pub struct ServiceProcess {
    child: Child,
    name: String,
}

impl ServiceProcess {
    /// Spawns `command` with output going to `log`, and a watchdog that kills
    /// it (and removes `cleanup_dir`) when this test process exits.
    pub fn spawn(name: &str, mut command: Command, log: &Path, cleanup_dir: &Path) -> Result<Self, TestKitError> {
        let io_err = |context: String| move |source| TestKitError::Io { context, source };
        let out = std::fs::File::create(log).map_err(io_err(format!("create {}", log.display())))?;
        let err = out.try_clone().map_err(io_err("dup log".into()))?;
        let child =
            command.stdin(Stdio::null()).stdout(out).stderr(err).spawn().map_err(io_err(format!("spawn {name}")))?;
        spawn_watchdog(child.id(), cleanup_dir);
        Ok(ServiceProcess { child, name: name.into() })
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl ServiceProcess {
    /// SIGTERM (a clean shutdown), waiting up to 20 s before SIGKILL.
    pub fn stop(&mut self) {
        self.stop_with("-TERM");
    }

    /// Sends `signal` (e.g. `-INT`, PostgreSQL's fast shutdown), waiting up to 20 s before SIGKILL.
    pub fn stop_with(&mut self, signal: &str) {
        if !self.is_running() {
            return;
        }
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args([signal, &pid]).status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if !self.is_running() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        tracing::warn!("{} did not stop on SIGTERM; killing", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// [`stop_with`](Self::stop_with), then waits up to 10 s for the processes
    /// the server had forked (PostgreSQL backends, walsenders) and kills those
    /// still alive: an orphaned backend keeps the server's shared memory, and
    /// a server started on the same data directory refuses to start beside it.
    pub fn stop_with_children(&mut self, signal: &str) {
        let children = child_pids(self.pid());
        self.stop_with(signal);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while children.iter().any(|pid| alive(*pid)) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        for pid in children.iter().filter(|pid| alive(**pid)) {
            tracing::warn!("{}: child process {pid} outlived it; killing", self.name);
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

/// The processes whose parent is `pid` (from `/proc/<pid>/stat`).
fn child_pids(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|candidate| {
            let stat = std::fs::read_to_string(format!("/proc/{candidate}/stat")).unwrap_or_default();
            // "pid (comm) state ppid ...": comm may hold spaces, so split after its ')'.
            let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
            after.split_whitespace().nth(1).and_then(|ppid| ppid.parse::<u32>().ok()) == Some(pid)
        })
        .collect()
}

/// True while `pid` exists and is not a zombie.
fn alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
    matches!(state, Some(s) if s != "Z" && s != "X")
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Kills `pid` and removes `dir` once the current process is gone (also what
/// cleans up after the shared Spark verifier, a static that is never dropped).
pub(crate) fn spawn_watchdog(pid: u32, dir: &Path) {
    let me = std::process::id();
    let script = format!(
        "while kill -0 {me} 2>/dev/null; do sleep 1; done; kill -9 {pid} 2>/dev/null; sleep 1; rm -rf '{}'",
        dir.display()
    );
    let _ = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}
