//! Relaxed Ranking Distillation (DE-RRD, Kang et al. 2020) as its reference implementation in
//! woriazzc/KDs runs it: every epoch, K "interesting" positions are drawn without replacement
//! from the teacher's top-N with probability proportional to exp(-rank / T) and put back in the
//! teacher's order; L "uninteresting" items are drawn uniformly among the items that are
//! neither in the user's training data nor in the top-N. The loss is the relaxed ranking
//! (Plackett-Luce) loss of the interesting items with the uninteresting ones in every
//! denominator.

use std::sync::Arc;

use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

use super::listwise::relaxed_ranking_loss;
use super::sampling::{draw_positions, draw_uniform_outside};
use super::{Distiller, EpochContext, EpochItems, RrdConfig, TeacherLists};

/// The training items of every query's user, sorted: what uniform draws must avoid.
#[derive(Debug, Clone)]
pub struct SeenItems {
    /// Per user, sorted and deduplicated training items.
    pub per_user: Arc<Vec<Vec<u32>>>,
    /// The user of every training query.
    pub query_users: Arc<Vec<u32>>,
    /// Items in the catalog.
    pub num_items: usize,
}

impl SeenItems {
    /// The seen items of each query, in query order.
    pub fn per_query(&self) -> Vec<&[u32]> {
        self.query_users
            .iter()
            .map(|&u| self.per_user[u as usize].as_slice())
            .collect()
    }

    /// Draws `count` items per query outside its user's training items and `also` [N, P].
    pub fn draw_outside(
        &self,
        also: Option<&Tensor>,
        count: usize,
        rng: &mut ChaCha8Rng,
    ) -> Tensor {
        draw_uniform_outside(&self.per_query(), also, self.num_items, count, rng)
    }
}

/// RRD over the teacher's top-N lists.
pub struct Rrd {
    config: RrdConfig,
    lists: Tensor,
    seen: SeenItems,
}

impl Rrd {
    /// RRD on `lists` (the teacher's top-N of every query).
    pub fn new(config: RrdConfig, lists: &TeacherLists, seen: SeenItems) -> Rrd {
        Rrd {
            config,
            lists: lists.items.shallow_clone(),
            seen,
        }
    }
}

/// Draw weights exp(-r / T) of ranks r = 1..=n, [n].
pub fn rank_weights(n: i64, temperature: f64) -> Tensor {
    (Tensor::arange_start(1, n + 1, (Kind::Float, tch::Device::Cpu)) / -temperature).exp()
}

impl Distiller for Rrd {
    fn prepare_epoch(&mut self, ctx: EpochContext<'_>) -> anyhow::Result<EpochItems> {
        let rows = self.lists.size()[0];
        let n = self.lists.size()[1];
        let weights = rank_weights(n, self.config.temperature)
            .unsqueeze(0)
            .expand([rows, n], false)
            .contiguous();
        let (positions, _) = draw_positions(&weights, self.config.k as i64).sort(1, false);
        let interesting = self.lists.gather(1, &positions, false);
        let uninteresting = self
            .seen
            .draw_outside(Some(&self.lists), self.config.l, ctx.rng);
        Ok(EpochItems {
            items: Tensor::cat(&[interesting, uninteresting], 1),
            aux: Vec::new(),
        })
    }

    fn loss(&self, scores: &Tensor, _aux: &[Tensor]) -> Tensor {
        let k = self.config.k as i64;
        let l = scores.size()[1] - k;
        relaxed_ranking_loss(&scores.narrow(1, 0, k), &scores.narrow(1, k, l))
    }

    fn weight(&self) -> f64 {
        self.config.lambda
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rankdistill_models::model::{Model, ModelConfig};

    #[test]
    fn epochs_draw_ordered_teacher_items_and_outside_items() {
        tch::manual_seed(4);
        let rows = 6i64;
        let n = 20i64;
        // Query q's list is items q..q+20 (mod 40), best first.
        let items: Vec<i64> = (0..rows)
            .flat_map(|q| (0..n).map(move |r| (q + r) % 40))
            .collect();
        let lists = TeacherLists {
            items: Tensor::from_slice(&items).view([rows, n]),
            scores: Tensor::zeros([rows, n], (Kind::Float, tch::Device::Cpu)),
        };
        let seen = SeenItems {
            per_user: Arc::new(vec![vec![39], vec![30, 31]]),
            query_users: Arc::new(vec![0, 0, 0, 1, 1, 1]),
            num_items: 40,
        };
        let config = RrdConfig {
            k: 5,
            l: 4,
            temperature: 3.0,
            top_n: n as usize,
            lambda: 0.1,
        };
        let mut rrd = Rrd::new(config, &lists, seen);
        let vs = tch::nn::VarStore::new(tch::Device::Cpu);
        let model = Model::new(&vs.root(), &ModelConfig::mf(4, 2, 40));
        let users = Tensor::from_slice(&[0i64, 0, 0, 1, 1, 1]);
        let inputs = Tensor::zeros([rows, 5], (Kind::Int64, tch::Device::Cpu));
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let epoch = rrd
            .prepare_epoch(EpochContext {
                epoch: 1,
                model: &model,
                users: &users,
                inputs: &inputs,
                rng: &mut rng,
                device: tch::Device::Cpu,
            })
            .unwrap();
        assert_eq!(epoch.items.size(), vec![rows, 9]);
        for q in 0..rows {
            let row: Vec<i64> = Vec::try_from(epoch.items.get(q)).unwrap();
            let list = &items[(q * n) as usize..((q + 1) * n) as usize];
            let ranks: Vec<usize> = row[..5]
                .iter()
                .map(|i| list.iter().position(|x| x == i).unwrap())
                .collect();
            assert!(
                ranks.windows(2).all(|w| w[0] < w[1]),
                "teacher order: {ranks:?}"
            );
            for item in &row[5..] {
                assert!(!list.contains(item), "outside the top-N");
                let user_seen: &[i64] = if q < 3 { &[39] } else { &[30, 31] };
                assert!(!user_seen.contains(item), "outside the training items");
            }
        }
        // The loss reads the first K as the ranked list.
        let scores = Tensor::from_slice(&[2.0f32, 1.0, 0.0]).view([1, 3]);
        let rrd2 = Rrd {
            config: RrdConfig {
                k: 2,
                ..RrdConfig::default()
            },
            lists: lists.items.shallow_clone(),
            seen: rrd.seen.clone(),
        };
        let want = relaxed_ranking_loss(&scores.narrow(1, 0, 2), &scores.narrow(1, 2, 1));
        assert!(rrd2.loss(&scores, &[]).allclose(&want, 1e-6, 1e-6, false));
    }
}
