//! The rankdistill gRPC contract: package `rankdistill.v1`, shared by every service and client.
//! Only the contract: the generated code and the descriptor set. What the servers share
//! beyond it (TLS, limits, deadlines) lives in `rankdistill-serving`.

/// Messages and services of `rankdistill.v1`.
pub mod v1 {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("rankdistill.v1");
}

/// Encoded `FileDescriptorSet` of all rankdistill protos, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/rankdistill_descriptor.bin"));
