//! teacher-svc: serves a LibTorch teacher over gRPC. The native models (Caser, MF) and their
//! checkpoints live in `rankdistill-models`, which the trainer links too; this crate is the
//! server over them: the backends, the model thread, the dataset lookups and the handlers.

pub mod backend;
pub mod catalog;
pub mod config;
pub mod engine;
pub mod error;
pub mod limits;
pub mod ready;
pub mod request;
pub mod server;
pub mod service;
pub mod stream;
pub mod telemetry;
