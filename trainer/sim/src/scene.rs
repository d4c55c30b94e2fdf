//! From a specimen file to what the solver and the camera need: one column per camera
//! pixel (where holes end, where gaps cut, how much lamp flux each pixel absorbs), the
//! emissivity each pixel shows, and the ground truth per pixel.
//!
//! Ground truth: class 0 sound, 1 in-depth defect (hole, delamination or inclusion), 2
//! surface defect; depth in mm from the inspected face to the defect (hole bottom, gap,
//! top of the inclusion) for
//! class 1, 0 for class 2, NaN for sound pixels. A pixel belongs to a defect when its
//! centre lies inside the defect's footprint.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::grid::{GridSpec, ZGrid};
use super::schedule::Pulse;
use super::seeds::{Purpose, stream};
use super::solver::{Column, K_AIR, Layer, Thermal};
use tqc_data::specimen::{Heating, Specimen};

pub const SOUND: u8 = tqc_data::Class::Sound.index();
pub const SUBSURFACE: u8 = tqc_data::Class::Subsurface.index();
pub const SURFACE: u8 = tqc_data::Class::Surface.index();

/// Stefan–Boltzmann constant.
const SIGMA: f64 = 5.670_374_419e-8;

/// What a defect is, for reports that read detection by kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DefectKind {
    Hole,
    Delamination,
    Inclusion,
    SurfaceSpot,
}

impl DefectKind {
    pub const ALL: [DefectKind; 4] = [
        DefectKind::Hole,
        DefectKind::Delamination,
        DefectKind::Inclusion,
        DefectKind::SurfaceSpot,
    ];

    /// Below the surface (read by depth), as opposed to a surface spot.
    pub fn in_depth(self) -> bool {
        self != DefectKind::SurfaceSpot
    }

    pub fn name(self) -> &'static str {
        match self {
            DefectKind::Hole => "flat-bottom holes",
            DefectKind::Delamination => "delaminations",
            DefectKind::Inclusion => "inclusions",
            DefectKind::SurfaceSpot => "surface spots",
        }
    }
}

/// One defect as the camera sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct DefectView {
    pub name: String,
    pub kind: DefectKind,
    pub class: u8,
    /// Centre in pixels (column, row).
    pub center_px: [f64; 2],
    pub diameter_mm: f64,
    /// Depth below the inspected face (0 for surface defects).
    pub depth_mm: f64,
    /// Row-major indices of the pixels in its footprint.
    pub pixels: Vec<usize>,
    /// Sound pixels of the annulus 4 to 12 mm outside its edge: the local reference that
    /// cancels lamp non-uniformity when measuring its contrast.
    pub ring: Vec<usize>,
}

pub struct Scene {
    pub width: usize,
    pub height: usize,
    /// Pixel pitch on the part (m).
    pub dx: f64,
    pub dy: f64,
    pub grid: ZGrid,
    pub columns: Vec<Column>,
    pub thermal: Thermal,
    pub pulse: Pulse,
    /// Apparent-temperature gain per pixel: emissivity relative to the camera's setting.
    pub emissivity_gain: Vec<f64>,
    pub labels: Vec<u8>,
    pub depth_mm: Vec<f32>,
    pub defects: Vec<DefectView>,
}

/// A smooth zero-mean random field with unit standard deviation: white noise blurred by
/// a Gaussian of `sigma_px` pixels (separable), normalized.
fn smooth_field(w: usize, h: usize, sigma_px: f64, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let mut f: Vec<f64> = (0..w * h).map(|_| StandardNormal.sample(rng)).collect();
    let radius = (3.0 * sigma_px).ceil().max(1.0) as isize;
    let kernel: Vec<f64> = (-radius..=radius)
        .map(|i| (-(i * i) as f64 / (2.0 * sigma_px * sigma_px)).exp())
        .collect();
    let norm: f64 = kernel.iter().sum();
    let blur = |f: &[f64], along_x: bool| -> Vec<f64> {
        let mut out = vec![0.0; w * h];
        for y in 0..h {
            for x in 0..w {
                let mut s = 0.0;
                for (k, kv) in kernel.iter().enumerate() {
                    let o = k as isize - radius;
                    // Edge pixels repeat beyond the border.
                    let (xx, yy) = if along_x {
                        (x as isize + o, y as isize)
                    } else {
                        (x as isize, y as isize + o)
                    };
                    let xx = xx.clamp(0, w as isize - 1) as usize;
                    let yy = yy.clamp(0, h as isize - 1) as usize;
                    s += kv * f[yy * w + xx];
                }
                out[y * w + x] = s / norm;
            }
        }
        out
    };
    f = blur(&f, true);
    f = blur(&f, false);
    let mean = f.iter().sum::<f64>() / f.len() as f64;
    let var = f.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / f.len() as f64;
    let sd = var.sqrt().max(1e-12);
    f.iter().map(|v| (v - mean) / sd).collect()
}

impl Scene {
    /// Builds the scene; `seed` draws the lamp profile and the emissivity texture.
    pub fn build(spec: &Specimen, seed: u64) -> Result<Scene, super::solver::SolverError> {
        let mut rng = stream(seed, 0, Purpose::Scene);
        let st = &spec.station;
        let [w, h] = [st.camera.pixels[0] as usize, st.camera.pixels[1] as usize];
        let view = spec.view_mm();
        let (px_w, px_h) = ((view[2] - view[0]) / w as f64, (view[3] - view[1]) / h as f64);
        let centre = |i: usize| -> [f64; 2] {
            let (x, y) = (i % w, i / w);
            [view[0] + (x as f64 + 0.5) * px_w, view[1] + (y as f64 + 0.5) * px_h]
        };
        let inside = |i: usize, c: [f64; 2], d: f64| {
            let p = centre(i);
            (p[0] - c[0]).powi(2) + (p[1] - c[1]).powi(2) <= (d / 2.0).powi(2)
        };

        let thickness = spec.plate.thickness_mm * 1e-3;
        let mut depths: Vec<f64> = spec.holes.iter().map(|hl| spec.hole_ligament_mm(hl) * 1e-3).collect();
        depths.extend(spec.delaminations.iter().map(|d| d.depth_mm * 1e-3));
        for inc in &spec.inclusions {
            depths.extend([inc.depth_mm * 1e-3, (inc.depth_mm + inc.thickness_mm) * 1e-3]);
        }
        let grid = ZGrid::new(thickness, GridSpec::for_thickness(thickness), &depths);
        let last = grid.nodes() - 1;

        let m = &spec.material;
        let thermal = Thermal {
            rho_c: m.density_kg_m3 * m.specific_heat_j_kgk,
            k_z: m.conductivity_z_w_mk,
            k_xy: m.conductivity_xy_w_mk,
            h_rear: st.environment.convection_rear_w_m2k
                + 4.0 * spec.surface.emissivity * SIGMA * st.environment.ambient_k.powi(3),
        };
        let pulse = match st.heating {
            Heating::Flash {
                energy_j_m2,
                duration_s,
            } => Pulse {
                flux_w_m2: energy_j_m2 / duration_s,
                duration_s,
            },
            Heating::Step { flux_w_m2, duration_s } => Pulse { flux_w_m2, duration_s },
        };

        // Lamp profile: an off-centre elliptical fall-off plus a tilt, scaled to the
        // requested peak-to-valley variation around a mean of 1.
        // The lamp axis may sit anywhere over the middle 80 % of the view: an off-axis
        // lamp warms one side far more than the other.
        let (cx, cy) = (
            rng.random_range(0.1..0.9) * w as f64,
            rng.random_range(0.1..0.9) * h as f64,
        );
        let (sx, sy) = (
            rng.random_range(0.6..1.2) * w as f64,
            rng.random_range(0.6..1.2) * h as f64,
        );
        let tilt: f64 = rng.random_range(-1.0..1.0);
        let raw: Vec<f64> = (0..w * h)
            .map(|i| {
                let (x, y) = ((i % w) as f64, (i / w) as f64);
                -((x - cx) / sx).powi(2) - ((y - cy) / sy).powi(2) + tilt * (x - w as f64 / 2.0) / w as f64
            })
            .collect();
        let (lo, hi) = raw.iter().fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        let span = (hi - lo).max(1e-12);
        let mean = raw.iter().sum::<f64>() / raw.len() as f64;
        let lamp: Vec<f64> = raw
            .iter()
            .map(|v| 1.0 + st.lamps.non_uniformity * (v - mean) / span)
            .collect();

        let texture_sigma_px = st.emissivity_texture.correlation_mm / px_w.min(px_h);
        let texture = smooth_field(w, h, texture_sigma_px, &mut rng);

        let h_front =
            |eps: f64| st.environment.convection_front_w_m2k + 4.0 * eps * SIGMA * st.environment.ambient_k.powi(3);
        let mut columns = Vec::with_capacity(w * h);
        let mut gain = Vec::with_capacity(w * h);
        for i in 0..w * h {
            let eps_rel = 1.0 + st.emissivity_texture.amplitude * texture[i];
            columns.push(Column {
                last,
                gap: None,
                layer: None,
                absorbed: spec.surface.absorptivity * lamp[i],
                h_front: h_front(spec.surface.emissivity * eps_rel),
            });
            gain.push(eps_rel);
        }
        let mut labels = vec![SOUND; w * h];
        let mut depth = vec![f32::NAN; w * h];
        let mut defects = Vec::new();
        let to_px = |c: [f64; 2]| [(c[0] - view[0]) / px_w - 0.5, (c[1] - view[1]) / px_h - 0.5];

        for (n, hole) in spec.holes.iter().enumerate() {
            let ligament = spec.hole_ligament_mm(hole);
            let node = grid.node_at(ligament * 1e-3);
            let pixels: Vec<usize> = (0..w * h)
                .filter(|&i| inside(i, hole.center_mm, hole.diameter_mm))
                .collect();
            for &i in &pixels {
                columns[i].last = node;
                labels[i] = SUBSURFACE;
                depth[i] = ligament as f32;
            }
            defects.push(DefectView {
                name: format!("hole[{n}] ⌀{} mm at {ligament} mm", hole.diameter_mm),
                kind: DefectKind::Hole,
                class: SUBSURFACE,
                center_px: to_px(hole.center_mm),
                diameter_mm: hole.diameter_mm,
                depth_mm: ligament,
                pixels,
                ring: Vec::new(),
            });
        }
        for (n, d) in spec.delaminations.iter().enumerate() {
            let link = grid.node_at(d.depth_mm * 1e-3);
            let pixels: Vec<usize> = (0..w * h).filter(|&i| inside(i, d.center_mm, d.diameter_mm)).collect();
            for &i in &pixels {
                columns[i].gap = Some((link, d.thickness_mm * 1e-3 / K_AIR));
                labels[i] = SUBSURFACE;
                depth[i] = d.depth_mm as f32;
            }
            defects.push(DefectView {
                name: format!("delamination[{n}] ⌀{} mm at {} mm", d.diameter_mm, d.depth_mm),
                kind: DefectKind::Delamination,
                class: SUBSURFACE,
                center_px: to_px(d.center_mm),
                diameter_mm: d.diameter_mm,
                depth_mm: d.depth_mm,
                pixels,
                ring: Vec::new(),
            });
        }
        for (n, inc) in spec.inclusions.iter().enumerate() {
            let (top, bottom) = (
                grid.node_at(inc.depth_mm * 1e-3),
                grid.node_at((inc.depth_mm + inc.thickness_mm) * 1e-3),
            );
            let pixels: Vec<usize> = (0..w * h)
                .filter(|&i| inside(i, inc.center_mm, inc.diameter_mm))
                .collect();
            // A layer thinner than the grid resolves (top and bottom on one node) is
            // still ground truth, but carries no heat differently.
            let layer = (bottom > top).then_some(Layer {
                top,
                bottom,
                k: inc.conductivity_w_mk,
                rho_c: inc.rho_c(),
            });
            for &i in &pixels {
                columns[i].layer = layer;
                labels[i] = SUBSURFACE;
                depth[i] = inc.depth_mm as f32;
            }
            defects.push(DefectView {
                name: format!(
                    "inclusion[{n}] ⌀{} mm at {} mm, k {} W/mK",
                    inc.diameter_mm, inc.depth_mm, inc.conductivity_w_mk
                ),
                kind: DefectKind::Inclusion,
                class: SUBSURFACE,
                center_px: to_px(inc.center_mm),
                diameter_mm: inc.diameter_mm,
                depth_mm: inc.depth_mm,
                pixels,
                ring: Vec::new(),
            });
        }
        for (n, s) in spec.surface_defects.iter().enumerate() {
            let pixels: Vec<usize> = (0..w * h).filter(|&i| inside(i, s.center_mm, s.diameter_mm)).collect();
            for &i in &pixels {
                columns[i].absorbed *= s.absorptivity_factor;
                let eps = spec.surface.emissivity * s.emissivity_factor * gain[i];
                columns[i].h_front = h_front(eps);
                gain[i] *= s.emissivity_factor;
                labels[i] = SURFACE;
                depth[i] = 0.0;
            }
            defects.push(DefectView {
                name: format!("surface_defect[{n}] ⌀{} mm", s.diameter_mm),
                kind: DefectKind::SurfaceSpot,
                class: SURFACE,
                center_px: to_px(s.center_mm),
                diameter_mm: s.diameter_mm,
                depth_mm: 0.0,
                pixels,
                ring: Vec::new(),
            });
        }
        for d in defects.iter_mut() {
            let c = [
                view[0] + (d.center_px[0] + 0.5) * px_w,
                view[1] + (d.center_px[1] + 0.5) * px_h,
            ];
            let (r_in, r_out) = (d.diameter_mm / 2.0 + 4.0, d.diameter_mm / 2.0 + 12.0);
            d.ring = (0..w * h)
                .filter(|&i| {
                    let p = centre(i);
                    let r = ((p[0] - c[0]).powi(2) + (p[1] - c[1]).powi(2)).sqrt();
                    labels[i] == SOUND && r >= r_in && r <= r_out
                })
                .collect();
        }
        Ok(Scene {
            width: w,
            height: h,
            dx: px_w * 1e-3,
            dy: px_h * 1e-3,
            grid,
            columns,
            thermal,
            pulse,
            emissivity_gain: gain,
            labels,
            depth_mm: depth,
            defects,
        })
    }
}
