//! student-svc: the pure-Rust serving side of rankdistill. It must never depend on LibTorch;
//! it reads the student artifact through `rankdistill-core` only.

pub mod kernel;
pub mod model;
