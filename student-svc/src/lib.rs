//! student-svc: the pure-Rust serving side of rankdistill. It must never depend on LibTorch;
//! it reads the student artifact through `rankdistill-core` only. Inference (`model`) scores
//! with run-time-selected SIMD kernels (`kernel`), first over an int8 copy of the item table
//! with exact f32 rescoring of the candidates (`quant`), or, for large catalogs, through an
//! approximate inverted-file index with exact scores (`index`, `tuning`, `model`), on a
//! dedicated pool (`engine`); the gRPC
//! service (`service`, `server`), fed by the proto-to-domain conversions of `request`,
//! hot-reloads new artifact versions (`served`, `reload`). Live fidelity: a sampled fraction of
//! queries (`sampler`) is re-asked of teacher-svc off the request path (`shadow`), measured
//! per version (`version_stats`, `latency`), and a hot-reloaded version on probation is
//! rolled back when it breaches the thresholds (`probation`, `reload`).

pub mod admin;
pub mod batcher;
pub mod catalog;
pub mod config;
pub mod engine;
pub mod error;
pub mod index;
pub mod kernel;
pub mod latency;
pub mod model;
pub mod probation;
pub mod quant;
pub mod reload;
pub mod request;
pub mod sampler;
pub mod served;
pub mod server;
pub mod service;
pub mod shadow;
pub mod telemetry;
pub mod tuning;
pub mod version_stats;
