//! Errors of student-svc: [`ServiceError`] for everything on a request path, mapped to a
//! `tonic::Status` in exactly one place, and [`LoadError`] for refusing an artifact.

use std::path::PathBuf;

use rankdistill_serving::k_limit::InvalidK;
use rankdistill_serving::unknown_item::UnknownItem;
use tonic::{Code, Status};

/// Why a request failed. Each variant maps to one gRPC status code.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ServiceError {
    /// A malformed request (no query, a batch too large, a bad field).
    #[error("{0}")]
    InvalidArgument(String),
    /// A k below 1 or above the server's --max-k.
    #[error(transparent)]
    InvalidK(#[from] InvalidK),
    /// An item id the model does not know.
    #[error(transparent)]
    UnknownItem(#[from] UnknownItem),
    /// A user id the model does not know, with nothing else to rank from.
    #[error(
        "unknown user id '{}' and no recent_items: send the user's recent items, or start the server with --unknown-user popularity", rankdistill_serving::quote::quote(.0)
    )]
    UnknownUser(String),
    /// An error inside one request of a batch; keeps the inner error's status code.
    #[error("requests[{index}]: {source}")]
    InBatch {
        /// Position in the batch.
        index: usize,
        /// The error.
        source: Box<ServiceError>,
    },
    /// Admission control: too many requests admitted.
    #[error("{0}; retry with backoff")]
    Overloaded(String),
    /// No model is loaded yet.
    #[error("the model is loading; retry when health reports SERVING")]
    NotReady,
    /// The server is shutting down.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The caller's deadline (grpc-timeout) passed before the answer was ready.
    #[error("{0}; the work was dropped, retry with a longer deadline")]
    DeadlineExceeded(String),
    /// A reload was refused; the previous model keeps serving.
    #[error("reload refused, still serving {serving}: {reason}")]
    ReloadRefused {
        /// Version still serving.
        serving: String,
        /// Why the new artifact was refused.
        reason: String,
    },
    /// An internal failure (a scoring job panicked or was dropped).
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServiceError {
    /// The gRPC status code of this error.
    pub fn code(&self) -> Code {
        match self {
            ServiceError::InvalidArgument(_)
            | ServiceError::InvalidK(_)
            | ServiceError::UnknownItem(_) => Code::InvalidArgument,
            ServiceError::UnknownUser(_) => Code::NotFound,
            ServiceError::InBatch { source, .. } => source.code(),
            ServiceError::Overloaded(_) => Code::ResourceExhausted,
            ServiceError::NotReady | ServiceError::ShuttingDown => Code::Unavailable,
            ServiceError::DeadlineExceeded(_) => Code::DeadlineExceeded,
            ServiceError::ReloadRefused { .. } => Code::FailedPrecondition,
            ServiceError::Internal(_) => Code::Internal,
        }
    }
}

impl From<ServiceError> for Status {
    /// The one mapping of a request error to the status the caller gets.
    fn from(e: ServiceError) -> Status {
        let code = e.code();
        Status::new(code, e.to_string())
    }
}

/// Why an artifact (at start-up or on reload) or the dataset was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The artifact is unreadable or inconsistent.
    #[error(transparent)]
    Artifact(#[from] rankdistill_core::artifact::ArtifactError),
    /// The weights cannot be served.
    #[error("{path}: {source}")]
    Model {
        /// The artifact folder.
        path: PathBuf,
        /// The cause.
        source: crate::model::ModelError,
    },
    /// The prepared dataset is unreadable.
    #[error("--data {path}: {reason}")]
    Data {
        /// The dataset folder.
        path: PathBuf,
        /// The cause.
        reason: String,
    },
    /// Warm-up produced non-finite scores.
    #[error("{0}: warm-up query produced NaN or infinite scores")]
    WarmUp(PathBuf),
    /// The loader thread failed.
    #[error("loader thread failed: {0}")]
    Thread(String),
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The artifact or the dataset was refused.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The scoring pool could not be built.
    #[error("scoring thread pool: {0}")]
    Pool(String),
    /// The requested kernel is not supported by this CPU.
    #[error("--kernel {0} is not supported by this CPU")]
    Kernel(&'static str),
    /// The admin token flags are unusable.
    #[error("{0}")]
    Security(String),
    /// The shadow flags are unusable.
    #[error("{0}")]
    Shadow(String),
    /// Binding, securing or running the server failed.
    #[error(transparent)]
    Serving(#[from] rankdistill_serving::error::ServeError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert_eq!(ServiceError::UnknownUser("u".into()).code(), Code::NotFound);
        let nested = ServiceError::InBatch {
            index: 2,
            source: Box::new(ServiceError::InvalidK(InvalidK { k: 0, max: 10 })),
        };
        assert_eq!(nested.code(), Code::InvalidArgument);
        assert!(nested.to_string().starts_with("requests[2]: k must be"));
        assert_eq!(
            ServiceError::Overloaded("queue full".into()).code(),
            Code::ResourceExhausted
        );
    }
}
