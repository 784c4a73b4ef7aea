//! teacher-svc: the LibTorch side of rankdistill. The native models (Caser, MF) and their
//! checkpoints live here, so that `trainer` trains exactly what this service serves.

pub mod checkpoint;
pub mod model;
