//! Learning-rate schedules as pure functions of training progress (in epochs, fractional).

use super::config::{ScheduleKind, TrainConfig};

/// Learning-rate schedule of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    pub kind: ScheduleKind,
    pub peak: f64,
    pub epochs: f64,
    pub step_epochs: f64,
    pub step_gamma: f64,
    pub sgdr_cycle: f64,
    pub sgdr_mult: f64,
    pub warmup: f64,
}

impl Schedule {
    pub fn from_config(c: &TrainConfig) -> Self {
        Schedule {
            kind: c.schedule,
            peak: c.lr,
            epochs: c.epochs as f64,
            step_epochs: c.step_epochs.max(1) as f64,
            step_gamma: c.step_gamma,
            sgdr_cycle: c.sgdr_cycle.max(1) as f64,
            sgdr_mult: c.sgdr_mult.max(1) as f64,
            warmup: c.warmup.clamp(0.0, 1.0),
        }
    }

    /// Learning rate at progress `t` epochs (`0 <= t < epochs`).
    pub fn lr(&self, t: f64) -> f64 {
        let cosine = |from: f64, to: f64, frac: f64| to + 0.5 * (from - to) * (1.0 + (std::f64::consts::PI * frac.clamp(0.0, 1.0)).cos());
        match self.kind {
            ScheduleKind::Constant => self.peak,
            ScheduleKind::Step => self.peak * self.step_gamma.powf((t / self.step_epochs).floor()),
            ScheduleKind::Cosine => cosine(self.peak, 0.0, t / self.epochs),
            ScheduleKind::Sgdr => {
                // Mishra et al. eq. 1 (Loshchilov & Hutter): within cycle i of length
                // T_i = T_0 * mult^i, lr = lr_max/2 * (1 + cos(pi * T_cur / T_i)).
                let (mut start, mut len) = (0.0, self.sgdr_cycle);
                while t >= start + len {
                    start += len;
                    len *= self.sgdr_mult;
                }
                cosine(self.peak, 0.0, (t - start) / len)
            }
            ScheduleKind::OneCycle => {
                let warm = self.warmup * self.epochs;
                if t < warm {
                    one_cycle_rise(self.peak, t / warm)
                } else {
                    cosine(self.peak, self.peak / 1e4, (t - warm) / (self.epochs - warm).max(1e-9))
                }
            }
        }
    }
}

/// Cosine rise from `peak / 25` to `peak`.
fn one_cycle_rise(peak: f64, frac: f64) -> f64 {
    let low = peak / 25.0;
    low + 0.5 * (peak - low) * (1.0 - (std::f64::consts::PI * frac.clamp(0.0, 1.0)).cos())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(kind: ScheduleKind) -> Schedule {
        Schedule { kind, peak: 0.1, epochs: 30.0, step_epochs: 10.0, step_gamma: 0.1, sgdr_cycle: 1.0, sgdr_mult: 2.0, warmup: 0.25 }
    }

    #[test]
    fn step_decay_divides_by_ten_every_ten_epochs() {
        let s = schedule(ScheduleKind::Step);
        assert!((s.lr(0.0) - 0.1).abs() < 1e-12 && (s.lr(9.99) - 0.1).abs() < 1e-12);
        assert!((s.lr(10.0) - 0.01).abs() < 1e-12 && (s.lr(25.0) - 0.001).abs() < 1e-12);
    }

    #[test]
    fn sgdr_restarts_with_multiplied_cycles() {
        let s = schedule(ScheduleKind::Sgdr);
        // Cycles [0,1), [1,3), [3,7), [7,15): restarts at 1, 3, 7, 15.
        for restart in [0.0, 1.0, 3.0, 7.0, 15.0] {
            assert!((s.lr(restart) - 0.1).abs() < 1e-12, "restart at {restart}");
        }
        assert!((s.lr(2.0) - 0.05).abs() < 1e-12, "half-way through the 2-epoch cycle");
        assert!((s.lr(5.0) - 0.05).abs() < 1e-12, "half-way through the 4-epoch cycle");
        assert!(s.lr(6.99) < 0.001);
    }

    #[test]
    fn one_cycle_warms_up_then_anneals() {
        let s = schedule(ScheduleKind::OneCycle);
        assert!((s.lr(0.0) - 0.004).abs() < 1e-12);
        assert!((s.lr(7.5) - 0.1).abs() < 1e-9);
        assert!(s.lr(3.0) > s.lr(1.0) && s.lr(20.0) < s.lr(10.0));
        assert!(s.lr(29.999) < 1e-4);
    }

    #[test]
    fn cosine_halves_at_the_middle() {
        let s = schedule(ScheduleKind::Cosine);
        assert!((s.lr(15.0) - 0.05).abs() < 1e-12 && (s.lr(0.0) - 0.1).abs() < 1e-12);
    }
}
