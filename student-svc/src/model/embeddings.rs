//! The user and item embedding tables the query side reads (the item table here is the
//! input one, indexed by input id: row 0 is padding, dense item i is row i + 1). SASRec has no
//! user table (`users` is empty).

/// Row-major `[users, dim]` and `[items + 1, dim]` embeddings.
#[derive(Debug)]
pub(super) struct Embeddings {
    /// Embedding dimension d.
    pub(super) dim: usize,
    /// `[users, dim]` (empty for SASRec).
    pub(super) users: Vec<f32>,
    /// `[items + 1, dim]`, row 0 the padding id.
    pub(super) items: Vec<f32>,
}

impl Embeddings {
    /// The embedding of input id `input_id`; the padding row for an id out of range.
    pub(super) fn item_row(&self, input_id: u32) -> &[f32] {
        let d = self.dim;
        let i = input_id as usize;
        self.items
            .get(i * d..(i + 1) * d)
            .unwrap_or(&self.items[0..d])
    }

    /// The embedding of a real item's input id; `None` for padding and ids out of range.
    pub(super) fn real_item(&self, input_id: u32) -> Option<&[f32]> {
        let d = self.dim;
        let i = input_id as usize;
        if i == 0 {
            return None;
        }
        self.items.get(i * d..(i + 1) * d)
    }

    /// The embedding of a known user; `None` for none or one out of range.
    pub(super) fn user_row(&self, user: Option<u32>) -> Option<&[f32]> {
        let d = self.dim;
        user.and_then(|u| self.users.get(u as usize * d..(u as usize + 1) * d))
    }
}
