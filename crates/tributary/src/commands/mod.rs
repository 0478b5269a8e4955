//! One file per subcommand; `dispatch` runs the one the user asked for.

mod adopt;
mod changes;
mod check;
mod clean;
mod generate;
mod optimize;
mod resnapshot;
mod run;
mod status;
mod vacuum;
mod validate;

use crate::cli::Command;
use std::process::ExitCode;

/// Runs a subcommand and returns the process exit code.
pub async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run { config } => run::run(&config).await,
        Command::Adopt { table, config } => adopt::adopt(&config, &table).await,
        Command::Resnapshot { table, config, address } => {
            resnapshot::resnapshot(&config, &table, address.as_deref()).await
        }
        Command::Check { config } => check::check(&config).await,
        Command::Optimize { config, tables, enable_deletion_vectors } => {
            optimize::optimize(&config, &tables, enable_deletion_vectors).await
        }
        Command::Vacuum { config, tables, retention_hours, dry_run } => {
            vacuum::vacuum(&config, &tables, retention_hours, dry_run).await
        }
        Command::Status { config, format } => status::status(&config, format).await,
        Command::Clean { root, older_than, dry_run } => {
            clean::clean(&root.unwrap_or_else(clean::default_root), &older_than, dry_run)
        }
        Command::Validate { config, tables, json, max_lag_secs, chunk_rows } => {
            validate::validate(validate::ValidateArgs { config: &config, tables, json, max_lag_secs, chunk_rows }).await
        }
        Command::Generate { config, database, rate, duration_secs, seed, schemas, user, password, password_file } => {
            generate::generate(generate::GenerateArgs {
                config: &config,
                database,
                rate,
                duration_secs,
                seed,
                schemas,
                user,
                password,
                password_file,
            })
            .await
        }
        Command::Changes { table, config, from_version, to_version, format } => {
            changes::changes(&config, &table, from_version, to_version, format).await
        }
    }
}
