//! `make infra-up`: the whole test stack for a person, on loopback, with the
//! test kit's handles (MariaDB, PostgreSQL, AlertManager + its webhook
//! receiver, Prometheus, and Spark + Delta behind the verifier). Default ports
//! are used when free, others otherwise. Writes the ports to
//! `<state-dir>/infra.env` and a summary to `<state-dir>/infra.txt`, then runs
//! until SIGTERM / Ctrl-C (`make infra-down`), stopping every service.
//!
//! `--no-spark` leaves Spark out (it costs ~1 GB of memory).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Instant;
use tributary_testkit::{
    AlertManager, AlertManagerOptions, MariaDb, Postgres, Prometheus, PrometheusOptions, SparkVerifier,
    SparkVerifierOptions, WebhookReceiver,
};

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let state_dir = args
        .iter()
        .position(|a| a == "--state-dir")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
        .unwrap_or_else(|| tributary_testkit::spark::cache_dir().join("infra"));
    let with_spark = !args.iter().any(|a| a == "--no-spark");
    match run(state_dir, with_spark) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("infra: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(state_dir: PathBuf, with_spark: bool) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(&state_dir)?;
    let start = Instant::now();
    let mut lines = Vec::new();
    let mut env = BTreeMap::new();
    let mut timings = Vec::new();

    let t = Instant::now();
    let hook = WebhookReceiver::start_on(Some(9099))?;
    let am = AlertManager::start_with(AlertManagerOptions {
        preferred_port: Some(9093),
        ..AlertManagerOptions::new(hook.port())
    })?;
    timings.push(("alertmanager", t.elapsed()));
    let t = Instant::now();
    let prom = Prometheus::start_with(PrometheusOptions {
        preferred_port: Some(9090),
        alertmanager: Some(format!("127.0.0.1:{}", am.port())),
        ..Default::default()
    })?;
    timings.push(("prometheus", t.elapsed()));
    let t = Instant::now();
    let mariadb = MariaDb::start()?;
    timings.push(("mariadb", t.elapsed()));
    let t = Instant::now();
    let postgres = Postgres::start()?;
    timings.push(("postgresql", t.elapsed()));
    let spark_options = SparkVerifierOptions::from_env().ok();
    let spark = if with_spark {
        let t = Instant::now();
        let spark = SparkVerifier::start(SparkVerifierOptions::from_env()?)?;
        timings.push(("spark", t.elapsed()));
        Some(spark)
    } else {
        None
    };
    let ready = start.elapsed();

    lines.push(format!(
        "MariaDB      mysql://admin:{}@127.0.0.1:{}",
        tributary_testkit::mariadb::ADMIN_PASSWORD,
        mariadb.port()
    ));
    lines.push(format!(
        "PostgreSQL   {}  (replication: {})",
        postgres.url("postgres", tributary_testkit::postgres::SUPERUSER_PASSWORD, "postgres"),
        postgres.replication_url("postgres")
    ));
    lines.push(format!("Prometheus   {}  (scrapes Tributary at 127.0.0.1:9187)", prom.url()));
    lines.push(format!("AlertManager {}  (webhooks -> {})", am.url(), hook.url("/<receiver>")));
    env.insert("TRIBUTARY_MYSQL_PORT", mariadb.port().to_string());
    env.insert("TRIBUTARY_POSTGRES_PORT", postgres.port().to_string());
    env.insert("TRIBUTARY_PROMETHEUS_PORT", prom.port().to_string());
    env.insert("TRIBUTARY_ALERTMANAGER_PORT", am.port().to_string());
    env.insert("TRIBUTARY_WEBHOOK_PORT", hook.port().to_string());
    if let Some(spark) = &spark {
        lines.push(format!("Spark        {} + Delta (verifier pid {})", spark.spark_version(), spark.pid()));
    }
    if let Some(options) = &spark_options {
        let jars = options.jars.iter().map(|j| j.display().to_string()).collect::<Vec<_>>().join(",");
        let pyspark = options.python.with_file_name("pyspark");
        lines.push(format!(
            "Spark shell  {} --master 'local[1]' --driver-memory 1g --jars {jars} \\\n               \
             --conf spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension \\\n               \
             --conf spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog",
            pyspark.display()
        ));
    }
    let rss = stack_rss_mib();
    let mut summary = format!("Tributary test stack up in {:.1} s (", ready.as_secs_f64());
    summary
        .push_str(&timings.iter().map(|(n, d)| format!("{n} {:.1} s", d.as_secs_f64())).collect::<Vec<_>>().join(", "));
    summary.push_str(&format!("); memory (RSS) {rss:.0} MiB\n"));
    for l in &lines {
        summary.push_str(&format!("  {l}\n"));
    }
    summary.push_str("Stop it with `make infra-down`.\n");
    let env_text: String = env.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    std::fs::write(state_dir.join("infra.env"), env_text)?;
    std::fs::write(state_dir.join("infra.txt"), &summary)?;
    print!("{summary}");

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        Ok::<(), std::io::Error>(())
    })?;
    println!("infra: stopping");
    let _ = std::fs::remove_file(state_dir.join("infra.env"));
    let _ = std::fs::remove_file(state_dir.join("infra.txt"));
    drop((spark, prom, am, hook, postgres, mariadb));
    println!("infra: stopped");
    Ok(())
}

/// Total RSS of this process and all its descendants, in MiB.
fn stack_rss_mib() -> f64 {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // The field after the `(comm)` is the state, then the parent pid.
        let Some(after) = stat.rsplit_once(')').map(|(_, rest)| rest) else { continue };
        if let Some(ppid) = after.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut stack = vec![std::process::id()];
    let mut kib = 0u64;
    while let Some(pid) = stack.pop() {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        kib += status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        stack.extend(children.get(&pid).into_iter().flatten());
    }
    kib as f64 / 1024.0
}
