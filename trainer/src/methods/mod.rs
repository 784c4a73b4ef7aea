//! The distillation methods that came after Ranking Distillation, on the same teacher stream:
//! CD (Lee et al. 2019), RRD (DE-RRD, Kang et al. 2020), DCD (Lee & Kim 2021) and RCE-KD
//! (2025). Each is a [`Distiller`]: before every epoch it chooses the items each training
//! query is distilled on (from the teacher's long lists, the student's own ranking or uniform
//! samples), and per batch it turns the student's scores of those items into a loss per query.
//! The trainer adds `lambda` times that loss to the ranking loss L_R, as the reference
//! implementations (woriazzc/KDs) add `lmbda` times theirs to the base loss.
//!
//! Where the references say "user", these methods read "query": our queries are training
//! instances (a user and their recent items), one teacher list each.

pub mod cd;
pub mod config;
pub mod dcd;
pub mod listwise;
pub mod rcekd;
pub mod rrd;
pub mod sampling;
pub mod student_ranks;
pub mod teacher_scores;

use rand_chacha::ChaCha8Rng;
use rankdistill_models::model::Model;
use tch::{Device, Tensor};

pub use config::{CdConfig, DcdConfig, Method, MethodConfig, RceKdConfig, RrdConfig};

/// What a method may read while it prepares an epoch.
pub struct EpochContext<'a> {
    /// The epoch about to run, 1-based.
    pub epoch: usize,
    /// The student as it stands.
    pub model: &'a Model,
    /// Users of the training queries, [N] int64 (CPU).
    pub users: &'a Tensor,
    /// Inputs of the training queries, [N, L] int64 (CPU).
    pub inputs: &'a Tensor,
    /// The seeded generator of the run.
    pub rng: &'a mut ChaCha8Rng,
    /// Where the model lives.
    pub device: Device,
}

/// The items an epoch distills on, and what the loss reads beside the student's scores.
pub struct EpochItems {
    /// Items scored by the student for every query, [N, M] int64 (CPU).
    pub items: Tensor,
    /// Per-query tensors the loss reads, each [N, ...] (CPU); rows follow `items`.
    pub aux: Vec<Tensor>,
}

/// A distillation method: the items of each epoch, and the loss on them.
pub trait Distiller {
    /// Chooses the epoch's items (and the teacher's side of the loss) for every query.
    fn prepare_epoch(&mut self, ctx: EpochContext<'_>) -> anyhow::Result<EpochItems>;
    /// The method's loss per query, [B], from the student's scores [B, M] of the batch's rows
    /// of `EpochItems::items` and the same rows of `EpochItems::aux`.
    fn loss(&self, scores: &Tensor, aux: &[Tensor]) -> Tensor;
    /// The weight of the method's loss against L_R.
    fn weight(&self) -> f64;
}

/// The teacher's ranked lists of every training query, best first: items [N, K] (int64) and
/// their scores [N, K] (f32), on the CPU.
pub struct TeacherLists {
    /// Dense items, [N, K].
    pub items: Tensor,
    /// The teacher's scores of them, [N, K].
    pub scores: Tensor,
}

impl TeacherLists {
    /// The lists of `rankings` as tensors.
    pub fn new(rankings: &crate::pull::Rankings) -> TeacherLists {
        let rows = rankings.rows() as i64;
        let k = rankings.k as i64;
        let items: Vec<i64> = rankings.items.iter().map(|&i| i as i64).collect();
        TeacherLists {
            items: Tensor::from_slice(&items).view([rows, k]),
            scores: Tensor::from_slice(&rankings.scores).view([rows, k]),
        }
    }

    /// Number of queries.
    pub fn rows(&self) -> i64 {
        self.items.size()[0]
    }

    /// Length of every list.
    pub fn k(&self) -> i64 {
        self.items.size()[1]
    }
}
