//! The LibTorch side of rankdistill: the native ranking models (Caser, MF, SASRec), their checkpoints,
//! device selection and the tensor helpers serving needs. teacher-svc serves these models and
//! the trainer trains them, so both link this crate and neither links the other.

pub mod caser;
pub mod checkpoint;
pub mod cpu_load;
pub mod device;
mod init;
pub mod mf;
pub mod model;
pub mod rank_all;
pub mod sasrec;
pub mod tensor;
pub mod threads;

pub use caser::Caser;
pub use device::{DeviceChoice, DeviceError, device_name};
pub use mf::Mf;
pub use model::{Activation, Model, ModelConfig, ModelKind, num_parameters};
pub use sasrec::SasRec;
pub use tensor::{ids_tensor, mask_excluded, top_k_rows};
pub use threads::TorchThreads;
