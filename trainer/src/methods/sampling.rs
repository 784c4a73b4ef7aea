//! Seeded draws the methods share: positions of a list drawn without replacement by weight
//! (LibTorch's `multinomial`, whose generator `tch::manual_seed` seeds, as the references
//! draw), and items drawn uniformly outside a per-query exclusion set.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

/// Draws `count` positions per row without replacement, with probability proportional to
/// `weights` [N, P] (non-negative, each row with at least `count` positive entries), in draw
/// order; [N, count] int64.
pub fn draw_positions(weights: &Tensor, count: i64) -> Tensor {
    weights.to_kind(Kind::Float).multinomial(count, false)
}

/// For every row, `count` items drawn uniformly among `0..num_items` without replacement,
/// skipping the row's `excluded` items (sorted) and the items of `also_excluded` [N, P] (its
/// row's entries); when fewer than `count` items are left, the draw allows repeats rather than
/// fail. Returns [N, count] int64.
pub fn draw_uniform_outside(
    excluded: &[&[u32]],
    also_excluded: Option<&Tensor>,
    num_items: usize,
    count: usize,
    rng: &mut ChaCha8Rng,
) -> Tensor {
    let rows = excluded.len();
    let extra: Vec<i64> = also_excluded
        .map(|t| Vec::<i64>::try_from(t.contiguous().view([-1])).unwrap_or_default())
        .unwrap_or_default();
    let per_row = also_excluded.map_or(0, |t| t.size()[1] as usize);
    let mut out = Vec::with_capacity(rows * count);
    let mut row_extra: Vec<u32> = Vec::with_capacity(per_row);
    let mut chosen: Vec<u32> = Vec::with_capacity(count);
    // stamp[item] == row + 1 marks an item this row already drew: no clearing between rows.
    let mut stamp = vec![0u32; num_items];
    for (row, seen) in excluded.iter().enumerate() {
        row_extra.clear();
        if per_row > 0 {
            row_extra.extend(
                extra[row * per_row..(row + 1) * per_row]
                    .iter()
                    .map(|&i| i as u32),
            );
            row_extra.sort_unstable();
        }
        let blocked =
            |item: u32| seen.binary_search(&item).is_ok() || row_extra.binary_search(&item).is_ok();
        // An upper bound on the free items: when it is below `count`, repeats are allowed.
        let free = num_items.saturating_sub(seen.len().max(row_extra.len()));
        let distinct = free >= count.saturating_mul(2);
        chosen.clear();
        let mut attempts = 0usize;
        while chosen.len() < count {
            let item = rng.random_range(0..num_items as u32);
            attempts += 1;
            // Past many misses the row has almost nothing free: take what comes.
            let give_up = attempts > 64 * count.max(1) + 1024;
            let fresh = stamp[item as usize] != row as u32 + 1;
            if give_up || (!blocked(item) && (!distinct || fresh)) {
                stamp[item as usize] = row as u32 + 1;
                chosen.push(item);
            }
        }
        out.extend(chosen.iter().map(|&i| i as i64));
    }
    Tensor::from_slice(&out).view([rows as i64, count as i64])
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn uniform_draws_avoid_both_exclusions_and_repeat_only_when_they_must() {
        let seen: Vec<Vec<u32>> = vec![vec![0, 1, 2], vec![5]];
        let excluded: Vec<&[u32]> = seen.iter().map(Vec::as_slice).collect();
        let top = Tensor::from_slice(&[3i64, 4, 6, 7]).view([2, 2]);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let drawn = draw_uniform_outside(&excluded, Some(&top), 40, 5, &mut rng);
        let rows: Vec<i64> = Vec::try_from(drawn.view([-1])).unwrap();
        for (row, chunk) in rows.chunks(5).enumerate() {
            let mut sorted = chunk.to_vec();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), 5, "distinct: {chunk:?}");
            for &item in chunk {
                assert!(!seen[row].contains(&(item as u32)));
                assert!(![3, 4, 6, 7][row * 2..row * 2 + 2].contains(&item));
            }
        }
        let again = draw_uniform_outside(
            &excluded,
            Some(&top),
            40,
            5,
            &mut ChaCha8Rng::seed_from_u64(3),
        );
        assert!(drawn.equal(&again));
        // Three free items and four to draw: repeats, no endless loop.
        let full: Vec<u32> = (0..7).collect();
        let tight = draw_uniform_outside(&[full.as_slice()], None, 10, 4, &mut rng);
        let values: Vec<i64> = Vec::try_from(tight.view([-1])).unwrap();
        assert!(values.iter().all(|&i| (7..10).contains(&i)), "{values:?}");
    }

    #[test]
    fn weighted_draws_are_distinct_and_follow_the_weights() {
        tch::manual_seed(5);
        let weights = Tensor::from_slice(&[0.0f32, 1.0, 1.0, 0.0, 8.0]).view([1, 5]);
        let mut first = [0usize; 5];
        for _ in 0..400 {
            let drawn: Vec<i64> = Vec::try_from(draw_positions(&weights, 2).view([-1])).unwrap();
            assert_ne!(drawn[0], drawn[1]);
            assert!(drawn.iter().all(|&p| [1, 2, 4].contains(&p)));
            first[drawn[0] as usize] += 1;
        }
        assert!(first[4] > first[1] + first[2], "{first:?}");
    }
}
