//! What the end-to-end benchmarks share: the `tributary run` process, the
//! wait for its catch-up and its peak memory.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The app id (pipeline name) of the benchmark configs.
pub const APP: &str = "bench";

/// Starts `tributary run` (log level from `TRIBUTARY_LOG`, default warn).
pub fn start(config: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["run", "--config"])
        .arg(config)
        .env("TRIBUTARY_LOG", std::env::var("TRIBUTARY_LOG").unwrap_or_else(|_| "warn".into()))
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn tributary")
}

/// SIGTERM; the pipeline must exit 0.
pub fn stop(mut child: Child) {
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "pipeline exit {status}");
}

/// Waits until the table holds `version`; returns the pipeline's peak RSS in kB.
pub fn wait(child: &mut Child, table: &Path, version: i64) -> u64 {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(1800);
    let mut peak = 0;
    loop {
        assert!(child.try_wait().unwrap().is_none(), "pipeline exited early");
        peak = peak.max(vm_hwm_kb(child.id()));
        if let Ok(status) = rt.block_on(tributary_delta::table_status(table, APP)) {
            if status.committed_version.is_some_and(|v| v >= version) {
                return peak;
            }
        }
        assert!(Instant::now() < deadline, "no catch-up within 30 min");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Peak resident set size of a process, kB (`VmHWM`).
pub fn vm_hwm_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
