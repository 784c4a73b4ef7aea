//! The methods and their settings. Every default is the reference's: woriazzc/KDs'
//! configuration for a BPR student on CiteULike (`configs/citeulike/bpr/{cd,rrd,dcd,mkd}.yaml`),
//! where the methods' own papers give no other; deviations are named in each field's doc.

use serde::{Deserialize, Serialize};

use crate::rd_loss::RdConfig;

/// Which distillation method `trainer distill` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Ranking Distillation (Tang & Wang 2018), the default.
    Rd,
    /// Collaborative Distillation (Lee et al. 2019).
    Cd,
    /// Relaxed Ranking Distillation (DE-RRD, Kang et al. 2020).
    Rrd,
    /// Dual Correction Distillation (Lee & Kim 2021).
    Dcd,
    /// RCE-KD (2025, arXiv 2509.20989).
    Rcekd,
}

impl Method {
    /// The flag value naming the method.
    pub fn name(self) -> &'static str {
        match self {
            Method::Rd => "rd",
            Method::Cd => "cd",
            Method::Rrd => "rrd",
            Method::Dcd => "dcd",
            Method::Rcekd => "rcekd",
        }
    }
}

/// CD: soft labels sigma((s_T + t2) / t1) on items drawn from the teacher's top-N.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CdConfig {
    /// Length N of the teacher lists the items are drawn from. KDs uses 3000 on CiteULike
    /// (16,980 items); our streams carry at most 1000 (teacher-svc --max-k), the default here.
    pub top_n: usize,
    /// Distinct items drawn per query (KDs `cd_n_distill`).
    pub samples: usize,
    /// Temperature T of the rank weights exp(-r / (N T)) that the draws follow.
    pub temperature: f64,
    /// Soft-label temperature t1.
    pub t1: f64,
    /// Soft-label shift t2.
    pub t2: f64,
    /// Weight of the CD loss against L_R (KDs `lmbda`).
    pub lambda: f64,
}

impl Default for CdConfig {
    fn default() -> Self {
        CdConfig {
            top_n: 1000,
            samples: 2,
            temperature: 20.0,
            t1: 2.0,
            t2: 0.0,
            lambda: 0.5,
        }
    }
}

/// RRD: a Plackett-Luce loss over K items drawn from the teacher's top-N, with L uniformly
/// drawn uninteresting items in every denominator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RrdConfig {
    /// Interesting items K drawn per query each epoch.
    pub k: usize,
    /// Uninteresting items L drawn per query each epoch.
    pub l: usize,
    /// Temperature T of the draw weights exp(-rank / T).
    pub temperature: f64,
    /// Length N (KDs `mxK`) of the teacher lists the interesting items come from.
    pub top_n: usize,
    /// Weight of the RRD loss against L_R.
    pub lambda: f64,
}

impl Default for RrdConfig {
    fn default() -> Self {
        RrdConfig {
            k: 100,
            l: 200,
            temperature: 10.0,
            top_n: 500,
            lambda: 0.1,
        }
    }
}

/// DCD: RRD's loss on the teacher items the student under-ranks, against those it over-ranks,
/// both drawn by the rank discrepancy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DcdConfig {
    /// Items drawn per direction per query each epoch.
    pub k: usize,
    /// Temperature T of the discrepancy weights tanh(max((r_S - r_T) / T, 0)).
    pub temperature: f64,
    /// Length N (KDs `mxK`) of the teacher lists.
    pub top_n: usize,
    /// Weight of the DCD loss against L_R.
    pub lambda: f64,
}

impl Default for DcdConfig {
    fn default() -> Self {
        DcdConfig {
            k: 100,
            temperature: 10.0,
            top_n: 500,
            lambda: 0.01,
        }
    }
}

/// RCE-KD: cross-entropy against the teacher's softmax on the student's own top-K, mixed with
/// cross-entropy over the teacher's top-K and items drawn from the student's top-N, the mix set
/// by their overlap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RceKdConfig {
    /// Length K of the teacher's list and of the student's own top-K.
    pub k: usize,
    /// Items L drawn from the student's top-N each epoch.
    pub l: usize,
    /// Temperature T of the draw weights.
    pub temperature: f64,
    /// Length N (KDs `mxK`) of the student's list the L items come from.
    pub top_n: usize,
    /// Overlap sharpness beta: the teacher-list term weighs exp(-beta * overlap).
    pub beta: f64,
    /// Softmax temperature tau of both models' logits.
    pub tau: f64,
    /// Weight of the RCE-KD loss against L_R.
    pub lambda: f64,
}

impl Default for RceKdConfig {
    fn default() -> Self {
        RceKdConfig {
            k: 50,
            l: 50,
            temperature: 10.0,
            top_n: 200,
            beta: 3.0,
            tau: 1.0,
            lambda: 500.0,
        }
    }
}

/// A method and its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "lowercase")]
pub enum MethodConfig {
    /// Ranking Distillation.
    Rd(RdConfig),
    /// Collaborative Distillation.
    Cd(CdConfig),
    /// Relaxed Ranking Distillation.
    Rrd(RrdConfig),
    /// Dual Correction Distillation.
    Dcd(DcdConfig),
    /// RCE-KD.
    Rcekd(RceKdConfig),
}

fn positive(name: &str, value: f64) -> Result<(), String> {
    if value > 0.0 && value.is_finite() {
        Ok(())
    } else {
        Err(format!("{name} must be positive, not {value}"))
    }
}

fn at_least_one(name: &str, value: usize) -> Result<(), String> {
    if value >= 1 {
        Ok(())
    } else {
        Err(format!("{name} must be at least 1"))
    }
}

fn within(name: &str, value: usize, list: &str, top_n: usize) -> Result<(), String> {
    if value <= top_n {
        Ok(())
    } else {
        Err(format!(
            "{name} ({value}) cannot be above {list} ({top_n}): the items are drawn without replacement from that list"
        ))
    }
}

impl MethodConfig {
    /// Which method.
    pub fn method(&self) -> Method {
        match self {
            MethodConfig::Rd(_) => Method::Rd,
            MethodConfig::Cd(_) => Method::Cd,
            MethodConfig::Rrd(_) => Method::Rrd,
            MethodConfig::Dcd(_) => Method::Dcd,
            MethodConfig::Rcekd(_) => Method::Rcekd,
        }
    }

    /// Length of the teacher lists the method needs from the stream.
    pub fn list_length(&self) -> usize {
        match self {
            MethodConfig::Rd(c) => c.k,
            MethodConfig::Cd(c) => c.top_n,
            MethodConfig::Rrd(c) => c.top_n,
            MethodConfig::Dcd(c) => c.top_n,
            MethodConfig::Rcekd(c) => c.k,
        }
    }

    /// Whether the teacher's lists exclude each query's other training items by default: KDs
    /// masks the training interactions out of the teacher's top lists for CD, RRD and DCD, not
    /// for RCE-KD; graytowne/rank_distill does not for RD.
    pub fn default_exclude_seen(method: Method) -> bool {
        matches!(method, Method::Cd | Method::Rrd | Method::Dcd)
    }

    /// Checks the settings against each other and against a catalog of `num_items` items.
    pub fn validate(&self, num_items: usize) -> Result<(), String> {
        let list = self.list_length();
        if list > num_items {
            let flag = match self {
                MethodConfig::Rd(_) => "--rd-k",
                MethodConfig::Cd(_) => "--cd-top-n",
                MethodConfig::Rrd(_) => "--rrd-top-n",
                MethodConfig::Dcd(_) => "--dcd-top-n",
                MethodConfig::Rcekd(_) => "--rcekd-k",
            };
            return Err(format!(
                "the method needs teacher lists of {list} items, but the catalog has only {num_items}: lower {flag}"
            ));
        }
        match self {
            MethodConfig::Rd(c) => c.validate(),
            MethodConfig::Cd(c) => {
                at_least_one("--cd-top-n", c.top_n)?;
                at_least_one("--cd-samples", c.samples)?;
                within("--cd-samples", c.samples, "--cd-top-n", c.top_n)?;
                positive("--cd-temperature", c.temperature)?;
                positive("--cd-t1", c.t1)?;
                if !c.t2.is_finite() {
                    return Err("--cd-t2 must be finite".into());
                }
                positive("--cd-lambda", c.lambda)
            }
            MethodConfig::Rrd(c) => {
                at_least_one("--rrd-k", c.k)?;
                at_least_one("--rrd-l", c.l)?;
                within("--rrd-k", c.k, "--rrd-top-n", c.top_n)?;
                positive("--rrd-temperature", c.temperature)?;
                positive("--rrd-lambda", c.lambda)
            }
            MethodConfig::Dcd(c) => {
                at_least_one("--dcd-k", c.k)?;
                within("--dcd-k", c.k, "--dcd-top-n", c.top_n)?;
                positive("--dcd-temperature", c.temperature)?;
                positive("--dcd-lambda", c.lambda)
            }
            MethodConfig::Rcekd(c) => {
                at_least_one("--rcekd-k", c.k)?;
                at_least_one("--rcekd-l", c.l)?;
                within("--rcekd-k", c.k, "--rcekd-top-n", c.top_n)?;
                within("--rcekd-l", c.l, "--rcekd-top-n", c.top_n)?;
                if c.top_n > num_items {
                    return Err(format!(
                        "--rcekd-top-n ({}) is above the catalog's {num_items} items",
                        c.top_n
                    ));
                }
                positive("--rcekd-temperature", c.temperature)?;
                positive("--rcekd-tau", c.tau)?;
                if !(c.beta >= 0.0 && c.beta.is_finite()) {
                    return Err("--rcekd-beta must be non-negative".into());
                }
                positive("--rcekd-lambda", c.lambda)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_reference_configs() {
        let cd = CdConfig::default();
        assert_eq!(
            (cd.samples, cd.temperature, cd.t1, cd.t2, cd.lambda),
            (2, 20.0, 2.0, 0.0, 0.5)
        );
        let rrd = RrdConfig::default();
        assert_eq!(
            (rrd.k, rrd.l, rrd.temperature, rrd.top_n, rrd.lambda),
            (100, 200, 10.0, 500, 0.1)
        );
        let dcd = DcdConfig::default();
        assert_eq!(
            (dcd.k, dcd.temperature, dcd.top_n, dcd.lambda),
            (100, 10.0, 500, 0.01)
        );
        let rce = RceKdConfig::default();
        assert_eq!(
            (
                rce.k,
                rce.l,
                rce.temperature,
                rce.top_n,
                rce.beta,
                rce.tau,
                rce.lambda
            ),
            (50, 50, 10.0, 200, 3.0, 1.0, 500.0)
        );
        assert!(MethodConfig::default_exclude_seen(Method::Rrd));
        assert!(!MethodConfig::default_exclude_seen(Method::Rcekd));
        assert!(!MethodConfig::default_exclude_seen(Method::Rd));
    }

    #[test]
    fn bad_settings_say_which_flag() {
        let rrd = MethodConfig::Rrd(RrdConfig {
            k: 600,
            ..RrdConfig::default()
        });
        assert!(rrd.validate(1682).unwrap_err().contains("--rrd-k"));
        let big = MethodConfig::Dcd(DcdConfig::default());
        assert!(big.validate(300).unwrap_err().contains("catalog"));
        assert!(MethodConfig::Cd(CdConfig::default()).validate(1682).is_ok());
        let rce = MethodConfig::Rcekd(RceKdConfig {
            tau: 0.0,
            ..RceKdConfig::default()
        });
        assert!(rce.validate(1682).unwrap_err().contains("--rcekd-tau"));
    }
}
