//! What the pipeline does when its source connection fails while streaming:
//! the one place where an error's [`ErrorClass`] decides between reconnecting
//! and stopping, and the backoff between attempts.
//!
//! A [`ErrorClass::Transient`] failure (server restart, reset or killed
//! connection, failover, timeout) is retried in process with exponential
//! backoff and jitter: the runner commits the complete transactions it has,
//! drops the half-read one and starts the stream again from the positions the
//! Delta tables hold, so each change still lands exactly once. Anything that
//! needs a person (authentication, grants, a purged binlog, a removed slot, a
//! position behind the lake, another server) stops the pipeline with its
//! one-line message, as does running out of `reconnect_max_attempts`.

use std::time::Duration;
use tributary_core::{ErrorClass, Retryable};

/// First wait after a lost connection; doubled per failed attempt.
pub const INITIAL_DELAY: Duration = Duration::from_millis(250);
/// Default longest wait between two attempts (`pipeline.reconnect_max_secs`).
pub const DEFAULT_MAX_DELAY_SECS: u64 = 10;

/// The class of a source error: the first typed error in its chain decides.
/// Errors no source crate typed (a dropped channel, an I/O error from a
/// library) count as transient only when they are I/O errors.
pub fn classify(error: &anyhow::Error) -> ErrorClass {
    for cause in error.chain() {
        if let Some(e) = cause.downcast_ref::<tributary_mysql::MySqlError>() {
            return e.class();
        }
        if let Some(e) = cause.downcast_ref::<tributary_postgres::PostgresError>() {
            return e.class();
        }
        if let Some(e) = cause.downcast_ref::<tributary_delta::DeltaError>() {
            return e.class();
        }
        if cause.downcast_ref::<std::io::Error>().is_some() {
            return ErrorClass::Transient;
        }
        if cause.downcast_ref::<super::source_check::SourceMismatch>().is_some() {
            return ErrorClass::NeedsOperator;
        }
        if cause.downcast_ref::<StreamEnded>().is_some() {
            return ErrorClass::Transient;
        }
    }
    ErrorClass::Fatal
}

/// The source closed the stream without an error (e.g. a server shutting down).
#[derive(Debug, thiserror::Error)]
#[error("the source closed the replication stream")]
pub struct StreamEnded;

/// Exponential backoff with jitter, bounded by `max_delay`; gives up after
/// `max_attempts` failed attempts in a row (0: never).
#[derive(Debug, Clone)]
pub struct Backoff {
    max_delay: Duration,
    max_attempts: u32,
    attempts: u32,
}

impl Backoff {
    pub fn new(max_delay: Duration, max_attempts: u32) -> Self {
        Backoff { max_delay: max_delay.max(INITIAL_DELAY), max_attempts, attempts: 0 }
    }

    /// The wait before the next attempt, or `None` when the attempts are used up.
    pub fn next_delay(&mut self) -> Option<Duration> {
        if self.max_attempts != 0 && self.attempts >= self.max_attempts {
            return None;
        }
        let exponent = self.attempts.min(16);
        self.attempts += 1;
        let base = INITIAL_DELAY.saturating_mul(1 << exponent).min(self.max_delay);
        // ±20 % so that many pipelines behind one restarted server do not come back in step.
        let jitter = 0.8 + 0.4 * unit_random();
        Some(base.mul_f64(jitter).min(self.max_delay))
    }

    /// Failed attempts so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }
}

/// A number in [0, 1) from the clock's nanoseconds: enough for jitter.
fn unit_random() -> f64 {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    // Spread the low bits (a multiplicative hash) so close calls differ.
    let mixed = (u64::from(nanos).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64;
    mixed / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_bound_and_attempts_run_out() {
        let mut backoff = Backoff::new(Duration::from_secs(2), 6);
        let delays: Vec<Duration> = std::iter::from_fn(|| backoff.next_delay()).collect();
        assert_eq!(delays.len(), 6);
        let bases = [250u64, 500, 1000, 2000, 2000, 2000];
        for (delay, base) in delays.iter().zip(bases) {
            let ms = delay.as_millis() as u64;
            assert!(ms >= base * 8 / 10 && ms <= base.min(2000) * 12 / 10 && ms <= 2000, "{ms} vs {base}");
        }
        assert_eq!(backoff.attempts(), 6);
    }

    #[test]
    fn zero_attempts_means_unlimited() {
        let mut backoff = Backoff::new(Duration::from_secs(1), 0);
        assert!((0..100).all(|_| backoff.next_delay().is_some()));
    }

    #[test]
    fn the_first_typed_error_in_the_chain_decides() {
        let lost = anyhow::Error::new(tributary_mysql::MySqlError::Connect {
            address: "127.0.0.1:3306".into(),
            reason: "Connection refused".into(),
        })
        .context("binlog stream");
        assert_eq!(classify(&lost), ErrorClass::Transient);
        let denied = anyhow::Error::new(tributary_mysql::MySqlError::AccessDenied { user: "cdc".into() });
        assert_eq!(classify(&denied), ErrorClass::NeedsOperator);
        assert_eq!(classify(&anyhow::Error::new(StreamEnded)), ErrorClass::Transient);
        assert_eq!(classify(&anyhow::anyhow!("a bug")), ErrorClass::Fatal);
    }
}
