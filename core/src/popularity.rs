//! The POP baseline: every user gets items ranked by training popularity; ties go to the
//! smaller raw id, which is the smaller dense index because items are numbered in raw-id order.

/// Training popularity of each item: how many training rows it has.
pub fn popularity(train: &[Vec<u32>], num_items: usize) -> Vec<f32> {
    let mut counts = vec![0f32; num_items];
    for seq in train {
        for &item in seq {
            counts[item as usize] += 1.0;
        }
    }
    counts
}

/// Fills `out` (`users x num_items`) with the POP scores for each user.
pub fn fill_scores(popularity: &[f32], users: usize, out: &mut [f32]) {
    for row in out.chunks_mut(popularity.len()).take(users) {
        row.copy_from_slice(popularity);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_rows() {
        assert_eq!(
            popularity(&[vec![0, 2, 2], vec![2]], 3),
            vec![1.0, 0.0, 3.0]
        );
    }
}
