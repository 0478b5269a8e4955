//! The running pipeline: source events → whole transactions → micro-batches
//! split per table → one Delta commit per table and batch.

pub mod assembler;
pub mod batch;
pub mod chunked_snapshot;
pub mod failover;
pub mod failpoint;
pub mod maintenance;
pub mod mysql_source;
pub mod postgres_source;
pub mod reconnect;
pub mod recopy;
pub mod runner;
pub mod snapshot;
pub mod source_check;
pub mod source_control;
pub mod writers;
