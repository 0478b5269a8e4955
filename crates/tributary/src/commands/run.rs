//! `tributary run`: the pipeline, stopped cleanly by Ctrl-C or SIGTERM.

use crate::config::PipelineConfig;
use crate::metrics::{Metrics, PipelineState};
use std::path::Path;
use std::process::ExitCode;
use tokio::sync::watch;

pub async fn run(config_path: &Path) -> anyhow::Result<ExitCode> {
    let config = PipelineConfig::load(config_path)?;
    // An object store that cannot hold the lake safely stops the run before anything is written.
    tributary_delta::probe_conditional_writes(&config.sink.delta.root).await?;
    let metrics = Metrics::new();
    metrics.health().set_commit_stall_bound(std::time::Duration::from_secs(config.metrics.health_commit_stall_secs));
    metrics.export_validation(crate::metrics::validation::file_path(&config.sink.delta.root));
    let (recopy_tx, mut recopy_rx) = tokio::sync::mpsc::channel(4);
    crate::metrics::server::serve(&config.metrics.listen, metrics.clone(), Some(recopy_tx)).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let on_stop = metrics.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("stop requested: committing the current batch");
        on_stop.set_state(PipelineState::Stopping);
        let _ = stop_tx.send(true);
    });
    crate::pipeline::runner::run(&config, stop_rx, &metrics, &mut recopy_rx).await?;
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
