//! Where a training epoch's wall time goes: a lap timer over the loop's phases (sampling,
//! building the batch tensors, forward, weights, loss, backward, optimiser step, statistics).
//! LibTorch runs CPU operations synchronously, so the laps are the phases' own times there; on
//! CUDA a lap ends when the host has queued the work, and the synchronising reads (the loss
//! value) absorb the rest.

use std::time::Instant;

use serde::Serialize;

/// A phase of the training loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Shuffling and sampling the epoch's negatives, rank-estimate samples or method items.
    Sample,
    /// Building a batch's tensors: index selects, concatenation, moves to the device.
    Gather,
    /// The model's forward pass (scoring the batch's items).
    Forward,
    /// The distillation weights (RD's rank estimate), or a method's auxiliary tensors.
    Weights,
    /// The loss and reading its value.
    Loss,
    /// Backpropagation.
    Backward,
    /// The optimiser's step (and zeroing the gradients).
    Step,
    /// Per-epoch statistics of the weights.
    Stats,
}

impl Phase {
    /// Every phase, in loop order.
    pub const ALL: [Phase; 8] = [
        Phase::Sample,
        Phase::Gather,
        Phase::Forward,
        Phase::Weights,
        Phase::Loss,
        Phase::Backward,
        Phase::Step,
        Phase::Stats,
    ];

    /// The phase's name in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Sample => "sample",
            Phase::Gather => "gather",
            Phase::Forward => "forward",
            Phase::Weights => "weights",
            Phase::Loss => "loss",
            Phase::Backward => "backward",
            Phase::Step => "step",
            Phase::Stats => "stats",
        }
    }
}

/// Seconds spent in each phase of one epoch, in `Phase::ALL` order.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PhaseSeconds(pub [f64; 8]);

impl PhaseSeconds {
    /// Seconds of one phase.
    pub fn get(&self, phase: Phase) -> f64 {
        self.0[phase as usize]
    }

    /// The sum over the phases.
    pub fn total(&self) -> f64 {
        self.0.iter().sum()
    }
}

impl Serialize for PhaseSeconds {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(Phase::ALL.len()))?;
        for phase in Phase::ALL {
            map.serialize_entry(phase.name(), &self.get(phase))?;
        }
        map.end()
    }
}

/// A lap timer: each `lap` charges the time since the previous lap to a phase.
#[derive(Debug)]
pub struct PhaseTimer {
    last: Instant,
    seconds: PhaseSeconds,
}

impl PhaseTimer {
    /// A timer whose first lap starts now.
    pub fn start() -> PhaseTimer {
        PhaseTimer {
            last: Instant::now(),
            seconds: PhaseSeconds::default(),
        }
    }

    /// Charges the time since the previous lap (or the start) to `phase`.
    pub fn lap(&mut self, phase: Phase) {
        let now = Instant::now();
        self.seconds.0[phase as usize] += (now - self.last).as_secs_f64();
        self.last = now;
    }

    /// The seconds charged so far.
    pub fn seconds(&self) -> PhaseSeconds {
        self.seconds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn laps_charge_their_phase_and_serialise_by_name() {
        let mut timer = PhaseTimer::start();
        std::thread::sleep(std::time::Duration::from_millis(2));
        timer.lap(Phase::Forward);
        timer.lap(Phase::Step);
        let s = timer.seconds();
        assert!(s.get(Phase::Forward) >= 0.002);
        assert!(s.get(Phase::Sample) == 0.0);
        assert!((s.total() - s.get(Phase::Forward) - s.get(Phase::Step)).abs() < 1e-12);
        let json = serde_json::to_value(s).unwrap();
        assert_eq!(json.as_object().unwrap().len(), 8);
        assert!(json["forward"].as_f64().unwrap() >= 0.002);
    }
}
