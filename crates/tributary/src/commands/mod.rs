//! One file per subcommand; `dispatch` runs the one the user asked for.

mod changes;
mod check;
mod clean;
mod run;
mod status;

use crate::cli::Command;
use std::process::ExitCode;

/// Runs a subcommand and returns the process exit code.
pub async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run { config } => run::run(&config).await,
        Command::Check { config } => check::check(&config).await,
        Command::Status { config, format } => status::status(&config, format).await,
        Command::Clean { root, older_than, dry_run } => {
            clean::clean(&root.unwrap_or_else(clean::default_root), &older_than, dry_run)
        }
        Command::Changes { table, config, from_version, to_version, format } => {
            changes::changes(&config, &table, from_version, to_version, format).await
        }
    }
}
