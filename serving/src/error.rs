//! Why the shared server machinery refuses to start or stops.

/// A failure to bind, secure or run the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Binding or serving failed.
    #[error("{context}: {cause}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        cause: std::io::Error,
    },
    /// The reflection service could not be built from the descriptor sets.
    #[error("gRPC reflection: {0}")]
    Reflection(String),
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Transport(tonic::transport::Error),
    /// The TLS flags or files are unusable.
    #[error("{0}")]
    Security(String),
}

impl From<tonic::transport::Error> for ServeError {
    fn from(e: tonic::transport::Error) -> Self {
        ServeError::Transport(e)
    }
}
