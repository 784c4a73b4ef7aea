//! student-svc: the pure-Rust serving side of rankdistill. It must never depend on LibTorch;
//! it reads the student artifact through `rankdistill-core` only. Inference (`model`) scores
//! with run-time-selected SIMD kernels (`kernel`), first over an int8 copy of the item table
//! with exact f32 rescoring of the candidates (`quant`), on a dedicated pool (`engine`); the gRPC
//! service (`service`, `server`), fed by the proto-to-domain conversions of `request`,
//! hot-reloads new artifact versions (`served`, `reload`).

pub mod admin;
pub mod batcher;
pub mod catalog;
pub mod config;
pub mod engine;
pub mod error;
pub mod kernel;
pub mod model;
pub mod quant;
pub mod reload;
pub mod request;
pub mod served;
pub mod server;
pub mod service;
pub mod telemetry;
