//! Limits on gRPC messages, shared by the servers' flags and the clients.

/// Default limit on one gRPC message, encoded or decoded (4 MiB, gRPC's usual default).
pub const DEFAULT_MAX_MESSAGE_BYTES: u32 = 4 << 20;
/// Smallest `--max-message-bytes` accepted.
pub const MIN_MAX_MESSAGE_BYTES: u32 = 1 << 10;
/// Largest `--max-message-bytes` accepted: a limit always applies.
pub const MAX_MAX_MESSAGE_BYTES: u32 = 1 << 30;
