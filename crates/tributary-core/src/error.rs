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

/// `e` and its sources on one line (`a: b: c`): a cause its parent already
/// quotes is left out, line breaks become spaces. The one joiner of the
/// library crates (the binary has its own for `anyhow` chains).
pub fn one_line(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.last().is_some_and(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ").replace('\n', " ")
}
