//! Hit/miss probability of detection, fitted by maximum likelihood (MIL-HDBK-1823A §3):
//! `POD(a) = 1 / (1 + exp(−(β₀ + β₁ ln a)))`, the logit link on log size.
//!
//! Confidence bounds are Wald bounds: the covariance of (β₀, β₁) is the inverse of the
//! observed Fisher information at the optimum, the linear predictor's variance follows
//! from it, and the one-sided 95 % lower bound of the POD curve is
//! `logistic(η − z₀.₉₅ · sd(η))`. `a90/95` is where that bound reaches 0.9; it exists
//! only when the slope is significant enough for the bound to climb that high.
//!
//! Intervals of counts: Clopper–Pearson for proportions (false FAIL per sound part) and
//! the exact Poisson interval for rates (false calls per m²), both through `statrs`.

use argmin::core::{CostFunction, Executor};
use argmin::solver::neldermead::NelderMead;
use serde::{Deserialize, Serialize};
use statrs::distribution::{Beta, ChiSquared, ContinuousCDF, Normal};

/// One defect of a POD study: its size (any positive measure) and whether it was found.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct HitMiss {
    pub size: f64,
    pub hit: bool,
}

/// A fitted hit/miss POD curve.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PodFit {
    /// Intercept and slope on ln(size).
    pub beta: [f64; 2],
    /// Their covariance (inverse Fisher information).
    pub covariance: [[f64; 2]; 2],
    pub defects: usize,
    pub hits: usize,
    /// Smallest and largest size in the data.
    pub size_range: [f64; 2],
    pub log_likelihood: f64,
}

/// Why no POD curve can be fitted to a set of hits and misses.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum FitError {
    #[error("{0} defects are too few for a POD fit (at least 10)")]
    TooFew(usize),
    #[error("all {n} defects were {}: no transition to fit", if *.hit { "found" } else { "missed" })]
    NoTransition { n: usize, hit: bool },
    #[error(
        "hits and misses are separated by size (every miss below {0:.3} and every hit above, or the reverse): the likelihood has no maximum"
    )]
    Separated(f64),
    #[error("size {0} is not positive and finite")]
    BadSize(f64),
    #[error("the fit did not converge: {0}")]
    Optimiser(String),
    #[error("the Fisher information is singular")]
    Singular,
}

fn logistic(eta: f64) -> f64 {
    1.0 / (1.0 + (-eta).exp())
}

fn logit(p: f64) -> f64 {
    (p / (1.0 - p)).ln()
}

/// Negative log-likelihood of (β₀, β₁).
struct Likelihood<'a> {
    x: &'a [f64],
    y: &'a [bool],
}

impl CostFunction for Likelihood<'_> {
    type Param = Vec<f64>;
    type Output = f64;
    fn cost(&self, b: &Self::Param) -> Result<f64, argmin::core::Error> {
        // −Σ [y η − ln(1 + e^η)], written stably.
        Ok(self
            .x
            .iter()
            .zip(self.y)
            .map(|(&x, &y)| {
                let eta = b[0] + b[1] * x;
                let softplus = if eta > 0.0 {
                    eta + (-eta).exp().ln_1p()
                } else {
                    eta.exp().ln_1p()
                };
                softplus - if y { eta } else { 0.0 }
            })
            .sum())
    }
}

/// Fits the hit/miss model by maximum likelihood (Nelder–Mead from the method-of-moments
/// start, polished to a relative tolerance of 1e-12).
pub fn fit(data: &[HitMiss]) -> Result<PodFit, FitError> {
    if let Some(d) = data.iter().find(|d| !(d.size.is_finite() && d.size > 0.0)) {
        return Err(FitError::BadSize(d.size));
    }
    let n = data.len();
    if n < 10 {
        return Err(FitError::TooFew(n));
    }
    let hits = data.iter().filter(|d| d.hit).count();
    if hits == 0 || hits == n {
        return Err(FitError::NoTransition { n, hit: hits == n });
    }
    let x: Vec<f64> = data.iter().map(|d| d.size.ln()).collect();
    let y: Vec<bool> = data.iter().map(|d| d.hit).collect();
    let extreme = |hit: bool, max: bool| {
        x.iter().zip(&y).filter(|(_, h)| **h == hit).map(|(v, _)| *v).fold(
            if max { f64::MIN } else { f64::MAX },
            |a, b| {
                if max { a.max(b) } else { a.min(b) }
            },
        )
    };
    let (max_miss, min_hit) = (extreme(false, true), extreme(true, false));
    let (max_hit, min_miss) = (extreme(true, true), extreme(false, false));
    if max_miss < min_hit {
        return Err(FitError::Separated(max_miss.exp()));
    }
    if max_hit < min_miss {
        return Err(FitError::Separated(max_hit.exp()));
    }
    // Start: the curve through the mean size at the hit rate, slope 1 in the direction
    // the hits lie.
    let mean_x = x.iter().sum::<f64>() / n as f64;
    let mean_hit_x = x.iter().zip(&y).filter(|(_, h)| **h).map(|(v, _)| v).sum::<f64>() / hits as f64;
    let slope = if mean_hit_x >= mean_x { 1.0 } else { -1.0 };
    let rate = hits as f64 / n as f64;
    let b0 = logit(rate) - slope * mean_x;
    let start = vec![b0, slope];
    let simplex = vec![start.clone(), vec![b0 + 1.0, slope], vec![b0, slope + 0.5 * slope]];
    let problem = Likelihood { x: &x, y: &y };
    let mut best = start;
    // Restarted Nelder–Mead: each run from a fresh simplex around the last optimum, so a
    // collapsed simplex cannot stop the search short.
    let mut simplex = simplex;
    for _ in 0..4 {
        let solver = NelderMead::new(simplex)
            .with_sd_tolerance(1e-13)
            .map_err(|e| FitError::Optimiser(e.to_string()))?;
        let res = Executor::new(Likelihood { x: &x, y: &y }, solver)
            .configure(|s| s.max_iters(5000))
            .run()
            .map_err(|e| FitError::Optimiser(e.to_string()))?;
        best = res
            .state
            .best_param
            .clone()
            .ok_or_else(|| FitError::Optimiser("no best parameter".into()))?;
        let step = 0.05 * (best[1].abs() + 0.1);
        simplex = vec![
            best.clone(),
            vec![best[0] + step, best[1]],
            vec![best[0], best[1] + step],
        ];
    }
    // Observed (= expected, for the canonical logit link) Fisher information.
    let (mut i00, mut i01, mut i11) = (0.0, 0.0, 0.0);
    for &xi in &x {
        let p = logistic(best[0] + best[1] * xi);
        let w = p * (1.0 - p);
        i00 += w;
        i01 += w * xi;
        i11 += w * xi * xi;
    }
    let det = i00 * i11 - i01 * i01;
    if !(det.is_finite() && det > 0.0) {
        return Err(FitError::Singular);
    }
    let covariance = [[i11 / det, -i01 / det], [-i01 / det, i00 / det]];
    let log_likelihood = -problem.cost(&best).map_err(|e| FitError::Optimiser(e.to_string()))?;
    let sizes = data.iter().map(|d| d.size);
    Ok(PodFit {
        beta: [best[0], best[1]],
        covariance,
        defects: n,
        hits,
        size_range: [sizes.clone().fold(f64::MAX, f64::min), sizes.fold(f64::MIN, f64::max)],
        log_likelihood,
    })
}

/// The one-sided normal quantile of `confidence` (1.645 for 0.95).
fn z(confidence: f64) -> f64 {
    Normal::standard().inverse_cdf(confidence)
}

impl PodFit {
    fn eta(&self, size: f64) -> f64 {
        self.beta[0] + self.beta[1] * size.ln()
    }

    fn eta_sd(&self, size: f64) -> f64 {
        let x = size.ln();
        let c = &self.covariance;
        (c[0][0] + 2.0 * x * c[0][1] + x * x * c[1][1]).max(0.0).sqrt()
    }

    /// POD at `size`.
    pub fn pod(&self, size: f64) -> f64 {
        logistic(self.eta(size))
    }

    /// Lower one-sided Wald bound of POD at `size`.
    pub fn pod_lower(&self, size: f64, confidence: f64) -> f64 {
        logistic(self.eta(size) - z(confidence) * self.eta_sd(size))
    }

    /// Upper one-sided Wald bound of POD at `size` (for the plotted band).
    pub fn pod_upper(&self, size: f64, confidence: f64) -> f64 {
        logistic(self.eta(size) + z(confidence) * self.eta_sd(size))
    }

    /// The size at which POD is `p` (a50, a90 …).
    pub fn a(&self, p: f64) -> f64 {
        ((logit(p) - self.beta[0]) / self.beta[1]).exp()
    }

    /// Whether POD rises with size (holes by aspect ratio) or falls (holes by depth).
    pub fn rising(&self) -> bool {
        self.beta[1] > 0.0
    }

    /// The size at which the lower `confidence` bound of POD reaches `p` (a90/95 for
    /// p = 0.9, confidence 0.95), searched from `a(p)` toward better detection out to
    /// e⁶ (≈ 400) times beyond the data; `None` when the bound never gets there.
    pub fn a_bound(&self, p: f64, confidence: f64) -> Option<f64> {
        let dir = if self.rising() { 1.0 } else { -1.0 };
        let start = self.a(p).ln();
        let limit = if self.rising() {
            self.size_range[1].ln() + 6.0
        } else {
            self.size_range[0].ln() - 6.0
        };
        let short = |x: f64| self.pod_lower(x.exp(), confidence) < p;
        // March out in steps of 0.05 in ln size, then bisect the crossing.
        let mut lo = start;
        let mut hi = start;
        loop {
            hi += dir * 0.05;
            if dir * (hi - limit) > 0.0 {
                return None;
            }
            if !short(hi) {
                break;
            }
            lo = hi;
        }
        for _ in 0..60 {
            let mid = 0.5 * (lo + hi);
            if short(mid) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Some(hi.exp())
    }

    /// Two-sided `confidence` Wald interval of the size at which POD is `p`.
    pub fn a_interval(&self, p: f64, confidence: f64) -> [f64; 2] {
        let (b0, b1) = (self.beta[0], self.beta[1]);
        let x = (logit(p) - b0) / b1;
        // Delta method: ∂x/∂β₀ = −1/β₁, ∂x/∂β₁ = −x/β₁.
        let g = [-1.0 / b1, -x / b1];
        let c = &self.covariance;
        let var = g[0] * g[0] * c[0][0] + 2.0 * g[0] * g[1] * c[0][1] + g[1] * g[1] * c[1][1];
        let half = z(0.5 + confidence / 2.0) * var.max(0.0).sqrt();
        [(x - half).exp(), (x + half).exp()]
    }
}

/// Clopper–Pearson interval of a proportion `k / n` at `confidence` (two-sided).
pub fn clopper_pearson(k: usize, n: usize, confidence: f64) -> [f64; 2] {
    if n == 0 {
        return [0.0, 1.0];
    }
    let alpha = 1.0 - confidence;
    let (k, nf) = (k.min(n) as f64, n as f64);
    let lower = if k == 0.0 {
        0.0
    } else {
        Beta::new(k, nf - k + 1.0).map_or(0.0, |b| b.inverse_cdf(alpha / 2.0))
    };
    let upper = if k == nf {
        1.0
    } else {
        Beta::new(k + 1.0, nf - k).map_or(1.0, |b| b.inverse_cdf(1.0 - alpha / 2.0))
    };
    [lower, upper]
}

/// Exact (Garwood) interval of a Poisson rate: `k` events over `exposure`.
pub fn poisson_rate_interval(k: usize, exposure: f64, confidence: f64) -> [f64; 2] {
    let alpha = 1.0 - confidence;
    let k = k as f64;
    let lower = if k == 0.0 {
        0.0
    } else {
        ChiSquared::new(2.0 * k).map_or(0.0, |c| c.inverse_cdf(alpha / 2.0) / 2.0)
    };
    let upper = ChiSquared::new(2.0 * k + 2.0).map_or(f64::INFINITY, |c| c.inverse_cdf(1.0 - alpha / 2.0) / 2.0);
    [lower / exposure, upper / exposure]
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn clopper_pearson_matches_published_values() {
        // Reference values: R's binom.test; for 0/n and n/n the closed form
        // 1 − (α/2)^(1/n); 3/60 by bisection on the binomial sums.
        let cases = [
            (0, 10, [0.0, 0.308_497]),
            (1, 10, [0.002_529, 0.445_016]),
            (5, 10, [0.187_086, 0.812_914]),
            (10, 10, [0.691_503, 1.0]),
            (0, 60, [0.0, 0.059_629]),
            (3, 60, [0.010_432, 0.139_243]),
        ];
        for (k, n, want) in cases {
            let got = clopper_pearson(k, n, 0.95);
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() < 2e-6, "{k}/{n}: {got:?} vs {want:?}");
            }
        }
    }

    #[test]
    fn poisson_interval_matches_published_values() {
        // Garwood (1936): 0 events → [0, 3.689], 4 events → [1.090, 10.242].
        let [lo, hi] = poisson_rate_interval(0, 1.0, 0.95);
        assert!(lo == 0.0 && (hi - 3.688_879).abs() < 1e-5, "{lo} {hi}");
        let [lo, hi] = poisson_rate_interval(4, 2.0, 0.95);
        assert!((lo - 1.089_865 / 2.0).abs() < 1e-5 && (hi - 10.241_589 / 2.0).abs() < 1e-5);
    }

    /// Hits and misses drawn from a known curve: the fit recovers a50 and a90 within
    /// their intervals, and a90/95 lies above the true a90.
    #[test]
    fn recovers_a_known_pod_curve() {
        let (a50, sigma) = (2.0f64, 0.35f64);
        let truth = |a: f64| logistic((a.ln() - a50.ln()) / sigma);
        let true_a90 = (a50.ln() + sigma * logit(0.9)).exp();
        let mut covered = [0; 3];
        let trials = 40;
        for seed in 0..trials {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let data: Vec<HitMiss> = (0..300)
                .map(|_| {
                    let size = rng.random_range(0.5f64.ln()..10f64.ln()).exp();
                    HitMiss {
                        size,
                        hit: rng.random_bool(truth(size)),
                    }
                })
                .collect();
            let f = fit(&data).unwrap();
            assert!(f.rising());
            // The optimum: the score (gradient) vanishes.
            let (mut g0, mut g1) = (0.0, 0.0);
            for d in &data {
                let r = f64::from(u8::from(d.hit)) - f.pod(d.size);
                g0 += r;
                g1 += r * d.size.ln();
            }
            assert!(g0.abs() < 1e-4 && g1.abs() < 1e-4, "gradient {g0} {g1}");
            for (c, (p, want)) in covered.iter_mut().zip([(0.5, a50), (0.9, true_a90)]) {
                let [lo, hi] = f.a_interval(p, 0.95);
                *c += usize::from(lo <= want && want <= hi);
            }
            // a90/95 is a one-sided 95 % bound: at or above the true a90 in ~95 % of trials.
            covered[2] += usize::from(f.a_bound(0.9, 0.95).is_some_and(|b| b >= true_a90));
            if seed == 0 {
                let a9095 = f.a_bound(0.9, 0.95).unwrap();
                assert!(a9095 > f.a(0.9), "a90/95 {a9095}, a90 {}", f.a(0.9));
                assert!((f.pod(f.a(0.9)) - 0.9).abs() < 1e-9);
                assert!((f.pod_lower(a9095, 0.95) - 0.9).abs() < 1e-6);
            }
        }
        // 95 % intervals cover the truth in about 95 % of trials (≥ 34 of 40 leaves a
        // 1-in-200 chance of a false alarm for a correct method).
        eprintln!("a50, a90 intervals and the a90/95 bound covered the truth in {covered:?} of {trials} trials");
        for c in covered {
            assert!(c >= 34, "covered {c} of {trials}");
        }
    }

    #[test]
    fn falling_curves_and_degenerate_sets() {
        // POD falling with depth: a90 is the depth down to which 90 % are found and the
        // bound reaches 0.9 at a shallower depth.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let data: Vec<HitMiss> = (0..400)
            .map(|_| {
                let depth = rng.random_range(0.5f64..12.0);
                HitMiss {
                    size: depth,
                    hit: rng.random_bool(logistic(-(depth.ln() - 4f64.ln()) / 0.3)),
                }
            })
            .collect();
        let f = fit(&data).unwrap();
        assert!(!f.rising());
        assert!(f.a_bound(0.9, 0.95).unwrap() < f.a(0.9));
        let all = |hit| (1..=20).map(|i| HitMiss { size: i as f64, hit }).collect::<Vec<_>>();
        assert_eq!(fit(&all(true)), Err(FitError::NoTransition { n: 20, hit: true }));
        let split: Vec<HitMiss> = (1..=20)
            .map(|i| HitMiss {
                size: i as f64,
                hit: i > 10,
            })
            .collect();
        assert!(matches!(fit(&split), Err(FitError::Separated(_))));
        assert_eq!(fit(&all(true)[..5]), Err(FitError::TooFew(5)));
        let mut bad = all(true);
        bad[3].size = 0.0;
        assert_eq!(fit(&bad), Err(FitError::BadSize(0.0)));
    }
}
