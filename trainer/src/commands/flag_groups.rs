//! Conversions of the flag groups that several subcommands share: windows, model shape,
//! optimisation, device, teachers and their TLS, Ranking Distillation.

use rankdistill_core::instances::WindowConfig;
use rankdistill_models::DeviceError;
use rankdistill_models::ModelKind;
use rankdistill_serving::tls::ClientTlsFiles;

use crate::cli::{
    BceFormArg, LossFormArg, MethodArg, MethodArgs, ModelArgs, OptimArgs, RdArgs, TeacherArgs,
    TeacherTlsArgs, WeightingArg, WindowArgs,
};
use crate::methods::{CdConfig, DcdConfig, Method, MethodConfig, RceKdConfig, RrdConfig};
use crate::rd_loss::{LossForm, RdConfig, Weighting};
use crate::teachers::TeacherSource;
use crate::tls::TlsSettings;
use crate::train::config::{ModelSettings, OptimConfig, TrainingSettings};
use crate::train::loss::BceForm;

/// The reference code's optimisation and window defaults of a model kind: Caser's
/// (graytowne/rank_distill) for Caser and MF, SASRec's (kang205/SASRec `main.py`) for SASRec.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReferenceDefaults {
    /// Input length L.
    pub sequence_length: usize,
    /// Epochs.
    pub epochs: usize,
    /// Minibatch size (instances; users for SASRec).
    pub batch_size: usize,
    /// Adam weight decay.
    pub l2: f64,
    /// Negatives per instance (per position for SASRec).
    pub negatives: usize,
}

impl ReferenceDefaults {
    /// The defaults of `kind`.
    pub fn of(kind: ModelKind) -> ReferenceDefaults {
        match kind {
            ModelKind::Caser | ModelKind::Mf => ReferenceDefaults {
                sequence_length: 5,
                epochs: 50,
                batch_size: 512,
                l2: 1e-6,
                negatives: 3,
            },
            ModelKind::SasRec => ReferenceDefaults {
                sequence_length: 50,
                epochs: 201,
                batch_size: 128,
                l2: 0.0,
                negatives: 1,
            },
        }
    }
}

impl WindowArgs {
    /// The windows, L defaulting to `kind`'s reference value.
    pub fn resolve(&self, kind: ModelKind) -> WindowConfig {
        WindowConfig {
            sequence_length: self
                .sequence_length
                .unwrap_or(ReferenceDefaults::of(kind).sequence_length),
            target_length: self.target_length,
            query_set: kind.query_set(),
        }
    }
}

impl From<&ModelArgs> for ModelSettings {
    fn from(args: &ModelArgs) -> Self {
        ModelSettings {
            kind: args.kind,
            dim: args.dim,
            window: args.window.resolve(args.kind),
            nv: args.nv,
            nh: args.nh,
            dropout: args.dropout,
            conv_activation: args.conv_activation,
            fc_activation: args.fc_activation,
            num_blocks: args.num_blocks,
            num_heads: args.num_heads,
        }
    }
}

impl OptimArgs {
    /// The optimisation settings, unset flags taking `kind`'s reference defaults.
    pub fn resolve(&self, kind: ModelKind) -> OptimConfig {
        let defaults = ReferenceDefaults::of(kind);
        let args = self;
        OptimConfig {
            epochs: args.epochs.unwrap_or(defaults.epochs),
            batch_size: args.batch_size.unwrap_or(defaults.batch_size),
            learning_rate: args.learning_rate,
            l2: args.l2.unwrap_or(defaults.l2),
            negatives: args.negatives.unwrap_or(defaults.negatives),
            bce: args.bce.into(),
            seed: args.seed,
            eval_every: args.eval_every,
        }
    }
}

/// The settings of a training run (`train`, `distill`) from its model and optimisation flags.
pub fn training_settings(
    model: &ModelArgs,
    optim: &OptimArgs,
) -> Result<TrainingSettings, DeviceError> {
    Ok(TrainingSettings {
        model: ModelSettings::from(model),
        optim: optim.resolve(model.kind),
        eval_split: optim.eval_split.clone(),
        device: optim.device.resolve()?,
    })
}

impl From<&TeacherTlsArgs> for TlsSettings {
    fn from(args: &TeacherTlsArgs) -> Self {
        TlsSettings {
            files: ClientTlsFiles {
                ca: args.tls_ca.clone(),
                cert: args.tls_cert.clone(),
                key: args.tls_key.clone(),
                domain: args.tls_domain.clone(),
            },
            max_message_bytes: args.max_message_bytes,
        }
    }
}

impl From<&TeacherArgs> for TeacherSource {
    fn from(args: &TeacherArgs) -> Self {
        TeacherSource {
            teacher: args.teacher.clone(),
            cache_dir: args.cache_dir.clone(),
            streams_per_teacher: args.streams_per_teacher,
            stream_batch: args.stream_batch,
            max_retries: args.max_retries,
            pull_rate: args.pull_rate,
            shard_count: args.shard_count,
            tls: TlsSettings::from(args.tls.as_ref()),
        }
    }
}

impl From<WeightingArg> for Weighting {
    fn from(arg: WeightingArg) -> Self {
        match arg {
            WeightingArg::Position => Weighting::Position,
            WeightingArg::Discrepancy => Weighting::Discrepancy,
            WeightingArg::Hybrid => Weighting::Hybrid,
        }
    }
}

impl From<BceFormArg> for BceForm {
    fn from(arg: BceFormArg) -> Self {
        match arg {
            BceFormArg::Sum => BceForm::Sum,
            BceFormArg::Mean => BceForm::Mean,
        }
    }
}

impl From<LossFormArg> for LossForm {
    fn from(arg: LossFormArg) -> Self {
        match arg {
            LossFormArg::Reference => LossForm::Reference,
            LossFormArg::Convex => LossForm::Convex,
        }
    }
}

impl From<&RdArgs> for RdConfig {
    fn from(args: &RdArgs) -> Self {
        RdConfig {
            k: args.rankings.k,
            lambda: args.lambda,
            mu: args.mu,
            samples: args.samples,
            alpha: args.alpha,
            loss_form: args.loss_form.into(),
            weighting: args.weighting.into(),
            renormalise: args.renormalise,
            dynamic_start_epoch: args.dynamic_start_epoch,
            exclude_seen: args.rankings.exclude_seen.unwrap_or(false),
        }
    }
}

impl From<MethodArg> for Method {
    fn from(arg: MethodArg) -> Self {
        match arg {
            MethodArg::Rd => Method::Rd,
            MethodArg::Cd => Method::Cd,
            MethodArg::Rrd => Method::Rrd,
            MethodArg::Dcd => Method::Dcd,
            MethodArg::Rcekd => Method::Rcekd,
        }
    }
}

/// The chosen method's settings, and `rd_config` with the teacher lists' exclusion resolved
/// for that method (`exclude_seen`, the flag, else the method's reference default).
pub fn method_config(
    mut rd_config: RdConfig,
    exclude_seen: Option<bool>,
    args: &MethodArgs,
) -> (MethodConfig, RdConfig) {
    let method = Method::from(args.method);
    rd_config.exclude_seen = exclude_seen.unwrap_or(MethodConfig::default_exclude_seen(method));
    let config = match method {
        Method::Rd => MethodConfig::Rd(rd_config.clone()),
        Method::Cd => MethodConfig::Cd(CdConfig {
            top_n: args.cd_top_n,
            samples: args.cd_samples,
            temperature: args.cd_temperature,
            t1: args.cd_t1,
            t2: args.cd_t2,
            lambda: args.cd_lambda,
        }),
        Method::Rrd => MethodConfig::Rrd(RrdConfig {
            k: args.rrd_k,
            l: args.rrd_l,
            temperature: args.rrd_temperature,
            top_n: args.rrd_top_n,
            lambda: args.rrd_lambda,
        }),
        Method::Dcd => MethodConfig::Dcd(DcdConfig {
            k: args.dcd_k,
            temperature: args.dcd_temperature,
            top_n: args.dcd_top_n,
            lambda: args.dcd_lambda,
        }),
        Method::Rcekd => MethodConfig::Rcekd(RceKdConfig {
            k: args.rcekd_k,
            l: args.rcekd_l,
            temperature: args.rcekd_temperature,
            top_n: args.rcekd_top_n,
            beta: args.rcekd_beta,
            tau: args.rcekd_tau,
            lambda: args.rcekd_lambda,
        }),
    };
    (config, rd_config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::TeacherTransport;

    fn tls_args(extra: &[&str]) -> Result<TeacherTlsArgs, clap::Error> {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            tls: TeacherTlsArgs,
        }
        let mut argv = vec!["t"];
        argv.extend(extra);
        <Cli as clap::Parser>::try_parse_from(argv).map(|c| c.tls)
    }

    fn transport(args: &TeacherTlsArgs) -> anyhow::Result<TeacherTransport> {
        TeacherTransport::new(&TlsSettings::from(args))
    }

    #[test]
    fn flags_and_their_errors() {
        let a = tls_args(&[]).unwrap();
        assert_eq!(a.max_message_bytes, 4 << 20);
        assert!(!transport(&a).unwrap().is_tls());
        assert!(tls_args(&["--tls-cert", "c.pem"]).is_err());
        assert!(tls_args(&["--max-message-bytes", "0"]).is_err());
        // A client identity without a CA: the CA is what is missing.
        let a = tls_args(&["--tls-cert", "c.pem", "--tls-key", "k.pem"]).unwrap();
        let e = transport(&a).unwrap_err();
        assert!(format!("{e:#}").contains("--tls-ca"), "{e:#}");
        let a = tls_args(&["--tls-ca", "/nonexistent/ca.pem"]).unwrap();
        let e = transport(&a).unwrap_err();
        assert!(
            format!("{e:#}").contains("--tls-ca /nonexistent/ca.pem: cannot read the file"),
            "{e:#}"
        );
    }

    #[test]
    fn rd_flags_name_the_same_choices() {
        use clap::ValueEnum;
        for (arg, domain) in [
            (WeightingArg::Position, Weighting::Position),
            (WeightingArg::Discrepancy, Weighting::Discrepancy),
            (WeightingArg::Hybrid, Weighting::Hybrid),
        ] {
            assert_eq!(Weighting::from(arg), domain);
            // The serialised name of the domain value is the flag's value.
            let flag = arg.to_possible_value().unwrap();
            assert_eq!(serde_json::to_value(domain).unwrap(), flag.get_name());
        }
        for (arg, domain) in [
            (LossFormArg::Reference, LossForm::Reference),
            (LossFormArg::Convex, LossForm::Convex),
        ] {
            assert_eq!(LossForm::from(arg), domain);
            let flag = arg.to_possible_value().unwrap();
            assert_eq!(serde_json::to_value(domain).unwrap(), flag.get_name());
        }
    }
}
