//! LibTorch's intra-op thread count, chosen once per process (`--torch-threads`) and, for
//! `auto`, adapted while the work runs: as many threads as the CPUs that the process may use
//! (cgroup quota and affinity, as `available_parallelism` reads them) and that other runnable
//! work leaves free, at least one. OpenMP threads that wait at a barrier for a sibling the
//! kernel has descheduled in favour of a busy neighbour cost up to 10x (notes, 2026-11-30);
//! one thread per free CPU avoids that without giving up the idle machine's speed.
//!
//! The count applies per thread (OpenMP's and MKL's settings are the calling thread's): the
//! thread that runs the model calls [`adapt`] between pieces of work (a training batch, a
//! forward pass), which samples the load at most every [`SAMPLE_INTERVAL`].

use std::cell::RefCell;
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::cpu_load::others_runnable;

/// How often [`adapt`] samples the machine's load, at most.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(25);

/// Weight of a new sample in the running estimate of the other work's CPUs.
const SMOOTHING: f64 = 0.3;

/// LibTorch's intra-op threads, as a command line chooses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TorchThreads {
    /// One per CPU the process may use that other work leaves free (at least one), adapted
    /// as the load changes.
    Auto,
    /// LibTorch's own default, never changed (one per core, whatever else runs).
    LibTorch,
    /// A fixed count.
    Fixed(usize),
}

/// A `--torch-threads` value that is not `auto` or a whole number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid thread count '{0}': expected auto, 0 (LibTorch's default) or a number of threads")]
pub struct TorchThreadsError(String);

impl FromStr for TorchThreads {
    type Err = TorchThreadsError;

    /// Parses `auto`, `0` (LibTorch's default) or a positive count.
    fn from_str(value: &str) -> Result<TorchThreads, TorchThreadsError> {
        match value {
            "auto" => Ok(TorchThreads::Auto),
            _ => match value.parse::<usize>() {
                Ok(0) => Ok(TorchThreads::LibTorch),
                Ok(n) if n <= 4096 => Ok(TorchThreads::Fixed(n)),
                _ => Err(TorchThreadsError(value.to_string())),
            },
        }
    }
}

impl fmt::Display for TorchThreads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TorchThreads::Auto => f.write_str("auto"),
            TorchThreads::LibTorch => f.write_str("0"),
            TorchThreads::Fixed(n) => write!(f, "{n}"),
        }
    }
}

/// The CPUs this process may use: cgroup quota and affinity as the standard library reads
/// them (1 when it cannot tell).
pub fn cpu_limit() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Threads for `limit` CPUs when other work keeps `others` of them busy: the free ones,
/// rounded, at least 1 and at most `limit`.
pub fn threads_for(limit: usize, others: f64) -> usize {
    let free = (limit as f64 - others.max(0.0)).round();
    (free.max(1.0) as usize).clamp(1, limit.max(1))
}

static CHOICE: OnceLock<TorchThreads> = OnceLock::new();

/// Sets the process's choice, which threads that call [`adapt`] without [`use_on_this_thread`]
/// follow (first call wins; later calls are ignored), and applies it to the calling thread.
pub fn configure(choice: TorchThreads) {
    let _ = CHOICE.set(choice);
    adapt();
}

/// Gives the calling thread its own choice (a server's model thread) and applies it.
pub fn use_on_this_thread(choice: TorchThreads) {
    GOVERNOR.with(|cell| *cell.borrow_mut() = Some(Governor::new(choice)));
    adapt();
}

/// The process's choice: [`configure`]'s, else `auto`.
pub fn choice() -> TorchThreads {
    CHOICE.get().copied().unwrap_or(TorchThreads::Auto)
}

/// One thread's adaptive count.
struct Governor {
    choice: TorchThreads,
    limit: usize,
    others: Option<f64>,
    sampled_at: Option<Instant>,
    applied: Option<usize>,
}

impl Governor {
    fn new(choice: TorchThreads) -> Governor {
        Governor {
            choice,
            limit: cpu_limit(),
            others: None,
            sampled_at: None,
            applied: None,
        }
    }

    /// The count this thread should run with now, or `None` to leave LibTorch's.
    fn wanted(&mut self, now: Instant) -> Option<usize> {
        match self.choice {
            TorchThreads::LibTorch => None,
            TorchThreads::Fixed(n) => Some(n),
            TorchThreads::Auto => {
                let due = self
                    .sampled_at
                    .is_none_or(|at| now.duration_since(at) >= SAMPLE_INTERVAL);
                if due {
                    self.sampled_at = Some(now);
                    if let Some(sample) = others_runnable() {
                        self.others = Some(match self.others {
                            Some(old) => old + SMOOTHING * (sample - old),
                            None => sample,
                        });
                    }
                }
                Some(threads_for(self.limit, self.others.unwrap_or(0.0)))
            }
        }
    }
}

thread_local! {
    static GOVERNOR: RefCell<Option<Governor>> = const { RefCell::new(None) };
}

/// Applies the process's choice to the calling thread: for `auto`, samples the load when
/// [`SAMPLE_INTERVAL`] has passed and changes LibTorch's count when the free CPUs changed.
/// Cheap enough to call before every batch.
pub fn adapt() {
    GOVERNOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        let governor = cell.get_or_insert_with(|| Governor::new(choice()));
        if let Some(n) = governor.wanted(Instant::now())
            && governor.applied != Some(n)
        {
            tch::set_num_threads(n as i32);
            governor.applied = Some(n);
        }
    });
}

/// The count LibTorch runs the calling thread's work with.
pub fn current() -> usize {
    tch::get_num_threads().max(1) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_and_print_back() {
        for (text, value) in [
            ("auto", TorchThreads::Auto),
            ("0", TorchThreads::LibTorch),
            ("3", TorchThreads::Fixed(3)),
        ] {
            assert_eq!(text.parse::<TorchThreads>(), Ok(value));
            assert_eq!(value.to_string(), text);
        }
        for bad in ["", "-1", "two", "Auto", "1.5", "100000"] {
            let err = bad.parse::<TorchThreads>().unwrap_err();
            assert!(err.to_string().contains("expected auto"), "{err}");
        }
    }

    #[test]
    fn free_cpus_round_and_stay_within_one_and_the_limit() {
        assert_eq!(threads_for(2, 0.0), 2);
        assert_eq!(threads_for(2, 0.4), 2);
        assert_eq!(threads_for(2, 0.6), 1);
        assert_eq!(threads_for(2, 1.0), 1);
        assert_eq!(threads_for(2, 7.0), 1);
        assert_eq!(threads_for(8, 3.0), 5);
        assert_eq!(threads_for(1, -2.0), 1);
        assert_eq!(threads_for(0, 0.0), 1);
    }

    #[test]
    fn fixed_and_libtorch_choices_do_not_sample() {
        let now = Instant::now();
        assert_eq!(Governor::new(TorchThreads::Fixed(3)).wanted(now), Some(3));
        assert_eq!(Governor::new(TorchThreads::LibTorch).wanted(now), None);
        let mut auto = Governor::new(TorchThreads::Auto);
        let n = auto.wanted(now).unwrap();
        assert!((1..=cpu_limit()).contains(&n));
    }

    #[test]
    fn adapt_applies_a_fixed_count_to_the_calling_thread() {
        // A fresh thread: its governor and LibTorch's count are its own.
        std::thread::spawn(|| {
            use_on_this_thread(TorchThreads::Fixed(1));
            assert_eq!(current(), 1);
        })
        .join()
        .unwrap();
    }
}
