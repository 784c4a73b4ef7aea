//! rankdistill-core: the pure-Rust contract that `trainer` and `student-svc` share. Reading
//! and splitting interaction data, the prepared-dataset format, training instances, top-k
//! selection and ranking metrics. It has no LibTorch dependency.

pub mod artifact;
pub mod atomic;
pub mod dataset;
pub mod fidelity;
pub mod history;
pub mod id_map;
pub mod instances;
pub mod metrics;
pub mod popularity;
pub mod prepared;
pub mod sampled;
pub mod split;
pub mod synthetic;
pub mod topk;
