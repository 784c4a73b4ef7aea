//! rankdistill-serving: what both servers share, pure Rust (no LibTorch): the shared flags
//! (`args`), binding and announcing the listeners (`listeners`), TLS with rotation (`tls`,
//! `tls_reload`), health and reflection, the NOT_SERVING -> SERVING -> drain lifecycle
//! (`server`, `process`), the metrics port and the base RPC metrics (`metrics_server`,
//! `metrics`), tracing set-up (`logging`), and the per-RPC layer for the span, the deadline
//! and the metrics (`rpc`, `deadline`). Clients (the trainer, the load generator) use `tls`,
//! `limits` and `error_chain`.

pub mod args;
pub mod deadline;
pub mod error;
pub mod error_chain;
pub mod health;
pub mod k_limit;
pub mod limits;
pub mod listeners;
pub mod logging;
pub mod metrics;
pub mod metrics_server;
pub mod process;
pub mod quote;
pub mod rpc;
pub mod server;
pub mod tls;
pub mod tls_reload;
pub mod unknown_item;
