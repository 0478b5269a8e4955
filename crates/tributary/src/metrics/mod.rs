//! What `tributary run` exports for Prometheus: the metric families
//! (docs/metrics.md) and the HTTP server for `/metrics`, `/healthz`, `/readyz`.

pub mod binlog;
pub mod health;
pub mod maintenance;
pub mod registry;
pub mod server;
pub mod slot;
pub mod validation;

pub use registry::{Metrics, PipelineState};
