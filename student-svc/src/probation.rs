//! The probation of a hot-reloaded version (`--probation-secs`): for a window after the swap
//! the previous version stays in memory, and the new one is judged on its live figures
//! against the previous version's, taken just before the swap. [`judge`] is the decision,
//! a pure function: a breach of any rule rolls back at once; the window passing without one
//! releases the previous version.
//!
//! Rules (each judged only when its figures are there):
//! - overlap drop: with at least `min_queries` shadow queries measured for both versions, the
//!   new mean overlap@10 is below the previous one by more than `max_overlap_drop`;
//! - overlap floor (`min_overlap` > 0): with at least `min_queries` measured, the new mean
//!   overlap@10 is below it;
//! - latency: with at least `min_queries` Recommend answers timed for both versions, the new
//!   p99 is above `max_p99_ratio` times the previous p99.

use std::fmt;
use std::time::Duration;

/// The rollback thresholds (`--probation-min-queries`, `--rollback-*`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Samples needed before a figure is judged.
    pub min_queries: u64,
    /// Largest allowed fall of mean overlap@10 below the previous version's.
    pub max_overlap_drop: f64,
    /// Floor of mean overlap@10 (0 = off).
    pub min_overlap: f64,
    /// Largest allowed ratio of the new p99 to the previous p99.
    pub max_p99_ratio: f64,
}

/// The probation settings: the window and the thresholds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbationSettings {
    /// How long a new version stays on probation.
    pub window: Duration,
    /// When to roll back.
    pub thresholds: Thresholds,
}

/// A version's live figures.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Figures {
    /// Shadow queries measured.
    pub queries: u64,
    /// Their mean overlap@10.
    pub overlap: f64,
    /// Recommend answers timed.
    pub answers: u64,
    /// Their p99 in seconds (None before any).
    pub p99_s: Option<f64>,
}

/// A broken rule, with the figures that broke it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Breach {
    /// Mean overlap@10 fell more than allowed below the previous version's.
    OverlapDrop {
        /// The new version's mean overlap@10.
        new: f64,
        /// The previous version's.
        previous: f64,
        /// `--rollback-max-overlap-drop`.
        max_drop: f64,
    },
    /// Mean overlap@10 is under the floor.
    OverlapFloor {
        /// The new version's mean overlap@10.
        new: f64,
        /// `--rollback-min-overlap`.
        floor: f64,
    },
    /// The Recommend p99 grew more than allowed.
    Latency {
        /// The new version's p99 (seconds).
        new_s: f64,
        /// The previous version's p99 (seconds).
        previous_s: f64,
        /// `--rollback-max-p99-ratio`.
        max_ratio: f64,
    },
}

impl fmt::Display for Breach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Breach::OverlapDrop {
                new,
                previous,
                max_drop,
            } => write!(
                f,
                "mean overlap@10 {new:.4} is {:.4} below the previous version's {previous:.4} (--rollback-max-overlap-drop {max_drop})",
                previous - new
            ),
            Breach::OverlapFloor { new, floor } => write!(
                f,
                "mean overlap@10 {new:.4} is below --rollback-min-overlap {floor}"
            ),
            Breach::Latency {
                new_s,
                previous_s,
                max_ratio,
            } => write!(
                f,
                "Recommend p99 {:.3} ms is {:.2}x the previous version's {:.3} ms (--rollback-max-p99-ratio {max_ratio})",
                new_s * 1e3,
                new_s / previous_s,
                previous_s * 1e3
            ),
        }
    }
}

/// What to do with a version on probation.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Keep watching.
    Watch,
    /// The window passed without a breach: release the previous version.
    Release,
    /// Roll back to the previous version, for these reasons.
    RollBack(Vec<Breach>),
}

/// The decision for a version with figures `new`, the previous version's `previous` (taken
/// before the swap), and whether the window has passed. Breaches are checked first: a
/// breach found at the window's end still rolls back.
pub fn judge(new: &Figures, previous: &Figures, t: &Thresholds, window_over: bool) -> Verdict {
    let mut breaches = Vec::new();
    if new.queries >= t.min_queries {
        if previous.queries >= t.min_queries && new.overlap < previous.overlap - t.max_overlap_drop
        {
            breaches.push(Breach::OverlapDrop {
                new: new.overlap,
                previous: previous.overlap,
                max_drop: t.max_overlap_drop,
            });
        }
        if t.min_overlap > 0.0 && new.overlap < t.min_overlap {
            breaches.push(Breach::OverlapFloor {
                new: new.overlap,
                floor: t.min_overlap,
            });
        }
    }
    if new.answers >= t.min_queries
        && previous.answers >= t.min_queries
        && let (Some(new_s), Some(previous_s)) = (new.p99_s, previous.p99_s)
        && previous_s > 0.0
        && new_s > t.max_p99_ratio * previous_s
    {
        breaches.push(Breach::Latency {
            new_s,
            previous_s,
            max_ratio: t.max_p99_ratio,
        });
    }
    if !breaches.is_empty() {
        Verdict::RollBack(breaches)
    } else if window_over {
        Verdict::Release
    } else {
        Verdict::Watch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Thresholds = Thresholds {
        min_queries: 50,
        max_overlap_drop: 0.2,
        min_overlap: 0.0,
        max_p99_ratio: 3.0,
    };

    fn figures(queries: u64, overlap: f64, answers: u64, p99_ms: f64) -> Figures {
        Figures {
            queries,
            overlap,
            answers,
            p99_s: Some(p99_ms / 1e3),
        }
    }

    #[test]
    fn a_version_as_good_as_the_previous_one_is_released_when_the_window_ends() {
        let previous = figures(500, 0.8, 5000, 2.0);
        let new = figures(60, 0.7, 600, 5.0);
        assert_eq!(judge(&new, &previous, &T, false), Verdict::Watch);
        assert_eq!(judge(&new, &previous, &T, true), Verdict::Release);
    }

    #[test]
    fn an_overlap_drop_beyond_the_threshold_rolls_back() {
        let previous = figures(500, 0.8, 5000, 2.0);
        let new = figures(50, 0.55, 600, 2.0);
        let Verdict::RollBack(b) = judge(&new, &previous, &T, false) else {
            panic!("no rollback");
        };
        assert_eq!(
            b,
            vec![Breach::OverlapDrop {
                new: 0.55,
                previous: 0.8,
                max_drop: 0.2
            }]
        );
        assert!(b[0].to_string().contains("0.2500 below"), "{}", b[0]);
        // A breach found at the end of the window still rolls back.
        assert!(matches!(
            judge(&new, &previous, &T, true),
            Verdict::RollBack(_)
        ));
    }

    #[test]
    fn figures_are_judged_only_with_enough_samples() {
        let previous = figures(500, 0.8, 5000, 2.0);
        // Too few shadow queries for the new version, or for the previous one.
        assert_eq!(
            judge(&figures(49, 0.0, 10, 100.0), &previous, &T, true),
            Verdict::Release
        );
        let unmeasured = figures(10, 0.9, 10, 1.0);
        assert_eq!(
            judge(&figures(500, 0.0, 500, 100.0), &unmeasured, &T, false),
            Verdict::Watch
        );
        let no_latency = Figures {
            p99_s: None,
            ..figures(500, 0.8, 5000, 0.0)
        };
        assert_eq!(
            judge(&figures(500, 0.8, 500, 100.0), &no_latency, &T, false),
            Verdict::Watch
        );
    }

    #[test]
    fn the_floor_and_the_latency_rules() {
        let floor = Thresholds {
            min_overlap: 0.5,
            ..T
        };
        let previous = figures(0, 0.0, 5000, 2.0);
        let new = figures(50, 0.4, 50, 6.5);
        let Verdict::RollBack(b) = judge(&new, &previous, &floor, false) else {
            panic!("no rollback");
        };
        assert_eq!(b.len(), 2);
        assert_eq!(
            b[0],
            Breach::OverlapFloor {
                new: 0.4,
                floor: 0.5
            }
        );
        assert!(matches!(b[1], Breach::Latency { max_ratio, .. } if max_ratio == 3.0));
        assert!(b[1].to_string().contains("3.25x"), "{}", b[1]);
        // Exactly 3x is allowed.
        assert_eq!(
            judge(&figures(50, 0.6, 50, 6.0), &previous, &floor, false),
            Verdict::Watch
        );
    }
}
