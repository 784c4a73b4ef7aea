//! How the item table is scanned for the top k, and the block size both scans share.

/// How `top_k_batch` scans the item table. Both answer the exact f32 top k.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scan {
    /// An int8 first pass with per-row error bounds (about 3x fewer bytes per item), then the
    /// candidates it cannot rule out rescored exactly in f32 (see [`crate::quant`]).
    #[default]
    Int8,
    /// Every item scored in f32.
    F32,
}

impl Scan {
    /// Short name, as logs and `Info` show it.
    pub fn name(self) -> &'static str {
        match self {
            Scan::Int8 => "int8-rescore",
            Scan::F32 => "f32",
        }
    }
}

/// Items per scoring block: a block of rows (at 2d = 100 floats, ~0.8 MB) stays in L2 while
/// every query of a batch is scored against it.
pub const BLOCK_ITEMS: usize = 2048;
