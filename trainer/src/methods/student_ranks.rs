//! The student's own view of every training query, computed before an epoch without a graph:
//! its rank of given items among the whole catalog (DCD), or its top-N (RCE-KD). Queries are
//! scored in chunks, so memory stays at one chunk of full score rows.

use rankdistill_models::model::Model;
use tch::{Device, Kind, Tensor};

/// Queries per forward pass of the full scoring.
const CHUNK: i64 = 2048;

/// Runs `each(start, scores)` for chunks of queries, `scores` the student's [b, num_items]
/// scores (evaluation mode, no graph) of queries `start..start + b`.
fn for_each_chunk(
    model: &Model,
    users: &Tensor,
    inputs: &Tensor,
    device: Device,
    mut each: impl FnMut(i64, &Tensor),
) {
    let _guard = tch::no_grad_guard();
    let n = users.size()[0];
    let mut start = 0;
    while start < n {
        let b = CHUNK.min(n - start);
        let u = users.narrow(0, start, b).to_device(device);
        let x = inputs.narrow(0, start, b).to_device(device);
        let scores = model.score_all(&u, &x, false);
        each(start, &scores);
        start += b;
    }
}

/// The student's 0-based rank of each of `items` [N, P] among all items: the number of items
/// it scores strictly higher; [N, P] int64 on the CPU.
pub fn ranks_of(
    model: &Model,
    users: &Tensor,
    inputs: &Tensor,
    items: &Tensor,
    device: Device,
) -> Tensor {
    let mut parts = Vec::new();
    for_each_chunk(model, users, inputs, device, |start, scores| {
        let b = scores.size()[0];
        let n_items = scores.size()[1];
        let wanted = items.narrow(0, start, b).to_device(device);
        let mine = scores.gather(1, &wanted, false);
        let (sorted, _) = scores.sort(1, false);
        let at_most = mine.searchsorted(&sorted, false, true, "right", None::<Tensor>);
        parts.push(
            (-at_most + n_items)
                .to_kind(Kind::Int64)
                .to_device(Device::Cpu),
        );
    });
    Tensor::cat(&parts, 0)
}

/// The student's top `n` items of every query, best first; [N, n] int64 on the CPU.
pub fn top_items(model: &Model, users: &Tensor, inputs: &Tensor, n: i64, device: Device) -> Tensor {
    let mut parts = Vec::new();
    for_each_chunk(model, users, inputs, device, |_, scores| {
        let (_, top) = scores.topk(n, 1, true, true);
        parts.push(top.to_device(Device::Cpu));
    });
    Tensor::cat(&parts, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rankdistill_models::model::ModelConfig;
    use tch::nn;

    fn model() -> (nn::VarStore, Model) {
        tch::manual_seed(1);
        let vs = nn::VarStore::new(Device::Cpu);
        let config = ModelConfig::mf(4, 3, 30);
        let model = Model::new(&vs.root(), &config);
        (vs, model)
    }

    #[test]
    fn ranks_and_top_items_agree_with_a_full_sort() {
        let (_vs, model) = model();
        let users = Tensor::from_slice(&[0i64, 1, 2]);
        let inputs = Tensor::zeros([3, 5], (Kind::Int64, Device::Cpu));
        let items = Tensor::from_slice(&[0i64, 7, 29, 3, 3, 11]).view([3, 2]);
        let ranks = ranks_of(&model, &users, &inputs, &items, Device::Cpu);
        let top = top_items(&model, &users, &inputs, 4, Device::Cpu);
        let all = tch::no_grad(|| model.score_all(&users, &inputs, false));
        for q in 0..3 {
            let row: Vec<f32> = Vec::try_from(all.get(q)).unwrap();
            for p in 0..2 {
                let item = items.int64_value(&[q, p]) as usize;
                let higher = row.iter().filter(|&&s| s > row[item]).count() as i64;
                assert_eq!(ranks.int64_value(&[q, p]), higher);
            }
            let mut order: Vec<usize> = (0..30).collect();
            order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
            let got: Vec<i64> = Vec::try_from(top.get(q)).unwrap();
            assert_eq!(
                got,
                order[..4].iter().map(|&i| i as i64).collect::<Vec<_>>()
            );
        }
    }
}
