//! Annealing schedules for loss weights (the KL's β, the alignment weight):
//! a factor in [0, 1] by training step that multiplies the configured weight.

use serde::{Deserialize, Serialize};

/// The shape of a weight's warm-up over `steps` training steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Anneal {
    /// Rises linearly from 1/steps at the first step to 1 at step `steps`,
    /// then stays at 1.
    #[default]
    Linear,
    /// A logistic curve (Bowman et al. 2016) rescaled to run from 0 at the
    /// first step to exactly 1 at step `steps`: slow, fast in the middle,
    /// slow again; then 1.
    Sigmoid,
    /// Cyclical annealing (Fu et al. 2019): every `steps` steps the factor
    /// starts again from 0, rises linearly over the first half of the
    /// cycle and holds 1 over the second half.
    Cyclical,
}

/// Steepness of [`Anneal::Sigmoid`]: the logistic is evaluated on [−6, 6].
const SIGMOID_SPAN: f32 = 12.0;

fn logistic(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

impl Anneal {
    /// The factor at 0-based training step `step` for a warm-up (or cycle)
    /// of `steps` steps; `steps == 0` means no annealing (always 1).
    pub fn factor(self, steps: usize, step: usize) -> f32 {
        if steps == 0 {
            return 1.0;
        }
        let t = step as f32 + 1.0;
        let n = steps as f32;
        match self {
            Anneal::Linear => (t / n).min(1.0),
            Anneal::Sigmoid => {
                if step + 1 >= steps {
                    return 1.0;
                }
                let lo = logistic(-SIGMOID_SPAN / 2.0);
                let hi = logistic(SIGMOID_SPAN / 2.0);
                let x = SIGMOID_SPAN * (step as f32 / (n - 1.0).max(1.0) - 0.5);
                ((logistic(x) - lo) / (hi - lo)).clamp(0.0, 1.0)
            }
            Anneal::Cyclical => {
                let within = (step % steps) as f32;
                let rise = (n / 2.0).max(1.0);
                (within / rise).min(1.0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_steps_means_no_annealing() {
        for a in [Anneal::Linear, Anneal::Sigmoid, Anneal::Cyclical] {
            assert_eq!(a.factor(0, 0), 1.0);
            assert_eq!(a.factor(0, 12345), 1.0);
        }
    }

    #[test]
    fn linear_rises_then_holds() {
        let a = Anneal::Linear;
        assert!((a.factor(10, 0) - 0.1).abs() < 1e-6);
        assert!((a.factor(10, 4) - 0.5).abs() < 1e-6);
        assert_eq!(a.factor(10, 9), 1.0);
        assert_eq!(a.factor(10, 500), 1.0);
    }

    #[test]
    fn sigmoid_runs_from_zero_to_one_symmetrically() {
        let a = Anneal::Sigmoid;
        let n = 101;
        assert!(a.factor(n, 0).abs() < 1e-6);
        assert!((a.factor(n, 50) - 0.5).abs() < 1e-5, "{}", a.factor(n, 50));
        assert_eq!(a.factor(n, 100), 1.0);
        assert_eq!(a.factor(n, 1000), 1.0);
        // Symmetric about the middle, and non-decreasing.
        for s in 0..50 {
            assert!((a.factor(n, s) + a.factor(n, 100 - s) - 1.0).abs() < 1e-5);
            assert!(a.factor(n, s + 1) >= a.factor(n, s));
        }
        // Slow at the ends, fast in the middle.
        assert!(a.factor(n, 10) < 0.02);
        assert!(a.factor(n, 55) - a.factor(n, 45) > 0.25);
    }

    #[test]
    fn cyclical_restarts_every_period() {
        let a = Anneal::Cyclical;
        // Period 8: rise over 4 steps, hold for 4.
        let v: Vec<f32> = (0..16).map(|s| a.factor(8, s)).collect();
        assert_eq!(
            v,
            [0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0]
        );
    }
}
