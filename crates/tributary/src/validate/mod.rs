//! `tributary validate`: a source table against its Delta mirror, one role per file.
//!
//! * [`checksum`]: the canonical rendering of a row and its 64-bit checksum;
//! * [`compare`]: the mirror indexed by key → checksum, then the source read in
//!   primary-key-ordered chunks and matched against it;
//! * [`schema_check`]: missing / extra columns and type changes;
//! * [`report`]: the per-table result, as a table or JSON.

pub mod checksum;
pub mod compare;
pub mod report;
pub mod schema_check;

/// Exit code: every selected table passed.
pub const EXIT_PASSED: u8 = 0;
/// Exit code: at least one table differs from its mirror (or lags too far).
pub const EXIT_FAILED: u8 = 1;
/// Exit code: validation could not run (bad config, source or mirror unreadable).
pub const EXIT_ERROR: u8 = 2;
