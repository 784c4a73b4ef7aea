//! teacher-svc: the LibTorch side of rankdistill. The native models (Caser, MF) and their
//! checkpoints live here, so that `trainer` trains exactly what this service serves.

pub mod backend;
pub mod catalog;
pub mod checkpoint;
pub mod config;
pub mod engine;
pub mod error;
pub mod model;
pub mod server;
pub mod service;
pub mod telemetry;
