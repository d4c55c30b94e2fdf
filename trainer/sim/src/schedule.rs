//! Time stepping: steps that start small at every change of heating and grow
//! geometrically, never stepping over a frame time or a heating switch.

use super::solver::Solver;

/// The absorbed-flux history: `flux` W/m² (before per-pixel absorptivity) from t = 0
/// to `duration`, then nothing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pulse {
    pub flux_w_m2: f64,
    pub duration_s: f64,
}

impl Pulse {
    pub fn flux_at(&self, t: f64) -> f64 {
        if (0.0..self.duration_s).contains(&t) {
            self.flux_w_m2
        } else {
            0.0
        }
    }
}

/// Step-size controller.
#[derive(Clone, Debug)]
pub struct Stepper {
    pub pulse: Pulse,
    /// Current time (s).
    pub t: f64,
    dt: f64,
    dt_min: f64,
    dt_max: f64,
    growth: f64,
    /// Backward-Euler steps still to take after a heating change.
    damping: u32,
    pub steps: u64,
}

/// Backward-Euler steps after each heating change.
const DAMPING_STEPS: u32 = 3;

impl Stepper {
    /// `dt_max` caps the step (e.g. the frame period). Steps restart at
    /// `min(1 ms, duration / 50)` after each switch and grow by 15 % per step, which keeps
    /// the time discretization error far below 1 % (see the analytic tests).
    pub fn new(pulse: Pulse, dt_max: f64) -> Self {
        let dt_min = (1e-3f64).min(pulse.duration_s / 50.0);
        Stepper {
            pulse,
            t: 0.0,
            dt: dt_min,
            dt_min,
            dt_max,
            growth: 1.15,
            damping: DAMPING_STEPS,
            steps: 0,
        }
    }

    /// The same controller with every step scaled by `factor` (convergence studies).
    pub fn scaled(mut self, factor: f64) -> Self {
        self.dt_min *= factor;
        self.dt = self.dt_min;
        self.growth = 1.0 + (self.growth - 1.0) * factor;
        self
    }

    /// Advances `solver` to time `until`.
    pub fn advance(&mut self, solver: &mut Solver, until: f64) {
        while self.t < until - 1e-12 {
            let mut dt = self.dt.min(self.dt_max).min(until - self.t);
            let switch = self.pulse.duration_s;
            if self.t < switch && self.t + dt > switch {
                dt = switch - self.t;
            }
            // The flux is constant over the step: sample it at its middle.
            let flux = self.pulse.flux_at(self.t + dt / 2.0);
            let w = if self.damping > 0 { 1.0 } else { 0.5 };
            solver.step(dt, w, flux);
            self.t += dt;
            self.steps += 1;
            self.damping = self.damping.saturating_sub(1);
            if (self.t - switch).abs() < 1e-12 {
                // The heating just switched off: resolve the new transient from small steps.
                self.dt = self.dt_min;
                self.damping = DAMPING_STEPS;
            } else {
                self.dt = (self.dt * self.growth).min(self.dt_max);
            }
        }
    }
}
