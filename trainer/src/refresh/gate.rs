//! The publication gates of `trainer refresh`: a candidate replaces the published student only
//! when its offline MAP is not too far below the current student's and its fidelity to the
//! teacher reaches a floor. Pure decisions over figures, so they are tested without models.

use serde::Serialize;

/// The gates, as given by `--max-map-drop` and `--min-overlap`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Gates {
    /// The candidate's MAP must be at least the current student's MAP minus this (a negative
    /// value asks the candidate to beat the current student by that much).
    pub max_map_drop: f64,
    /// The candidate's mean overlap@k with the teacher must be at least this.
    pub min_overlap: f64,
}

impl Default for Gates {
    fn default() -> Self {
        Gates {
            max_map_drop: 0.005,
            min_overlap: 0.0,
        }
    }
}

/// The offline figures of one student that the gates read.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GateFigures {
    /// MAP on the held-out split.
    pub map: f64,
    /// Mean overlap@k with the teacher's cached top k over the sampled users.
    pub overlap: f64,
}

/// What to do with a candidate, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// Publish the candidate (else keep the current student).
    pub publish: bool,
    /// One line saying why.
    pub reason: String,
}

/// Decides whether `candidate` replaces `current` (`None`: nothing is published yet, so only
/// the overlap floor applies). `force` publishes whatever the figures say.
pub fn decide(
    gates: &Gates,
    current: Option<&GateFigures>,
    candidate: &GateFigures,
    force: bool,
) -> Verdict {
    let mut failed = Vec::new();
    if let Some(current) = current {
        let floor = current.map - gates.max_map_drop;
        if candidate.map < floor {
            failed.push(format!(
                "candidate MAP {:.4} is below the current student's {:.4} minus --max-map-drop {} (needs >= {:.4})",
                candidate.map, current.map, gates.max_map_drop, floor
            ));
        }
    }
    if candidate.overlap < gates.min_overlap {
        failed.push(format!(
            "candidate overlap@10 {:.4} is below --min-overlap {}",
            candidate.overlap, gates.min_overlap
        ));
    }
    let versus = match current {
        Some(c) => format!(
            "MAP {:.4} (current {:.4}), overlap@10 {:.4} (current {:.4})",
            candidate.map, c.map, candidate.overlap, c.overlap
        ),
        None => format!(
            "MAP {:.4}, overlap@10 {:.4}, no student published before",
            candidate.map, candidate.overlap
        ),
    };
    match (failed.is_empty(), force) {
        (true, _) => Verdict {
            publish: true,
            reason: format!("the candidate passes the gates: {versus}"),
        },
        (false, true) => Verdict {
            publish: true,
            reason: format!("--force: published although {}", failed.join("; ")),
        },
        (false, false) => Verdict {
            publish: false,
            reason: failed.join("; "),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(map: f64, overlap: f64) -> GateFigures {
        GateFigures { map, overlap }
    }

    #[test]
    fn a_first_candidate_only_meets_the_overlap_floor() {
        let gates = Gates::default();
        assert!(decide(&gates, None, &figures(0.0, 0.0), false).publish);
        let gates = Gates {
            min_overlap: 0.5,
            ..Gates::default()
        };
        let v = decide(&gates, None, &figures(0.9, 0.4), false);
        assert!(!v.publish);
        assert_eq!(
            v.reason,
            "candidate overlap@10 0.4000 is below --min-overlap 0.5"
        );
        assert!(decide(&gates, None, &figures(0.9, 0.5), false).publish);
    }

    #[test]
    fn the_map_gate_allows_the_given_drop_and_no_more() {
        let gates = Gates::default();
        let current = figures(0.1, 0.5);
        assert!(decide(&gates, Some(&current), &figures(0.0951, 0.0), false).publish);
        assert!(decide(&gates, Some(&current), &figures(0.2, 0.0), false).publish);
        let v = decide(&gates, Some(&current), &figures(0.0949, 0.9), false);
        assert!(!v.publish);
        assert!(
            v.reason.starts_with("candidate MAP 0.0949 is below the current student's 0.1000 minus --max-map-drop 0.005"),
            "{}",
            v.reason
        );
    }

    #[test]
    fn a_negative_drop_asks_for_an_improvement() {
        let gates = Gates {
            max_map_drop: -1.0,
            min_overlap: 0.0,
        };
        // MAP lies in [0, 1]: no candidate beats a current student with any MAP by 1.
        let v = decide(&gates, Some(&figures(0.05, 0.0)), &figures(1.0, 1.0), false);
        assert!(!v.publish);
        assert!(v.reason.contains("needs >= 1.0500"), "{}", v.reason);
    }

    #[test]
    fn both_failures_are_named_and_force_publishes_anyway() {
        let gates = Gates {
            max_map_drop: 0.0,
            min_overlap: 0.8,
        };
        let current = figures(0.2, 0.9);
        let candidate = figures(0.1, 0.1);
        let v = decide(&gates, Some(&current), &candidate, false);
        assert!(!v.publish);
        assert_eq!(v.reason.matches("candidate").count(), 2, "{}", v.reason);
        let forced = decide(&gates, Some(&current), &candidate, true);
        assert!(forced.publish);
        assert!(
            forced
                .reason
                .starts_with("--force: published although candidate MAP")
        );
        let passing = decide(&Gates::default(), Some(&current), &figures(0.3, 0.9), true);
        assert!(passing.reason.starts_with("the candidate passes the gates"));
    }
}
