//! The camera on top of the physics: what a radiometric microbolometer reports.
//!
//! Per frame and pixel, in kelvin:
//! `T_ambient + gain · θ_surface + fixed_pattern + drift(t) + netd_noise`, where `gain` is
//! the pixel's emissivity relative to the camera's emissivity setting (texture and
//! surface defects), the fixed pattern is drawn once per recording, the drift is a slow
//! random walk of the whole image, and NETD noise is white per frame and pixel.

use rand_distr::{Distribution, StandardNormal};

use tqc_data::specimen::Camera as CameraSpec;

use crate::seeds::{Purpose, stream};

pub struct Camera {
    ambient_k: f64,
    netd_k: f64,
    drift_k_per_sqrt_s: f64,
    fixed_pattern: Vec<f64>,
    drift_k: f64,
    seed: u64,
}

impl Camera {
    pub fn new(spec: &CameraSpec, ambient_k: f64, pixels: usize, seed: u64) -> Self {
        let mut rng = stream(seed, 0, Purpose::Camera);
        let fixed_pattern = (0..pixels)
            .map(|_| {
                let n: f64 = StandardNormal.sample(&mut rng);
                spec.fixed_pattern_k * n
            })
            .collect::<Vec<f64>>();
        Camera {
            ambient_k,
            netd_k: spec.netd_k,
            drift_k_per_sqrt_s: spec.drift_k_per_min / 60f64.sqrt(),
            fixed_pattern,
            drift_k: 0.0,
            seed,
        }
    }

    /// Frame `index` (its own noise stream, so frames are reproducible one by one),
    /// `since_last_s` after the previous frame.
    pub fn frame(&mut self, index: u64, since_last_s: f64, rise: &[f64], gain: &[f64], out: &mut [f32]) {
        let mut rng = stream(self.seed, index, Purpose::Frame);
        let step: f64 = StandardNormal.sample(&mut rng);
        self.drift_k += self.drift_k_per_sqrt_s * since_last_s.max(0.0).sqrt() * step;
        for (((o, &r), &g), &f) in out.iter_mut().zip(rise).zip(gain).zip(&self.fixed_pattern) {
            let n: f64 = StandardNormal.sample(&mut rng);
            *o = (self.ambient_k + g * r + f + self.drift_k + self.netd_k * n) as f32;
        }
    }
}
