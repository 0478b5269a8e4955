//! The `tributary` binary: parses flags, sets up logging and runs a command.

mod allocator;
mod cli;
mod commands;
mod config;
mod generate;
mod metrics;
mod pipeline;
mod validate;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    allocator::tune();
    let cli = cli::Cli::parse();
    init_logging(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

#[global_allocator]
static ALLOCATOR: allocator::SplitAllocator = allocator::SplitAllocator;

/// The error and its causes on one line, without repeating a cause that is
/// already part of its parent's message. A multi-line cause (a TOML parse
/// error with its caret diagram) keeps its text lines, joined by spaces. The
/// one helper for every message the binary prints.
pub(crate) fn one_line(error: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string();
        let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('|')).collect();
        let text = lines.join(" ");
        if !parts.last().is_some_and(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

fn init_logging(cli: &cli::Cli) {
    // The Delta kernel logs every snapshot load at info and a table that does not exist
    // yet at error; pg_walstream logs its connection steps at info and an existing slot
    // (the normal restart) at warn. Their failures reach us as errors anyway, and we log
    // what matters ourselves. Quiet unless asked for.
    let mut directives = cli.log.clone();
    for (noisy, level) in [("buoyant_kernel", "off"), ("deltalake_core", "warn"), ("pg_walstream", "error")] {
        if !directives.contains(noisy) {
            directives.push_str(&format!(",{noisy}={level}"));
        }
    }
    let filter = tracing_subscriber::EnvFilter::try_new(&directives).unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match cli.log_format {
        cli::LogFormat::Json => builder.json().init(),
        cli::LogFormat::Text => builder.init(),
    }
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn one_line_joins_causes_and_drops_repeats_and_caret_diagrams() {
        let inner = anyhow::anyhow!(
            "TOML parse error at line 2\n  |\n2 | batch_size = 1\n  | ^^^^^\nunknown field `batch_size`\n"
        );
        let error = inner.context("config pipeline.toml");
        assert_eq!(
            one_line(&error),
            "config pipeline.toml: TOML parse error at line 2 2 | batch_size = 1 unknown field `batch_size`"
        );
        let repeated = anyhow::anyhow!("connection refused").context("cannot connect: connection refused");
        assert_eq!(one_line(&repeated), "cannot connect: connection refused");
    }
}
