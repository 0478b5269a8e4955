//! How an error should be handled: retried, shown to an operator, or never retried.
//!
//! Every library crate has its own error type; each implements [`Retryable`] so
//! the pipeline can decide what to do without matching on strings.

/// What the pipeline should do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorClass {
    /// A passing fault (network blip, concurrent commit): retry after a delay.
    Transient,
    /// A setting, grant or input must be changed by a person before retrying.
    NeedsOperator,
    /// A bug or corrupt data: retrying cannot help.
    Fatal,
}

/// Implemented by each crate's error type.
pub trait Retryable {
    /// The class of this error.
    fn class(&self) -> ErrorClass;
}
