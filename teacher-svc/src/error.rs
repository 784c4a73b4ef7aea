//! Errors of teacher-svc: [`ServiceError`] for everything on a request path, mapped to a
//! `tonic::Status` in exactly one place, and [`StartupError`] for refusing to start.

use std::path::PathBuf;

use rankdistill_serving::k_limit::InvalidK;
use rankdistill_serving::unknown_item::UnknownItem;
use tonic::{Code, Status};

/// Why a request failed. Each variant maps to one gRPC status code (see the `From` impl).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ServiceError {
    /// A malformed request field (a missing query, a bad shard, cursor or batch size).
    #[error("{0}")]
    InvalidArgument(String),
    /// A shard index that does not exist.
    #[error("shard_index {index} must be below shard_count {count}")]
    InvalidShard {
        /// Requested shard.
        index: u32,
        /// Number of shards.
        count: u32,
    },
    /// A k below 1 or above the server's --max-k.
    #[error(transparent)]
    InvalidK(#[from] InvalidK),
    /// An item id the dataset does not know.
    #[error(transparent)]
    UnknownItem(#[from] UnknownItem),
    /// A user id the dataset does not know.
    #[error("unknown user id '{}'", rankdistill_serving::quote::quote(.0))]
    UnknownUser(String),
    /// An error inside one query of an explicit list; keeps the inner error's status code.
    #[error("explicit.queries[{index}]: {source}")]
    InQuery {
        /// Position in the list.
        index: usize,
        /// The error.
        source: Box<ServiceError>,
    },
    /// The caller expects another dataset.
    #[error(
        "the server's prepared data has fingerprint {actual}, the request expects {}",
        rankdistill_serving::quote::quote(.expected)
    )]
    FingerprintMismatch {
        /// What the caller expected.
        expected: String,
        /// What the server has.
        actual: String,
    },
    /// Admission control: the model queue or the stream slots are full.
    #[error("{0}; retry with backoff")]
    Overloaded(String),
    /// The model is still loading or warming up.
    #[error("the model is loading; retry when health reports SERVING")]
    NotReady,
    /// The server is shutting down.
    #[error("{0}")]
    ShuttingDown(String),
    /// The caller's deadline (grpc-timeout) passed; the work stopped.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// The model thread is gone.
    #[error("the model thread has stopped")]
    EngineStopped,
    /// The forward pass failed.
    #[error("model error: {0}")]
    Model(String),
}

impl ServiceError {
    /// The gRPC status code of this error.
    pub fn code(&self) -> Code {
        match self {
            ServiceError::InvalidArgument(_)
            | ServiceError::InvalidK(_)
            | ServiceError::InvalidShard { .. }
            | ServiceError::UnknownItem(_) => Code::InvalidArgument,
            ServiceError::UnknownUser(_) => Code::NotFound,
            ServiceError::InQuery { source, .. } => source.code(),
            ServiceError::FingerprintMismatch { .. } => Code::FailedPrecondition,
            ServiceError::Overloaded(_) => Code::ResourceExhausted,
            ServiceError::NotReady
            | ServiceError::ShuttingDown(_)
            | ServiceError::EngineStopped => Code::Unavailable,
            ServiceError::DeadlineExceeded(_) => Code::DeadlineExceeded,
            ServiceError::Model(_) => Code::Internal,
        }
    }
}

impl From<ServiceError> for Status {
    fn from(error: ServiceError) -> Status {
        Status::new(error.code(), error.to_string())
    }
}

/// Why the server refuses to start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The prepared dataset cannot be loaded.
    #[error("cannot load the prepared dataset: {0}")]
    Dataset(rankdistill_core::prepared::PreparedError),
    /// The native checkpoint cannot be loaded.
    #[error("cannot load the checkpoint: {0}")]
    Checkpoint(rankdistill_models::checkpoint::CheckpointError),
    /// The TorchScript module cannot be loaded or does not have the documented signature.
    #[error("TorchScript model {path}: {reason}")]
    TorchScript {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The model was trained on other data than the server was given.
    #[error(
        "the model {model} was trained on data with fingerprint {model_fingerprint}, but --data {data} has fingerprint {data_fingerprint}; serve it with the dataset it was trained on"
    )]
    FingerprintMismatch {
        /// The model path.
        model: PathBuf,
        /// The model's data fingerprint.
        model_fingerprint: String,
        /// The dataset folder.
        data: PathBuf,
        /// The dataset's fingerprint.
        data_fingerprint: String,
    },
    /// The model and the dataset disagree on shape, or the settings are inconsistent.
    #[error("{0}")]
    Mismatch(String),
    /// The device is not usable.
    #[error("{0}")]
    Device(rankdistill_models::DeviceError),
    /// The warm-up forward pass failed.
    #[error("warm-up forward pass failed: {0}")]
    Warmup(String),
    /// Binding or serving failed.
    #[error("{context}: {cause}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        cause: std::io::Error,
    },
    /// The model thread ended before reporting.
    #[error("the model thread stopped during start-up")]
    EngineStopped,
    /// Binding, securing or running the server failed.
    #[error(transparent)]
    Serving(#[from] rankdistill_serving::error::ServeError),
}

// Written out rather than `#[from]`, which would also make the inner error the `source` and
// print its message twice in `{:#}` chains: the variants' messages already include it.
impl From<rankdistill_core::prepared::PreparedError> for StartupError {
    fn from(e: rankdistill_core::prepared::PreparedError) -> Self {
        StartupError::Dataset(e)
    }
}

impl From<rankdistill_models::checkpoint::CheckpointError> for StartupError {
    fn from(e: rankdistill_models::checkpoint::CheckpointError) -> Self {
        StartupError::Checkpoint(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_precise() {
        let cases = [
            (
                ServiceError::InvalidK(InvalidK { k: 0, max: 10 }),
                Code::InvalidArgument,
            ),
            (ServiceError::UnknownUser("u9".into()), Code::NotFound),
            (
                ServiceError::InQuery {
                    index: 3,
                    source: Box::new(ServiceError::UnknownUser("u9".into())),
                },
                Code::NotFound,
            ),
            (
                ServiceError::FingerprintMismatch {
                    expected: "a".into(),
                    actual: "b".into(),
                },
                Code::FailedPrecondition,
            ),
            (
                ServiceError::Overloaded("queue full".into()),
                Code::ResourceExhausted,
            ),
            (ServiceError::NotReady, Code::Unavailable),
        ];
        for (error, code) in cases {
            assert_eq!(Status::from(error).code(), code);
        }
        let status = Status::from(ServiceError::UnknownItem(UnknownItem::new(
            "exclude_items",
            "i42",
        )));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("'i42'"), "{}", status.message());
        let status = Status::from(ServiceError::InQuery {
            index: 3,
            source: Box::new(ServiceError::UnknownUser("u9".into())),
        });
        assert_eq!(
            status.message(),
            "explicit.queries[3]: unknown user id 'u9'"
        );
    }
}
