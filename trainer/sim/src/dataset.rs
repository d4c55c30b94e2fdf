//! Many simulated plates for training: each a random variation of a template specimen —
//! material (±20 %), thickness (±20 %), a random set of defects (holes, delaminations,
//! surface spots; a share of plates without any), heating (±30 %), camera noise, lamp
//! profile and emissivity texture — simulated and written like `trainer simulate`, one
//! folder per plate, plus `index.json` with the split (train / validation / test, held out
//! by plate, never by pixel). Deterministic for a seed; plates run in parallel.

use std::path::Path;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use tqc_data::index::{DatasetIndex, PlateEntry, Split};
use tqc_data::specimen::{Delamination, DepthFrom, Heating, Hole, Specimen, SurfaceDefect};

use crate::SimError;
use crate::simulate::simulate_to_dir;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DatasetSpec {
    pub plates: usize,
    pub seed: u64,
    /// Share of plates without any defect.
    pub sound_share: f64,
    /// Shares of the validation and test splits (the rest trains).
    pub validation_share: f64,
    pub test_share: f64,
}

fn scale(rng: &mut ChaCha8Rng, v: f64, spread: f64) -> f64 {
    v * rng.random_range(1.0 - spread..=1.0 + spread)
}

/// Plate `n` of a dataset: the template varied with its own random stream.
pub fn plate_specimen(template: &Specimen, seed: u64, n: usize, sound: bool) -> Specimen {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut s = template.clone();
    s.name = format!("{}-{n:05}", template.name);
    s.description = format!("dataset plate {n} varied from {}", template.name);
    let m = &mut s.material;
    m.density_kg_m3 = scale(&mut rng, m.density_kg_m3, 0.2);
    m.specific_heat_j_kgk = scale(&mut rng, m.specific_heat_j_kgk, 0.2);
    m.conductivity_z_w_mk = scale(&mut rng, m.conductivity_z_w_mk, 0.2);
    m.conductivity_xy_w_mk = scale(&mut rng, m.conductivity_xy_w_mk, 0.2);
    s.plate.thickness_mm = scale(&mut rng, s.plate.thickness_mm, 0.2);
    let st = &mut s.station;
    match &mut st.heating {
        Heating::Flash {
            energy_j_m2,
            duration_s,
        } => {
            *energy_j_m2 = scale(&mut rng, *energy_j_m2, 0.3);
            *duration_s = scale(&mut rng, *duration_s, 0.3);
        }
        Heating::Step { flux_w_m2, duration_s } => {
            *flux_w_m2 = scale(&mut rng, *flux_w_m2, 0.3);
            *duration_s = scale(&mut rng, *duration_s, 0.3);
        }
    }
    st.camera.netd_k = rng.random_range(0.03..0.08);
    st.camera.fixed_pattern_k = rng.random_range(0.01..0.05);
    st.lamps.non_uniformity = rng.random_range(0.05..0.2);
    st.emissivity_texture.amplitude = rng.random_range(0.003..0.02);
    st.emissivity_texture.correlation_mm = rng.random_range(4.0..15.0);

    s.holes.clear();
    s.delaminations.clear();
    s.surface_defects.clear();
    if sound {
        return s;
    }
    let (w, h, l) = (s.plate.width_mm, s.plate.height_mm, s.plate.thickness_mm);
    let wanted = rng.random_range(1..=8);
    let mut placed: Vec<([f64; 2], f64)> = Vec::new();
    for _ in 0..wanted * 30 {
        if placed.len() == wanted {
            break;
        }
        let d = rng.random_range(6.0..22.0f64).min(w.min(h) / 3.0);
        let c = [
            rng.random_range(d / 2.0 + 2.0..w - d / 2.0 - 2.0),
            rng.random_range(d / 2.0 + 2.0..h - d / 2.0 - 2.0),
        ];
        // Keep 5 mm of sound material between defects.
        if placed
            .iter()
            .any(|(p, pd)| ((p[0] - c[0]).powi(2) + (p[1] - c[1]).powi(2)).sqrt() < (d + pd) / 2.0 + 5.0)
        {
            continue;
        }
        placed.push((c, d));
        let kind: f64 = rng.random();
        // Ranges that a very thin template would empty fall back to a surface spot.
        let hole_max = (0.6 * l).min(8.0);
        let delam_max = 0.5 * l;
        if kind < 0.6 && hole_max > 0.6 {
            s.holes.push(Hole {
                center_mm: c,
                diameter_mm: d,
                depth_mm: rng.random_range(0.5..hole_max),
                depth_from: DepthFrom::Front,
            });
        } else if kind < 0.8 && delam_max > 0.4 && delam_max + 0.3 < l {
            let depth = rng.random_range(0.3..delam_max);
            s.delaminations.push(Delamination {
                center_mm: c,
                diameter_mm: d,
                depth_mm: depth,
                thickness_mm: rng.random_range(0.05..0.3),
            });
        } else {
            s.surface_defects.push(SurfaceDefect {
                center_mm: c,
                diameter_mm: d,
                absorptivity_factor: rng.random_range(0.9..(1.0 / s.surface.absorptivity).min(1.1)),
                emissivity_factor: rng.random_range(0.95..(1.0 / s.surface.emissivity).min(1.05)),
            });
        }
    }
    s
}

/// Generates the dataset into `out`; `progress(done, total)` after each plate.
pub fn generate(
    template: &Specimen,
    spec: &DatasetSpec,
    out: &Path,
    progress: impl Fn(usize, usize) + Sync,
) -> Result<DatasetIndex, SimError> {
    std::fs::create_dir_all(out).map_err(|source| SimError::CreateDir {
        path: out.to_path_buf(),
        source,
    })?;
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let n = spec.plates;
    let sound_count = (spec.sound_share * n as f64).round() as usize;
    let mut sound: Vec<bool> = (0..n).map(|i| i < sound_count).collect();
    sound.shuffle(&mut rng);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rng);
    let n_test = (spec.test_share * n as f64).round() as usize;
    let n_val = (spec.validation_share * n as f64).round() as usize;
    let mut split = vec![Split::Train; n];
    for (rank, &p) in order.iter().enumerate() {
        if rank < n_test {
            split[p] = Split::Test;
        } else if rank < n_test + n_val {
            split[p] = Split::Validation;
        }
    }
    let done = std::sync::atomic::AtomicUsize::new(0);
    let plates: Vec<PlateEntry> = (0..n)
        .into_par_iter()
        .map(|i| -> Result<PlateEntry, SimError> {
            let in_plate = |e: SimError| SimError::Plate {
                plate: i,
                source: Box::new(e),
            };
            let s = plate_specimen(template, spec.seed, i, sound[i]);
            s.check(&s.name).map_err(|e| in_plate(e.into()))?;
            let dir = format!("plate-{i:05}");
            let seed = spec.seed.wrapping_add(i as u64).wrapping_mul(0x2545_f491_4f6c_dd1d);
            simulate_to_dir(&s, seed, &out.join(&dir), |_, _| {}).map_err(in_plate)?;
            progress(done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1, n);
            Ok(PlateEntry {
                plate: i,
                dir,
                split: split[i],
                seed,
                holes: s.holes.len(),
                delaminations: s.delaminations.len(),
                surface_defects: s.surface_defects.len(),
            })
        })
        .collect::<Result<_, _>>()?;
    let index = DatasetIndex {
        seed: spec.seed,
        template: template.name.clone(),
        plates,
    };
    index.write(out)?;
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plates_vary_validly_and_deterministically() {
        let template = Specimen::load("gfrp-sound").unwrap();
        for n in 0..40 {
            let a = plate_specimen(&template, 5, n, n % 5 == 0);
            a.check("generated").unwrap();
            assert_eq!(a, plate_specimen(&template, 5, n, n % 5 == 0));
            if n % 5 == 0 {
                assert!(a.holes.is_empty() && a.delaminations.is_empty() && a.surface_defects.is_empty());
            } else {
                assert!(a.holes.len() + a.delaminations.len() + a.surface_defects.len() >= 1);
            }
            let ratio = a.material.conductivity_z_w_mk / template.material.conductivity_z_w_mk;
            assert!((0.8..=1.2).contains(&ratio));
        }
        assert_ne!(
            plate_specimen(&template, 5, 1, false),
            plate_specimen(&template, 6, 1, false)
        );
    }
}
