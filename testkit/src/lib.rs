//! The dev-only test harness shared by every crate's integration tests (never a normal
//! dependency): a workspace binary started as a real process on ephemeral ports
//! ([`server`]), located from the test executable ([`binary`]); health checks in plain text
//! and over TLS ([`health`], [`tls`]); a test PKI ([`pki`]); the table runner of the
//! bad-input matrices ([`table`]); the synthetic prepared dataset of the service fixtures
//! ([`dataset`]); the Prometheus scrape ([`metrics`]); reflection ([`reflection`]); and the
//! repository's Python environments ([`python`]); safetensors weights ([`weights`]). Pure
//! Rust: no LibTorch.
//!
//! Imports of the serving transport (`ClientTlsFiles`, `error_chain`) live only in [`tls`].

pub mod binary;
pub mod dataset;
pub mod fuzz;
pub mod health;
pub mod metrics;
pub mod pki;
pub mod python;
pub mod reflection;
pub mod runtime;
pub mod server;
pub mod table;
pub mod tls;
pub mod tls_refusal;
pub mod weights;

pub use binary::{path_arg, texts, workspace_bin};
pub use server::{Server, ServerProcess, ServerSpec, Service};
/// The channel type of the generated clients (for [`grpc_service!`]).
pub use tonic::transport::Channel;
