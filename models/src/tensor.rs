//! Tensor helpers between Rust data and the models: ids in, exclusions masked, top-k out.

use tch::{Device, Kind, Tensor};

/// Converts dense ids to an int64 tensor of the given shape on `device`.
pub fn ids_tensor(ids: &[u32], shape: &[i64], device: Device) -> Tensor {
    let data: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
    Tensor::from_slice(&data).view(shape).to_device(device)
}

/// Sets `scores[row, item] = -inf` for every listed exclusion, in place. `excludes[row]` holds
/// dense item indices; out-of-range ones must be rejected before.
pub fn mask_excluded(scores: &mut Tensor, excludes: &[Vec<u32>]) {
    let n_items = scores.size()[1];
    let flat: Vec<i64> = excludes
        .iter()
        .enumerate()
        .flat_map(|(row, items)| items.iter().map(move |&i| row as i64 * n_items + i as i64))
        .collect();
    if flat.is_empty() {
        return;
    }
    let index = Tensor::from_slice(&flat).to_device(scores.device());
    let _ = scores.view([-1]).index_fill_(0, &index, f64::NEG_INFINITY);
}

/// Top-k of each row of a [B, N] score tensor after masking, copied to the CPU as
/// (dense item, score) lists. Items scored -inf (excluded) are dropped.
pub fn top_k_rows(scores: &Tensor, k: i64) -> Vec<Vec<(u32, f32)>> {
    let k = k.min(scores.size()[1]);
    let (values, indices) = scores.topk(k, 1, true, true);
    let values = values
        .to_kind(Kind::Float)
        .to_device(Device::Cpu)
        .contiguous();
    let indices = indices.to_device(Device::Cpu).contiguous();
    let rows = values.size()[0] as usize;
    let v: Vec<f32> = Vec::try_from(values.view([-1])).unwrap_or_default();
    let ix: Vec<i64> = Vec::try_from(indices.view([-1])).unwrap_or_default();
    let k = k as usize;
    (0..rows)
        .map(|r| {
            (0..k)
                .map(|c| (ix[r * k + c] as u32, v[r * k + c]))
                .filter(|(_, s)| *s != f32::NEG_INFINITY)
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_and_top_k() {
        let mut scores = Tensor::from_slice(&[0.1f32, 0.9, 0.5, 0.7, 0.3, 0.2]).view([2, 3]);
        mask_excluded(&mut scores, &[vec![1], vec![]]);
        let top = top_k_rows(&scores, 2);
        assert_eq!(top[0].iter().map(|p| p.0).collect::<Vec<_>>(), vec![2, 0]);
        assert_eq!(top[1].iter().map(|p| p.0).collect::<Vec<_>>(), vec![0, 1]);
        // Everything excluded: the row comes back short rather than with -inf items.
        let mut scores = Tensor::from_slice(&[1.0f32, 2.0]).view([1, 2]);
        mask_excluded(&mut scores, &[vec![0, 1]]);
        assert!(top_k_rows(&scores, 2)[0].is_empty());
    }
}
