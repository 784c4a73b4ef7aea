//! Command-line definitions (clap) and nothing else: `crate::commands` turns them into the
//! library's settings. Every flag can also be set through its environment variable; numeric
//! flags are checked as they are parsed (`numbers`).

use std::path::PathBuf;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};
use rankdistill_core::dataset::Format;
use rankdistill_models::{Activation, DeviceChoice, ModelKind, TorchThreads};
use rankdistill_serving::limits::{
    DEFAULT_MAX_MESSAGE_BYTES, MAX_MAX_MESSAGE_BYTES, MIN_MAX_MESSAGE_BYTES,
};

use crate::report::input::{Group, LatencyInput};

pub mod numbers;

use numbers::{fraction, non_negative, positive, signed_unit, unit_interval};

/// The rankdistill trainer.
#[derive(Debug, Parser)]
#[command(
    name = "trainer",
    version,
    about = "rankdistill: prepare data, train teachers, distill students, evaluate"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// The command's figures as JSON: `--json FILE` writes them to FILE (the text stays on
    /// stdout); `--json` or `--json -` prints them on stdout and moves the text to stderr.
    #[arg(
        long,
        global = true,
        env = "RD_JSON",
        value_name = "FILE",
        num_args = 0..=1,
        default_missing_value = "-"
    )]
    pub json: Option<PathBuf>,
    /// No progress display and no summary line on stderr.
    #[arg(long, short = 'q', global = true, env = "RD_QUIET")]
    pub quiet: bool,
    /// LibTorch intra-op CPU threads: `auto` (one per CPU the process may use that other work
    /// leaves free, adapted as the load changes), a fixed count, or 0 (LibTorch's default, one
    /// per core whatever else runs).
    #[arg(long, global = true, env = "RD_TORCH_THREADS", default_value_t = TorchThreads::Auto,
          value_parser = |value: &str| value.parse::<TorchThreads>())]
    pub torch_threads: TorchThreads,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate a seeded synthetic interaction file (MovieLens u.data layout).
    GenSynthetic(GenSyntheticArgs),
    /// Split an interaction file (or import a pre-split train/test pair) into a prepared
    /// dataset folder.
    Prepare(PrepareArgs),
    /// Evaluate a model (pop, random, or a checkpoint folder) on a prepared dataset.
    Evaluate(EvaluateArgs),
    /// Train a teacher (Caser or MF) with LibTorch and write a checkpoint.
    Train(TrainArgs),
    /// Distill a student from teacher-svc rankings with Ranking Distillation.
    Distill(DistillArgs),
    /// Choose the number of epochs and the RD settings on the validation split (never test).
    Search(SearchArgs),
    /// Pull one shard of the teacher rankings into the cache and stop (an Indexed Job worker).
    Pull(PullArgs),
    /// Summarise groups of runs (seeds) in one table: mean ± std, parameters.
    Report(ReportArgs),
    /// Distill a new student when the teacher's version changed, and publish it to the
    /// served folder when it passes the gates (once, or every --interval-secs).
    Refresh(RefreshArgs),
    /// Ask a served student and a served teacher for the same users and report how close the
    /// student's lists are (overlap@k, NDCG against the teacher, rank correlation), beside the
    /// student's own live figures from its shadow path.
    Fidelity(FidelityArgs),
}

/// Flags of `gen-synthetic`.
#[derive(Debug, Args)]
pub struct GenSyntheticArgs {
    /// Output file.
    #[arg(long, env = "RD_SYNTH_OUT", default_value = "runs/synthetic/u.data")]
    pub out: PathBuf,
    /// Number of users.
    #[arg(long, env = "RD_SYNTH_USERS", default_value_t = 2000)]
    pub users: usize,
    /// Number of items.
    #[arg(long, env = "RD_SYNTH_ITEMS", default_value_t = 1000)]
    pub items: usize,
    /// Number of item clusters.
    #[arg(long, env = "RD_SYNTH_CLUSTERS", default_value_t = 20)]
    pub clusters: usize,
    /// Mean interactions per user.
    #[arg(long, env = "RD_SYNTH_MEAN_LENGTH", default_value_t = 40)]
    pub mean_length: usize,
    /// Minimum interactions per user.
    #[arg(long, env = "RD_SYNTH_MIN_LENGTH", default_value_t = 10)]
    pub min_length: usize,
    /// Probability that the next item is a successor of the previous one.
    #[arg(long, env = "RD_SYNTH_TRANSITION", default_value_t = 0.5, value_parser = unit_interval("--transition-prob"))]
    pub transition_prob: f64,
    /// Power-law exponent of item popularity.
    #[arg(long, env = "RD_SYNTH_POP_EXPONENT", default_value_t = 0.8, value_parser = non_negative("--popularity-exponent"))]
    pub popularity_exponent: f64,
    /// Random seed.
    #[arg(long, env = "RD_SEED", default_value_t = 42)]
    pub seed: u64,
}

/// Flags of `prepare`.
#[derive(Debug, Args)]
pub struct PrepareArgs {
    /// Interaction file to re-split: MovieLens u.data, RD/Caser `user item rating`, or SASRec
    /// `user item`. Not with --train.
    #[arg(
        long,
        env = "RD_INPUT",
        conflicts_with = "train",
        required_unless_present = "train"
    )]
    pub input: Option<PathBuf>,
    /// Training file of a pre-split import (any format of --input; users and items are
    /// numbered from it). Needs --test.
    #[arg(long, env = "RD_TRAIN_FILE", requires = "test")]
    pub train: Option<PathBuf>,
    /// Test file of a pre-split import; rows whose user or item is not in --train are dropped.
    #[arg(long, env = "RD_TEST_FILE", requires = "train")]
    pub test: Option<PathBuf>,
    /// Validation file of a pre-split import (optional), filtered like --test.
    #[arg(long, env = "RD_VALID_FILE", requires = "train")]
    pub valid: Option<PathBuf>,
    /// File format of every input file; detected from each file's first line when omitted.
    #[arg(long, env = "RD_FORMAT")]
    pub format: Option<Format>,
    /// Output folder of the prepared dataset.
    #[arg(long, env = "RD_DATA", default_value = "runs/data")]
    pub out: PathBuf,
    /// How --input is split per user, in time order: temporal (the most recent
    /// --test-fraction to test, then --valid-fraction of the rest to validation) or
    /// leave-one-out (SASRec: the last item to test, the second-to-last to validation; users
    /// with fewer than 3 keep all in train) [default: temporal]. Only with --input.
    #[arg(long, env = "RD_SPLIT_PROTOCOL", value_enum)]
    pub protocol: Option<ProtocolArg>,
    /// Fraction of each user's interactions (the most recent) held out for test [default:
    /// 0.2]. Only with --input and the temporal protocol.
    #[arg(long, env = "RD_TEST_FRACTION", value_parser = fraction("--test-fraction"))]
    pub test_fraction: Option<f64>,
    /// Fraction of each user's remaining training interactions cut for validation [default:
    /// 0, none]. Only with --input and the temporal protocol.
    #[arg(long, env = "RD_VALID_FRACTION", value_parser = fraction("--valid-fraction"))]
    pub valid_fraction: Option<f64>,
}

/// `--protocol` of `prepare` (`rankdistill_core::split::SplitProtocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProtocolArg {
    /// Per user, the most recent --test-fraction of the interactions to test and
    /// --valid-fraction of the rest to validation (method.md's split).
    Temporal,
    /// Per user, the last interaction to test and the second-to-last to validation (SASRec).
    LeaveOneOut,
}

/// Flags of `evaluate`.
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// Prepared dataset folder.
    #[arg(long, env = "RD_DATA", default_value = "runs/data")]
    pub data: PathBuf,
    /// Model: `pop` (training popularity), `random` (seeded uniform scores), or a checkpoint folder.
    #[arg(long, env = "RD_MODEL", default_value = "pop")]
    pub model: String,
    /// Which held-out part to score: test or valid.
    #[arg(long, env = "RD_EVAL_SPLIT", default_value = "test")]
    pub split: String,
    /// Cut-offs k, comma separated.
    #[arg(long, env = "RD_EVAL_KS", value_delimiter = ',', default_values_t = [3usize, 5, 10])]
    pub ks: Vec<usize>,
    /// Seed of the random model and of the sampled negatives.
    #[arg(long, env = "RD_SEED", default_value_t = 42)]
    pub seed: u64,
    /// Also compute SASRec's sampled metrics: HR@k and NDCG@k of each user's held-out item
    /// among N negatives drawn uniformly from the catalogue (never a training item nor the
    /// target; seeded by --seed). Needs exactly one held-out item per user (`prepare
    /// --protocol leave-one-out`). 0: off. The full-ranking metrics stay the reference.
    #[arg(
        long,
        env = "RD_SAMPLED_NEGATIVES",
        default_value_t = 0,
        value_name = "N"
    )]
    pub sampled_negatives: usize,
}

/// How the distillation weights are formed (`crate::rd_loss::Weighting`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WeightingArg {
    /// Position importance only.
    Position,
    /// Ranking discrepancy only (from the dynamic start epoch; position before).
    Discrepancy,
    /// Position times discrepancy (from the dynamic start epoch; position before).
    Hybrid,
}

/// How the BCE ranking loss is reduced (`crate::train::loss::BceForm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BceFormArg {
    /// The reference: targets' and negatives' terms summed per instance, then the batch mean.
    Sum,
    /// Mean over the targets' terms plus mean over the negatives' terms.
    Mean,
}

/// How L_R and L_D are combined (`crate::rd_loss::LossForm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LossFormArg {
    /// The reference code: L_R + a' * L_D.
    Reference,
    /// The paper: (1 - a) * L_R + a * L_D.
    Convex,
}

/// Training windows, shared by `train`, `distill` and `pull` (the teacher builds the same
/// queries).
#[derive(Debug, Clone, Copy, Args)]
pub struct WindowArgs {
    /// Input length L (default: 5, Caser's reference; 50 for SASRec, its reference's maxlen).
    #[arg(long = "seq-len", env = "RD_SEQ_LEN")]
    pub sequence_length: Option<usize>,
    /// Targets per training instance T.
    #[arg(long = "targets", env = "RD_TARGETS", default_value_t = 1)]
    pub target_length: usize,
}

/// What the teacher rankings contain, shared by `distill` and `pull`.
#[derive(Debug, Clone, Copy, Args)]
pub struct RankingArgs {
    /// Length K of the teacher rankings.
    #[arg(long = "rd-k", env = "RD_K", default_value_t = 10)]
    pub k: usize,
    /// Teacher rankings also exclude the user's other training items (default: the method's
    /// reference: false for RD and RCE-KD, true for CD, RRD and DCD).
    #[arg(long, env = "RD_EXCLUDE_SEEN", action = clap::ArgAction::Set)]
    pub exclude_seen: Option<bool>,
}

/// Where the teacher rankings come from, shared by `distill` and `pull`.
#[derive(Debug, Clone, Args)]
pub struct TeacherArgs {
    /// Teacher endpoints, comma separated (host:port, http:// or https://host:port). `distill
    /// --shard-count N` (N > 1) can do without: the shards written by `pull` name their teacher.
    #[arg(long, env = "RD_TEACHER", value_delimiter = ',')]
    pub teacher: Vec<String>,
    /// Folder of the teacher-rankings cache (shards of `pull` go here too).
    #[arg(long, env = "RD_CACHE_DIR", default_value = "runs/cache")]
    pub cache_dir: PathBuf,
    /// Parallel streams per teacher endpoint.
    #[arg(long, env = "RD_STREAMS_PER_TEACHER", default_value_t = 2)]
    pub streams_per_teacher: usize,
    /// Queries per streamed message.
    #[arg(long, env = "RD_STREAM_BATCH", default_value_t = 256)]
    pub stream_batch: u32,
    /// Attempts per shard without progress before giving up.
    #[arg(long, env = "RD_MAX_RETRIES", default_value_t = 8)]
    pub max_retries: u32,
    /// Cap on queries per second per stream (default: none). The HTTP/2 stream window then
    /// shrinks to 64 KiB, so the teacher cannot run far ahead of the cap either.
    #[arg(long, env = "RD_PULL_RATE", value_parser = positive("--pull-rate"))]
    pub pull_rate: Option<f64>,
    /// Shards the pull is split into (Indexed Job workers): `pull` writes shard
    /// --shard-index of N; `distill` with N > 1 merges the N shards instead of pulling.
    #[arg(long, env = "RD_SHARD_COUNT", default_value_t = 1)]
    pub shard_count: u32,
    /// TLS to the teachers and the message size limit.
    #[command(flatten)]
    pub tls: Box<TeacherTlsArgs>,
}

/// Transport flags for the teacher connections (`distill`, `pull`).
#[derive(Debug, Clone, Args)]
pub struct TeacherTlsArgs {
    /// CA certificate(s) (PEM) the teachers' certificates must chain to. Turns on TLS:
    /// endpoints without a scheme become https://.
    #[arg(long, env = "RD_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for teachers that require mutual TLS; needs --tls-key.
    #[arg(long, env = "RD_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, env = "RD_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Name the teachers' certificates must carry, instead of the endpoint's host (e.g. when
    /// endpoints are pod IPs).
    #[arg(long, env = "RD_TLS_DOMAIN")]
    pub tls_domain: Option<String>,
    /// Largest gRPC message sent to or received from a teacher, in bytes (a streamed message
    /// holds --stream-batch x K rankings; at most 9 bytes per ranked item).
    #[arg(long, env = "RD_MAX_MESSAGE_BYTES", default_value_t = DEFAULT_MAX_MESSAGE_BYTES,
          value_parser = clap::value_parser!(u32).range(MIN_MAX_MESSAGE_BYTES as i64..=MAX_MAX_MESSAGE_BYTES as i64))]
    pub max_message_bytes: u32,
}

/// Model shape flags shared by `train` and `distill`.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// Model kind: caser, mf or sasrec.
    #[arg(long = "model", env = "RD_MODEL_KIND", default_value = "caser")]
    pub kind: ModelKind,
    /// Embedding dimension d (default: 100 for `train`, 50 for `distill`; 50 for SASRec).
    #[arg(long, env = "RD_DIM")]
    pub dim: Option<i64>,
    /// Training windows.
    #[command(flatten)]
    pub window: WindowArgs,
    /// Caser vertical filters.
    #[arg(long, env = "RD_NV", default_value_t = 2)]
    pub nv: i64,
    /// Caser horizontal filters per height.
    #[arg(long, env = "RD_NH", default_value_t = 16)]
    pub nh: i64,
    /// Caser dropout.
    #[arg(long, env = "RD_DROPOUT", default_value_t = 0.5, value_parser = fraction("--dropout"))]
    pub dropout: f64,
    /// Caser conv activation: identity, relu, tanh, sigmoid.
    #[arg(long, env = "RD_CONV_ACTIVATION", default_value = "identity")]
    pub conv_activation: Activation,
    /// Caser fc activation: identity, relu, tanh, sigmoid.
    #[arg(long, env = "RD_FC_ACTIVATION", default_value = "sigmoid")]
    pub fc_activation: Activation,
    /// SASRec self-attention blocks (the reference's default: 2).
    #[arg(long, env = "RD_NUM_BLOCKS", default_value_t = 2, value_parser = clap::value_parser!(i64).range(1..=64))]
    pub num_blocks: i64,
    /// SASRec attention heads; --dim must be a multiple (the reference's default: 1).
    #[arg(long, env = "RD_NUM_HEADS", default_value_t = 1, value_parser = clap::value_parser!(i64).range(1..=64))]
    pub num_heads: i64,
}

/// Optimisation flags shared by `train` and `distill`.
#[derive(Debug, Clone, Args)]
pub struct OptimArgs {
    /// Passes over the training instances (default: 50; 201 for SASRec, as its reference).
    #[arg(long, env = "RD_EPOCHS")]
    pub epochs: Option<usize>,
    /// Minibatch size (default: 512; 128 users for SASRec, as its reference).
    #[arg(long, env = "RD_BATCH_SIZE")]
    pub batch_size: Option<usize>,
    /// Adam learning rate.
    #[arg(long = "lr", env = "RD_LR", default_value_t = 1e-3, value_parser = numbers::learning_rate("--lr"))]
    pub learning_rate: f64,
    /// L2 penalty (Adam weight decay; default: 1e-6; 0 for SASRec, as its reference).
    #[arg(long, env = "RD_L2", value_parser = non_negative("--l2"))]
    pub l2: Option<f64>,
    /// Sampled negatives per instance (default: 3; 1 per position for SASRec).
    #[arg(long, env = "RD_NEGATIVES")]
    pub negatives: Option<usize>,
    /// Reduction of the BCE ranking loss of every model: sum (the reference: targets' and
    /// negatives' terms summed per instance, then the batch mean) or mean (mean over targets
    /// plus mean over negatives, which weighs the negatives' term by 1/negatives).
    #[arg(long, env = "RD_BCE", value_enum, default_value_t = BceFormArg::Sum)]
    pub bce: BceFormArg,
    /// Random seed (init, shuffling, negatives, dropout).
    #[arg(long, env = "RD_SEED", default_value_t = 1)]
    pub seed: u64,
    /// Evaluate every N epochs (0: only at the end).
    #[arg(long, env = "RD_EVAL_EVERY", default_value_t = 0)]
    pub eval_every: usize,
    /// Held-out part for evaluations: test or valid.
    #[arg(long = "eval-split", env = "RD_EVAL_SPLIT", default_value = "test")]
    pub eval_split: String,
    /// Device: cpu, cuda or auto.
    #[arg(long, env = "RD_DEVICE", default_value_t = DeviceChoice::Cpu,
          value_parser = PossibleValuesParser::new(DeviceChoice::NAMES).try_map(|name| name.parse::<DeviceChoice>()))]
    pub device: DeviceChoice,
}

/// Flags of `train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Prepared dataset folder.
    #[arg(long, env = "RD_DATA", default_value = "runs/data")]
    pub data: PathBuf,
    /// Output checkpoint folder (written atomically).
    #[arg(long, env = "RD_OUT", default_value = "runs/teacher")]
    pub out: PathBuf,
    /// Model shape.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Optimisation.
    #[command(flatten)]
    pub optim: OptimArgs,
}

/// Ranking Distillation flags.
#[derive(Debug, Clone, Args)]
pub struct RdArgs {
    /// The teacher rankings.
    #[command(flatten)]
    pub rankings: RankingArgs,
    /// Position-weight temperature lambda.
    #[arg(long, env = "RD_LAMBDA", default_value_t = 1.0, value_parser = positive("--lambda"))]
    pub lambda: f64,
    /// Discrepancy sharpness mu.
    #[arg(long, env = "RD_MU", default_value_t = 0.1, value_parser = non_negative("--mu"))]
    pub mu: f64,
    /// Sampled unobserved items n for the student's rank estimate.
    #[arg(long, env = "RD_SAMPLES", default_value_t = 100)]
    pub samples: usize,
    /// Weight of L_D: a' in the reference form, a in the convex form.
    #[arg(long, env = "RD_ALPHA", default_value_t = 1.0, value_parser = non_negative("--alpha"))]
    pub alpha: f64,
    /// reference: L_R + a' L_D; convex: (1 - a) L_R + a L_D.
    #[arg(long, env = "RD_LOSS_FORM", value_enum, default_value_t = LossFormArg::Reference)]
    pub loss_form: LossFormArg,
    /// position, discrepancy or hybrid.
    #[arg(long, env = "RD_WEIGHTING", value_enum, default_value_t = WeightingArg::Hybrid)]
    pub weighting: WeightingArg,
    /// L1-renormalise the dynamic weights over K (the paper); false, the default: the bare
    /// product, as the reference code runs (its renormalisation flag is hard-coded off).
    #[arg(long, env = "RD_RENORMALISE", default_value_t = false, action = clap::ArgAction::Set)]
    pub renormalise: bool,
    /// Dynamic weights are used in the epochs after this one (1-based; the reference tests
    /// `epoch > dynamic_start_epoch`, so the default 10 starts them at epoch 11).
    #[arg(long, env = "RD_DYNAMIC_START", default_value_t = 10)]
    pub dynamic_start_epoch: usize,
}

/// Flags of `distill`.
#[derive(Debug, Args)]
pub struct DistillArgs {
    /// Prepared dataset folder (the teachers must serve the same fingerprint).
    #[arg(long, env = "RD_DATA", default_value = "runs/data")]
    pub data: PathBuf,
    /// Output student artifact folder (written atomically).
    #[arg(long, env = "RD_OUT", default_value = "runs/student")]
    pub out: PathBuf,
    /// Teachers, cache and shards.
    #[command(flatten)]
    pub source: TeacherArgs,
    /// With --shard-count N > 1: wait up to this many seconds for all N shards to be present
    /// and valid (a training Job started beside the pull Job); 0 fails at once.
    #[arg(long, env = "RD_SHARD_WAIT_S", default_value_t = 0)]
    pub shard_wait_s: u64,
    /// Student shape.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Optimisation.
    #[command(flatten)]
    pub optim: OptimArgs,
    /// Ranking Distillation.
    #[command(flatten)]
    pub rd: RdArgs,
    /// The method, and the settings of the methods after RD.
    #[command(flatten)]
    pub methods: MethodArgs,
}

/// `--method` of `distill`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MethodArg {
    /// Ranking Distillation (Tang & Wang 2018).
    Rd,
    /// Collaborative Distillation (Lee et al. 2019).
    Cd,
    /// Relaxed Ranking Distillation (DE-RRD, Kang et al. 2020).
    Rrd,
    /// Dual Correction Distillation (Lee & Kim 2021).
    Dcd,
    /// RCE-KD (arXiv 2509.20989); needs a live teacher (ScoreItems).
    Rcekd,
}

/// The distillation method and the settings of CD, RRD, DCD and RCE-KD (defaults: woriazzc/KDs'
/// configurations; see the README).
#[derive(Debug, Clone, Args)]
pub struct MethodArgs {
    /// Which method distills.
    #[arg(long, env = "RD_METHOD", value_enum, default_value_t = MethodArg::Rd)]
    pub method: MethodArg,
    /// CD: length N of the teacher lists the items are drawn from.
    #[arg(long, default_value_t = 1000)]
    pub cd_top_n: usize,
    /// CD: distinct items drawn per query.
    #[arg(long, default_value_t = 2)]
    pub cd_samples: usize,
    /// CD: temperature T of the draw weights exp(-r / (N T)).
    #[arg(long, default_value_t = 20.0, value_parser = positive("--cd-temperature"))]
    pub cd_temperature: f64,
    /// CD: soft-label temperature t1 of sigma((s_T + t2) / t1).
    #[arg(long, default_value_t = 2.0, value_parser = positive("--cd-t1"))]
    pub cd_t1: f64,
    /// CD: soft-label shift t2.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub cd_t2: f64,
    /// CD: weight of its loss against L_R.
    #[arg(long, default_value_t = 0.5, value_parser = positive("--cd-lambda"))]
    pub cd_lambda: f64,
    /// RRD: interesting items K per query per epoch.
    #[arg(long, default_value_t = 100)]
    pub rrd_k: usize,
    /// RRD: uninteresting items L per query per epoch.
    #[arg(long, default_value_t = 200)]
    pub rrd_l: usize,
    /// RRD: temperature T of the draw weights exp(-rank / T).
    #[arg(long, default_value_t = 10.0, value_parser = positive("--rrd-temperature"))]
    pub rrd_temperature: f64,
    /// RRD: length N of the teacher lists.
    #[arg(long, default_value_t = 500)]
    pub rrd_top_n: usize,
    /// RRD: weight of its loss against L_R.
    #[arg(long, default_value_t = 0.1, value_parser = positive("--rrd-lambda"))]
    pub rrd_lambda: f64,
    /// DCD: items per direction per query per epoch.
    #[arg(long, default_value_t = 100)]
    pub dcd_k: usize,
    /// DCD: temperature T of the discrepancy weights.
    #[arg(long, default_value_t = 10.0, value_parser = positive("--dcd-temperature"))]
    pub dcd_temperature: f64,
    /// DCD: length N of the teacher lists.
    #[arg(long, default_value_t = 500)]
    pub dcd_top_n: usize,
    /// DCD: weight of its loss against L_R.
    #[arg(long, default_value_t = 0.01, value_parser = positive("--dcd-lambda"))]
    pub dcd_lambda: f64,
    /// RCE-KD: length K of the teacher's list and of the student's own top-K.
    #[arg(long, default_value_t = 50)]
    pub rcekd_k: usize,
    /// RCE-KD: items L drawn from the student's top-N per query per epoch.
    #[arg(long, default_value_t = 50)]
    pub rcekd_l: usize,
    /// RCE-KD: temperature T of the draw weights.
    #[arg(long, default_value_t = 10.0, value_parser = positive("--rcekd-temperature"))]
    pub rcekd_temperature: f64,
    /// RCE-KD: length N of the student's list the L items come from.
    #[arg(long, default_value_t = 200)]
    pub rcekd_top_n: usize,
    /// RCE-KD: overlap sharpness beta.
    #[arg(long, default_value_t = 3.0, value_parser = non_negative("--rcekd-beta"))]
    pub rcekd_beta: f64,
    /// RCE-KD: softmax temperature tau.
    #[arg(long, default_value_t = 1.0, value_parser = positive("--rcekd-tau"))]
    pub rcekd_tau: f64,
    /// RCE-KD: weight of its loss against L_R.
    #[arg(long, default_value_t = 500.0, value_parser = positive("--rcekd-lambda"))]
    pub rcekd_lambda: f64,
}

/// What `search` trains (`crate::search::SearchMethod`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SearchMethodArg {
    /// The model alone: one run, which chooses the number of epochs.
    Alone,
    /// Ranking Distillation: RD settings and the number of epochs.
    Rd,
}

/// Flags of `search`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Prepared dataset folder with a validation split (`prepare --valid-fraction F`); with
    /// `--method rd` the teachers must serve it, i.e. be trained on its training part only.
    #[arg(long, env = "RD_DATA", default_value = "runs/data")]
    pub data: PathBuf,
    /// Output folder: trials/NNN.json (reused when the search runs again) and choice.json.
    #[arg(long, env = "RD_OUT", default_value = "runs/search")]
    pub out: PathBuf,
    /// alone (choose the epochs of the model alone) or rd (choose RD settings and epochs).
    #[arg(long, env = "RD_SEARCH_METHOD", value_enum, default_value_t = SearchMethodArg::Rd)]
    pub method: SearchMethodArg,
    /// The most trials (training runs of --epochs each): trial 0 has the RD flags as given
    /// (the reference defaults), the others are seeded draws from the grid below.
    #[arg(long, env = "RD_SEARCH_BUDGET", default_value_t = 8)]
    pub budget: usize,
    /// Values of lambda to draw from.
    #[arg(long, value_delimiter = ',', default_values_t = [0.5, 1.0, 2.0, 5.0], value_parser = positive("--lambdas"))]
    pub lambdas: Vec<f64>,
    /// Values of mu to draw from.
    #[arg(long, value_delimiter = ',', default_values_t = [0.01, 0.1, 0.5], value_parser = non_negative("--mus"))]
    pub mus: Vec<f64>,
    /// Values of a' (or a) to draw from.
    #[arg(long, value_delimiter = ',', default_values_t = [0.3, 1.0, 3.0], value_parser = non_negative("--alphas"))]
    pub alphas: Vec<f64>,
    /// Dynamic start epochs to draw from.
    #[arg(long, value_delimiter = ',', default_values_t = [5usize, 10, 15])]
    pub dynamic_starts: Vec<usize>,
    /// Renormalisation settings to draw from.
    #[arg(long, value_delimiter = ',', default_values_t = [false, true], action = clap::ArgAction::Set)]
    pub renormalise_options: Vec<bool>,
    /// Teachers, cache and shards (for --method rd).
    #[command(flatten)]
    pub source: TeacherArgs,
    /// With --shard-count N > 1: seconds to wait for all shards.
    #[arg(long, env = "RD_SHARD_WAIT_S", default_value_t = 0)]
    pub shard_wait_s: u64,
    /// Model shape.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Optimisation: --epochs is the most epochs a trial runs; evaluation is always on the
    /// validation split after every epoch.
    #[command(flatten)]
    pub optim: OptimArgs,
    /// Ranking Distillation: trial 0's settings, and the fixed ones of every trial.
    #[command(flatten)]
    pub rd: RdArgs,
}

/// Flags of `pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// Prepared dataset folder (the teachers must serve the same fingerprint).
    #[arg(long, env = "RD_DATA", default_value = "runs/data")]
    pub data: PathBuf,
    /// Teachers, cache and shards.
    #[command(flatten)]
    pub source: TeacherArgs,
    /// The shard to pull, 0..--shard-count (queries with index % N == I). Default: the
    /// JOB_COMPLETION_INDEX that Kubernetes sets in Indexed Job pods, else 0 when N = 1.
    #[arg(long, env = "RD_SHARD_INDEX")]
    pub shard_index: Option<u32>,
    /// Training windows (as the student will use them).
    #[command(flatten)]
    pub window: WindowArgs,
    /// The student the rankings are for: its kind decides the training queries (SASRec's
    /// positions, the others' windows) and the default --seq-len, as `distill --model` does.
    #[arg(long, env = "RD_STUDENT_MODEL", default_value = "caser")]
    pub student_model: ModelKind,
    /// The teacher rankings.
    #[command(flatten)]
    pub rankings: RankingArgs,
    /// The method the lists are for (their length and exclusion follow its flags).
    #[command(flatten)]
    pub methods: MethodArgs,
}

/// Flags of `report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A group of runs: NAME=DIR[,DIR...] (repeat the flag; the first is the baseline). Runs
    /// are artifact folders of `train` or `distill`. NAME ends at the last `=`. A sweep point
    /// is NAME = `SERIES @ AXIS=VALUE` (VALUE a number), e.g. "student @ d=5=DIR,DIR": when
    /// NAME contains ` @ `, SERIES is the text before the first ` @ `, AXIS runs to the next
    /// `=`, VALUE to the `=` after it, and the rest is the directory list; the report then
    /// adds a section "Sweep over AXIS" (MAP against VALUE, one line per SERIES).
    #[arg(long, env = "RD_REPORT_GROUPS", value_delimiter = ';')]
    pub group: Vec<Group>,
    /// A load-generator result: NAME=FILE, the JSON of `rd-loadgen --out FILE` (repeat).
    #[arg(long, env = "RD_REPORT_LATENCY", value_delimiter = ';')]
    pub latency: Vec<LatencyInput>,
    /// Write the report folder here: report.md, the charts (PNG) and summary.json (replaced
    /// atomically). Without it the table is only printed.
    #[arg(long, env = "RD_REPORT_OUT")]
    pub out: Option<PathBuf>,
    /// Also write report.html (the same content; it shows the PNGs of the folder).
    #[arg(long, env = "RD_REPORT_HTML")]
    pub html: bool,
    /// Title of the report.
    #[arg(long, env = "RD_REPORT_TITLE", default_value = "rankdistill report")]
    pub title: String,
}

/// Flags of `fidelity`.
#[derive(Debug, Args)]
pub struct FidelityArgs {
    /// Prepared dataset folder (its users are asked).
    #[arg(long, env = "RD_DATA", default_value = "runs/data")]
    pub data: PathBuf,
    /// student-svc endpoint (host:port or http://host:port).
    #[arg(long, env = "RD_STUDENT")]
    pub student: String,
    /// teacher-svc endpoint (host:port or http://host:port).
    #[arg(long, env = "RD_TEACHER")]
    pub teacher: String,
    /// Users to sample with --seed (default: every user, in users.txt order).
    #[arg(long, env = "RD_FIDELITY_USERS", value_parser = clap::value_parser!(u64).range(1..))]
    pub users: Option<u64>,
    /// Seed of the user sample.
    #[arg(long, env = "RD_SEED", default_value_t = 0)]
    pub seed: u64,
    /// Cut-off of the figures (the student's live figures are at 10).
    #[arg(long, env = "RD_FIDELITY_K", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub k: u64,
    /// Seconds to wait for the student's shadow path to measure the queries sent.
    #[arg(long, env = "RD_LIVE_WAIT_S", default_value_t = 30)]
    pub live_wait_s: u64,
}

/// Flags of `refresh`.
#[derive(Debug, Args)]
pub struct RefreshArgs {
    /// Prepared dataset folder (the teachers must serve the same fingerprint).
    #[arg(long, env = "RD_DATA", default_value = "runs/data")]
    pub data: PathBuf,
    /// The folder student-svc serves (`--model`): a candidate that passes the gates replaces
    /// it atomically; the last --keep publications are kept in DIR.versions/VERSION/.
    #[arg(long, env = "RD_PUBLISH")]
    pub publish: PathBuf,
    /// State folder: the candidate student (candidate/) and the last decision (report.json).
    #[arg(long, env = "RD_REFRESH_STATE", default_value = "runs/refresh")]
    pub state_dir: PathBuf,
    /// Teachers and the rankings cache (refresh pulls in --pull-shards files; --shard-count
    /// must stay 1).
    #[command(flatten)]
    pub source: TeacherArgs,
    /// The pull is written as this many shard files, one after another: after a crash, the
    /// next refresh pulls only the shards not yet written for this teacher.
    #[arg(long, env = "RD_PULL_SHARDS", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub pull_shards: u32,
    /// Student shape (as `distill`).
    #[command(flatten)]
    pub model: ModelArgs,
    /// Optimisation (as `distill`); --seed also draws the fidelity sample.
    #[command(flatten)]
    pub optim: OptimArgs,
    /// Ranking Distillation (as `distill`).
    #[command(flatten)]
    pub rd: RdArgs,
    /// Gate: publish only when the candidate's MAP >= the current student's MAP minus this
    /// (on --eval-split). A negative value asks for an improvement.
    #[arg(long, env = "RD_MAX_MAP_DROP", default_value_t = 0.005, allow_negative_numbers = true,
          value_parser = signed_unit("--max-map-drop"))]
    pub max_map_drop: f64,
    /// Gate: publish only when the candidate's mean overlap@10 with the teacher's cached top
    /// 10 (over --fidelity-users sampled users) is at least this.
    #[arg(long, env = "RD_MIN_OVERLAP", default_value_t = 0.0, value_parser = unit_interval("--min-overlap"))]
    pub min_overlap: f64,
    /// Users sampled (with --seed) for the fidelity figures.
    #[arg(long, env = "RD_FIDELITY_USERS", default_value_t = 500,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub fidelity_users: u64,
    /// Publish the candidate without the gates (the figures are still computed and reported).
    #[arg(long, env = "RD_FORCE")]
    pub force: bool,
    /// Publications kept in DIR.versions for --rollback-to (the served one included).
    #[arg(long, env = "RD_KEEP", default_value_t = 3,
          value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub keep: u64,
    /// Publish a kept version again (its version, or a unique prefix) and exit; needs no
    /// teacher.
    #[arg(long, env = "RD_ROLLBACK_TO", value_name = "VERSION",
          conflicts_with_all = ["interval_secs", "force"])]
    pub rollback_to: Option<String>,
    /// Run a cycle every this many seconds instead of once (a long-running process); a
    /// failed cycle is reported and the next one runs.
    #[arg(long, env = "RD_INTERVAL_SECS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub interval_secs: Option<u64>,
    /// With --interval-secs: stop after this many cycles (0: never).
    #[arg(
        long,
        env = "RD_MAX_CYCLES",
        default_value_t = 0,
        requires = "interval_secs"
    )]
    pub max_cycles: u64,
}
