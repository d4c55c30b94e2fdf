//! Many simulated plates for training and qualification: each a random variation of a
//! template specimen — material, thickness, heating, camera noise, lamp profile and
//! emissivity texture — with a random set of defects (flat-bottom holes, delaminations,
//! inclusions less and more conductive than the plate, bright and dark surface spots; a
//! share of plates without any), drawn from [`DrawRanges`], simulated and written like
//! `trainer simulate`, one folder per plate, plus `index.json` with the split (train /
//! validation / test, held out by plate, never by pixel) and the ranges.
//!
//! Every random stream of plate `i` is hashed from (seed, i, purpose) ([`crate::seeds`]),
//! so datasets of different seeds share nothing, and any subset of plates (a
//! [`Shard`]) is simulated exactly as in a run over all of them.

use std::path::Path;

use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use tqc_data::index::{DatasetIndex, DrawRanges, KindShares, PlateEntry, Range, Shard, ShardOf, Split};
use tqc_data::specimen::{Delamination, DepthFrom, Heating, Hole, Inclusion, Specimen, SurfaceDefect};

use crate::SimError;
use crate::seeds::{Purpose, seed as derive_seed, stream};
use crate::simulate::{WallClock, simulate_to_dir};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DatasetSpec {
    pub plates: usize,
    pub seed: u64,
    /// Share of plates without any defect.
    pub sound_share: f64,
    /// Shares of the validation and test splits (the rest trains).
    pub validation_share: f64,
    pub test_share: f64,
    /// Which plates this run simulates ([`Shard::ALL`]: every one, and `index.json`).
    pub shard: Shard,
}

/// The ranges `trainer dataset` draws from: the family of parts a station of this kind
/// inspects, and beyond what it can reveal (deep holes, faint spots), so that a network
/// learns where the physics gives out.
pub const STANDARD: DrawRanges = DrawRanges {
    material_spread: 0.2,
    thickness_spread: 0.2,
    heating_spread: 0.3,
    defects_per_plate: [1, 8],
    kind_shares: KindShares {
        holes: 0.45,
        delaminations: 0.15,
        inclusions: 0.15,
        surface_spots: 0.25,
    },
    diameter_mm: [5.0, 25.0],
    hole_depth_min_mm: 0.5,
    hole_depth_max_share: 0.8,
    delamination_depth_share: [0.02, 0.5],
    delamination_gap_mm: [0.05, 0.3],
    inclusion_depth_share: [0.02, 0.5],
    inclusion_thickness_mm: [0.1, 1.0],
    inclusion_low_k_w_mk: [0.03, 0.25],
    inclusion_high_k_w_mk: [10.0, 50.0],
    inclusion_high_k_share: 0.5,
    spot_dark_absorptivity: [0.6, 0.97],
    spot_bright_absorptivity: [1.02, 1.15],
    spot_emissivity: [0.85, 1.08],
    lamp_non_uniformity: [0.05, 0.7],
    camera_netd_k: [0.03, 0.08],
    camera_fixed_pattern_k: [0.01, 0.05],
    emissivity_texture_amplitude: [0.003, 0.02],
    emissivity_texture_correlation_mm: [4.0, 15.0],
};

/// The ranges as the `--help` of `trainer dataset` states them.
pub fn describe(r: &DrawRanges) -> String {
    let k = &r.kind_shares;
    let pct = |v: f64| format!("{:.0} %", v * 100.0);
    format!(
        "What each plate is drawn from (also written into index.json as \"ranges\"):\n\
         - material (density, specific heat, both conductivities) ±{}, thickness ±{}, heating ±{}\n\
         - {}..={} defects per defective plate: holes {}, delaminations {}, inclusions {}, surface spots {}; \
         diameters {}–{} mm (at most a third of the plate's smaller side), 5 mm of sound material between defects\n\
         - flat-bottom holes: bottom {} mm to {} of the thickness below the face, log-uniform\n\
         - delaminations: at {}–{} of the thickness, air gap {}–{} mm\n\
         - inclusions: top at {}–{} of the thickness, {}–{} mm thick; {} conduct better than the plate \
         ({}–{} W/mK, metal shims, show cooler), the rest worse ({}–{} W/mK, PTFE, film, foam, show warmer)\n\
         - surface spots: half dark (absorptivity × {}–{}), half bright (× {}–{}, absorptivity capped at 1), \
         emissivity × {}–{} (capped at 1)\n\
         - lamps: peak-to-valley non-uniformity {}–{} (0.67: one side twice as warm), centre anywhere in the middle 80 % of the view\n\
         - camera NETD {}–{} K, fixed pattern {}–{} K; emissivity texture {}–{} over {}–{} mm\n\
         The template's own defects are dropped: the reference plate's layout is never in a dataset.",
        pct(r.material_spread),
        pct(r.thickness_spread),
        pct(r.heating_spread),
        r.defects_per_plate[0],
        r.defects_per_plate[1],
        pct(k.holes),
        pct(k.delaminations),
        pct(k.inclusions),
        pct(k.surface_spots),
        r.diameter_mm[0],
        r.diameter_mm[1],
        r.hole_depth_min_mm,
        pct(r.hole_depth_max_share),
        pct(r.delamination_depth_share[0]),
        pct(r.delamination_depth_share[1]),
        r.delamination_gap_mm[0],
        r.delamination_gap_mm[1],
        pct(r.inclusion_depth_share[0]),
        pct(r.inclusion_depth_share[1]),
        r.inclusion_thickness_mm[0],
        r.inclusion_thickness_mm[1],
        pct(r.inclusion_high_k_share),
        r.inclusion_high_k_w_mk[0],
        r.inclusion_high_k_w_mk[1],
        r.inclusion_low_k_w_mk[0],
        r.inclusion_low_k_w_mk[1],
        r.spot_dark_absorptivity[0],
        r.spot_dark_absorptivity[1],
        r.spot_bright_absorptivity[0],
        r.spot_bright_absorptivity[1],
        r.spot_emissivity[0],
        r.spot_emissivity[1],
        r.lamp_non_uniformity[0],
        r.lamp_non_uniformity[1],
        r.camera_netd_k[0],
        r.camera_netd_k[1],
        r.camera_fixed_pattern_k[0],
        r.camera_fixed_pattern_k[1],
        r.emissivity_texture_amplitude[0],
        r.emissivity_texture_amplitude[1],
        r.emissivity_texture_correlation_mm[0],
        r.emissivity_texture_correlation_mm[1],
    )
}

fn scale(rng: &mut ChaCha8Rng, v: f64, spread: f64) -> f64 {
    v * rng.random_range(1.0 - spread..=1.0 + spread)
}

fn uniform(rng: &mut ChaCha8Rng, r: Range) -> f64 {
    if r[1] > r[0] {
        rng.random_range(r[0]..r[1])
    } else {
        r[0]
    }
}

fn log_uniform(rng: &mut ChaCha8Rng, r: Range) -> f64 {
    uniform(rng, [r[0].ln(), r[1].ln()]).exp()
}

/// Plate `n` of a dataset of master seed `seed`: the template varied with its own
/// random stream.
pub fn plate_specimen(template: &Specimen, ranges: &DrawRanges, seed: u64, n: usize, sound: bool) -> Specimen {
    let mut rng = stream(seed, n as u64, Purpose::Specimen);
    let r = ranges;
    let mut s = template.clone();
    s.name = format!("{}-{n:05}", template.name);
    s.description = format!("dataset plate {n} varied from {}", template.name);
    let m = &mut s.material;
    m.density_kg_m3 = scale(&mut rng, m.density_kg_m3, r.material_spread);
    m.specific_heat_j_kgk = scale(&mut rng, m.specific_heat_j_kgk, r.material_spread);
    m.conductivity_z_w_mk = scale(&mut rng, m.conductivity_z_w_mk, r.material_spread);
    m.conductivity_xy_w_mk = scale(&mut rng, m.conductivity_xy_w_mk, r.material_spread);
    s.plate.thickness_mm = scale(&mut rng, s.plate.thickness_mm, r.thickness_spread);
    let st = &mut s.station;
    match &mut st.heating {
        Heating::Flash {
            energy_j_m2,
            duration_s,
        } => {
            *energy_j_m2 = scale(&mut rng, *energy_j_m2, r.heating_spread);
            *duration_s = scale(&mut rng, *duration_s, r.heating_spread);
        }
        Heating::Step { flux_w_m2, duration_s } => {
            *flux_w_m2 = scale(&mut rng, *flux_w_m2, r.heating_spread);
            *duration_s = scale(&mut rng, *duration_s, r.heating_spread);
        }
    }
    st.camera.netd_k = uniform(&mut rng, r.camera_netd_k);
    st.camera.fixed_pattern_k = uniform(&mut rng, r.camera_fixed_pattern_k);
    st.lamps.non_uniformity = uniform(&mut rng, r.lamp_non_uniformity);
    st.emissivity_texture.amplitude = uniform(&mut rng, r.emissivity_texture_amplitude);
    st.emissivity_texture.correlation_mm = uniform(&mut rng, r.emissivity_texture_correlation_mm);

    s.holes.clear();
    s.delaminations.clear();
    s.surface_defects.clear();
    s.inclusions.clear();
    if sound {
        return s;
    }
    let (w, h, l) = (s.plate.width_mm, s.plate.height_mm, s.plate.thickness_mm);
    let wanted = rng.random_range(r.defects_per_plate[0]..=r.defects_per_plate[1]);
    let k = &r.kind_shares;
    let total = k.holes + k.delaminations + k.inclusions + k.surface_spots;
    let mut placed: Vec<([f64; 2], f64)> = Vec::new();
    for _ in 0..wanted * 30 {
        if placed.len() == wanted {
            break;
        }
        let cap = w.min(h) / 3.0;
        let d = uniform(&mut rng, r.diameter_mm).min(cap);
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
        let kind = rng.random_range(0.0..total);
        // Ranges that a very thin template would empty fall back to a surface spot.
        let hole_max = r.hole_depth_max_share * l;
        let layer_room = |share: Range, extra: f64| share[1] * l + extra < l && share[0] * l > 0.0;
        if kind < k.holes && hole_max > r.hole_depth_min_mm * 1.2 {
            s.holes.push(Hole {
                center_mm: c,
                diameter_mm: d,
                depth_mm: log_uniform(&mut rng, [r.hole_depth_min_mm, hole_max]),
                depth_from: DepthFrom::Front,
            });
        } else if kind < k.holes + k.delaminations && layer_room(r.delamination_depth_share, r.delamination_gap_mm[1]) {
            let share = r.delamination_depth_share;
            s.delaminations.push(Delamination {
                center_mm: c,
                diameter_mm: d,
                depth_mm: uniform(&mut rng, [share[0] * l, share[1] * l]),
                thickness_mm: uniform(&mut rng, r.delamination_gap_mm),
            });
        } else if kind < k.holes + k.delaminations + k.inclusions
            && layer_room(r.inclusion_depth_share, r.inclusion_thickness_mm[1])
        {
            let share = r.inclusion_depth_share;
            let conducting = rng.random_bool(r.inclusion_high_k_share.clamp(0.0, 1.0));
            let (k_range, rho, cp) = if conducting {
                // Steel to brass.
                (r.inclusion_high_k_w_mk, 7800.0, 480.0)
            } else {
                // PTFE and polymer films.
                (r.inclusion_low_k_w_mk, 2200.0, 1000.0)
            };
            s.inclusions.push(Inclusion {
                center_mm: c,
                diameter_mm: d,
                depth_mm: uniform(&mut rng, [share[0] * l, share[1] * l]),
                thickness_mm: uniform(&mut rng, r.inclusion_thickness_mm),
                conductivity_w_mk: log_uniform(&mut rng, k_range),
                density_kg_m3: rho * rng.random_range(0.9..1.1),
                specific_heat_j_kgk: cp * rng.random_range(0.9..1.1),
            });
        } else {
            let bright = rng.random_bool(0.5);
            let a_max = 1.0 / s.surface.absorptivity;
            let absorptivity_factor = if bright {
                let b = r.spot_bright_absorptivity;
                uniform(&mut rng, [b[0].min(a_max), b[1].min(a_max)])
            } else {
                uniform(&mut rng, r.spot_dark_absorptivity)
            };
            let e = r.spot_emissivity;
            s.surface_defects.push(SurfaceDefect {
                center_mm: c,
                diameter_mm: d,
                absorptivity_factor,
                emissivity_factor: uniform(&mut rng, [e[0], e[1].min(1.0 / s.surface.emissivity)]),
            });
        }
    }
    s
}

/// Generates the dataset (or the plates of `spec.shard`) into `out`;
/// `progress(done, total)` after each plate. A run over all plates writes `index.json`;
/// a shard writes its own `index.shard-K-of-N.json`, merged by [`merge`].
pub fn generate(
    template: &Specimen,
    spec: &DatasetSpec,
    out: &Path,
    progress: impl Fn(usize, usize) + Sync,
) -> Result<Generated, SimError> {
    std::fs::create_dir_all(out).map_err(|source| SimError::CreateDir {
        path: out.to_path_buf(),
        source,
    })?;
    // Only this run's own files: other shards may be writing beside it.
    let own_index = out.join(if spec.shard == Shard::ALL {
        tqc_data::index::INDEX_FILE.to_string()
    } else {
        spec.shard.index_file()
    });
    let mut interrupted = Vec::new();
    let stale = tqc_data::io::partial_path(&own_index);
    if stale.is_file() {
        std::fs::remove_file(&stale).map_err(|source| tqc_data::io::WriteError::Remove {
            path: stale.clone(),
            source,
        })?;
        interrupted.push(stale);
    }
    let ranges = STANDARD;
    // The dataset-wide draws come first and from their own stream, so every shard makes
    // the same ones.
    let mut rng = stream(spec.seed, 0, Purpose::Split);
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
    let mine = spec.shard.plates(n);
    let total = mine.len();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let plates: Vec<(PlateEntry, Vec<std::path::PathBuf>)> = mine
        .into_par_iter()
        .map(|i| -> Result<_, SimError> {
            let in_plate = |e: SimError| SimError::Plate {
                plate: i,
                source: Box::new(e),
            };
            let s = plate_specimen(template, &ranges, spec.seed, i, sound[i]);
            s.check(&s.name).map_err(|e| in_plate(e.into()))?;
            let dir = format!("plate-{i:05}");
            let seed = derive_seed(spec.seed, i as u64, Purpose::Recording);
            let (_, _, rec) =
                simulate_to_dir(&s, seed, WallClock::Omit, &out.join(&dir), |_, _| {}).map_err(in_plate)?;
            progress(done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1, total);
            let entry = PlateEntry {
                plate: i,
                dir,
                split: split[i],
                seed,
                holes: s.holes.len(),
                delaminations: s.delaminations.len(),
                surface_defects: s.surface_defects.len(),
                inclusions: s.inclusions.len(),
            };
            Ok((entry, rec.interrupted))
        })
        .collect::<Result<_, _>>()?;
    let plates = plates
        .into_iter()
        .map(|(entry, removed)| {
            interrupted.extend(removed);
            entry
        })
        .collect();
    let whole = spec.shard == Shard::ALL;
    let index = DatasetIndex {
        seed: spec.seed,
        template: template.name.clone(),
        ranges: Some(ranges),
        shard: (!whole).then_some(ShardOf {
            shard: spec.shard,
            total_plates: n,
        }),
        plates,
    };
    if whole {
        index.write(out)?;
    } else {
        tqc_data::io::write_json(&own_index, &index)?;
    }
    Ok(Generated { index, interrupted })
}

/// What [`generate`] wrote, and what it cleaned up first.
#[derive(Clone, Debug)]
pub struct Generated {
    pub index: DatasetIndex,
    /// Unfinished files an interrupted earlier run of these plates left, removed.
    pub interrupted: Vec<std::path::PathBuf>,
}

/// Merges the shard indexes in `out` into the `index.json` a single run writes, and
/// removes them.
pub fn merge(out: &Path) -> Result<DatasetIndex, SimError> {
    let index = DatasetIndex::merge_shards(out)?;
    index.write(out)?;
    let shard_files: Vec<_> = std::fs::read_dir(out)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("index.shard-"))
                })
                .collect()
        })
        .unwrap_or_default();
    for p in shard_files {
        // A leftover shard index is harmless: the merged index is already written.
        let _ = std::fs::remove_file(p);
    }
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plates_vary_validly_and_deterministically() {
        let template = Specimen::load("gfrp-sound").unwrap();
        let (mut deep, mut conducting, mut insulating, mut dark, mut bright) = (0, 0, 0, 0, 0);
        for n in 0..200 {
            let a = plate_specimen(&template, &STANDARD, 5, n, n % 5 == 0);
            a.check("generated").unwrap();
            assert_eq!(a, plate_specimen(&template, &STANDARD, 5, n, n % 5 == 0));
            let defects = a.holes.len() + a.delaminations.len() + a.surface_defects.len() + a.inclusions.len();
            if n % 5 == 0 {
                assert_eq!(defects, 0);
            } else {
                assert!(defects >= 1);
            }
            let l = a.plate.thickness_mm;
            deep += a.holes.iter().filter(|h| h.depth_mm > 0.5 * l).count();
            conducting += a.inclusions.iter().filter(|i| i.conductivity_w_mk > 5.0).count();
            insulating += a.inclusions.iter().filter(|i| i.conductivity_w_mk < 0.3).count();
            dark += a.surface_defects.iter().filter(|s| s.absorptivity_factor < 1.0).count();
            bright += a.surface_defects.iter().filter(|s| s.absorptivity_factor > 1.0).count();
            for h in &a.holes {
                assert!((0.5..=0.8 * l).contains(&h.depth_mm) && (5.0..=25.0).contains(&h.diameter_mm));
            }
            let nu = a.station.lamps.non_uniformity;
            assert!((0.05..=0.7).contains(&nu));
            let ratio = a.material.conductivity_z_w_mk / template.material.conductivity_z_w_mk;
            assert!((0.8..=1.2).contains(&ratio));
        }
        // The family is covered: deep holes, both kinds of inclusion, both kinds of spot.
        for (what, count) in [
            ("holes deeper than half the thickness", deep),
            ("conducting inclusions", conducting),
            ("insulating inclusions", insulating),
            ("dark spots", dark),
            ("bright spots", bright),
        ] {
            assert!(count >= 10, "only {count} {what} in 160 defective plates");
        }
        assert_ne!(
            plate_specimen(&template, &STANDARD, 5, 1, false),
            plate_specimen(&template, &STANDARD, 6, 1, false)
        );
    }
}
