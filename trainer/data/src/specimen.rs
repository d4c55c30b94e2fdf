//! Specimen files: the part (plate, material, surface, defects) and the station that
//! inspects it (heating, recording, camera, lamps, environment), in TOML.
//!
//! Units are in the field names (`_mm`, `_s`, `_k`, `_w_m2` …). Coordinates are in mm on
//! the inspected face, origin at a plate corner, x along the width, y along the height.
//! Every field is checked on load; an error names the field and the reason.
//!
//! Defect models:
//! - `[[hole]]`: a flat-bottom hole drilled from the rear face, a void whose walls pass no
//!   heat. `depth_mm` is read as `depth_from` says: `"front"` — distance from the inspected
//!   face to the hole bottom (the material left above the hole); `"rear"` — drilled depth
//!   measured from the rear face.
//! - `[[delamination]]`: a thin air gap parallel to the faces at `depth_mm` below the
//!   inspected face, `thickness_mm` thick; it adds the thermal resistance of that air
//!   layer between the material above and below it.
//! - `[[inclusion]]`: a disc of foreign material, `thickness_mm` thick, its top at
//!   `depth_mm` below the inspected face, with its own conductivity and heat capacity:
//!   less conductive than the plate (a PTFE insert, backing film, foam) it holds heat
//!   above it and shows warmer; more conductive (a metal shim) it drains heat and shows
//!   cooler than sound material.
//! - `[[surface_defect]]`: a spot on the inspected face whose optical properties differ —
//!   resin-rich or damaged surface, paint or contamination — absorbing
//!   `absorptivity_factor` times and emitting `emissivity_factor` times the surrounding
//!   surface. It shows from the very first frames, unlike anything below the surface.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// Why a specimen file is not usable.
#[derive(Debug, thiserror::Error)]
pub enum SpecimenError {
    #[error("cannot read {path}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: {field}: {reason}")]
    Invalid {
        path: String,
        field: String,
        reason: String,
    },
    #[error("no shipped specimen named {0:?} (shipped: {1})")]
    Unknown(String, String),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Specimen {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub plate: Plate,
    pub material: Material,
    #[serde(default)]
    pub surface: Surface,
    #[serde(default, rename = "hole")]
    pub holes: Vec<Hole>,
    #[serde(default, rename = "surface_defect")]
    pub surface_defects: Vec<SurfaceDefect>,
    #[serde(default, rename = "delamination")]
    pub delaminations: Vec<Delamination>,
    #[serde(default, rename = "inclusion")]
    pub inclusions: Vec<Inclusion>,
    #[serde(default)]
    pub station: Station,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plate {
    pub width_mm: f64,
    pub height_mm: f64,
    pub thickness_mm: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Material {
    #[serde(default)]
    pub name: String,
    pub density_kg_m3: f64,
    pub specific_heat_j_kgk: f64,
    /// Through-thickness conductivity.
    pub conductivity_z_w_mk: f64,
    /// In-plane conductivity (same along x and y).
    pub conductivity_xy_w_mk: f64,
}

impl Material {
    pub fn effusivity(&self) -> f64 {
        (self.conductivity_z_w_mk * self.density_kg_m3 * self.specific_heat_j_kgk).sqrt()
    }
    pub fn diffusivity_z(&self) -> f64 {
        self.conductivity_z_w_mk / (self.density_kg_m3 * self.specific_heat_j_kgk)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Surface {
    pub emissivity: f64,
    pub absorptivity: f64,
}

impl Default for Surface {
    fn default() -> Self {
        Surface {
            emissivity: 0.92,
            absorptivity: 0.9,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DepthFrom {
    /// Distance from the inspected face to the hole bottom.
    Front,
    /// Drilled depth measured from the rear face.
    Rear,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hole {
    pub center_mm: [f64; 2],
    pub diameter_mm: f64,
    pub depth_mm: f64,
    pub depth_from: DepthFrom,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SurfaceDefect {
    pub center_mm: [f64; 2],
    pub diameter_mm: f64,
    #[serde(default = "one")]
    pub absorptivity_factor: f64,
    #[serde(default = "one")]
    pub emissivity_factor: f64,
}

fn one() -> f64 {
    1.0
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delamination {
    pub center_mm: [f64; 2],
    pub diameter_mm: f64,
    /// Below the inspected face.
    pub depth_mm: f64,
    pub thickness_mm: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inclusion {
    pub center_mm: [f64; 2],
    pub diameter_mm: f64,
    /// Of its top, below the inspected face.
    pub depth_mm: f64,
    pub thickness_mm: f64,
    /// Of the foreign material (isotropic).
    pub conductivity_w_mk: f64,
    pub density_kg_m3: f64,
    pub specific_heat_j_kgk: f64,
}

impl Inclusion {
    /// Volumetric heat capacity ρ·c, J/m³K.
    pub fn rho_c(&self) -> f64 {
        self.density_kg_m3 * self.specific_heat_j_kgk
    }
}

/// How the lamps heat the inspected face.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Heating {
    /// A flash: `energy_j_m2` delivered (before absorptivity) within `duration_s`.
    Flash { energy_j_m2: f64, duration_s: f64 },
    /// A long pulse or step: constant `flux_w_m2` (before absorptivity) for `duration_s`.
    Step { flux_w_m2: f64, duration_s: f64 },
}

impl Heating {
    /// How long the lamps are on, s.
    pub fn duration_s(&self) -> f64 {
        match *self {
            Heating::Flash { duration_s, .. } | Heating::Step { duration_s, .. } => duration_s,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recording {
    /// From the start of heating.
    pub duration_s: f64,
    pub frame_rate_hz: f64,
    /// Frames recorded before the lamps switch on (their mean is the cold reference).
    pub preheat_frames: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Camera {
    /// Columns × rows (a Lepton 3.5 is 160 × 120).
    pub pixels: [u32; 2],
    /// The rectangle of the part the camera sees, `[x0, y0, x1, y1]` in mm; default:
    /// the whole plate.
    #[serde(default)]
    pub view_mm: Option<[f64; 4]>,
    /// Temporal noise, one standard deviation, per frame and pixel.
    pub netd_k: f64,
    /// Static per-pixel offset, one standard deviation.
    pub fixed_pattern_k: f64,
    /// Slow drift of the whole image, one standard deviation per minute (random walk).
    pub drift_k_per_min: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lamps {
    /// Peak-to-valley variation of the absorbed flux across the view, as a fraction.
    pub non_uniformity: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmissivityTexture {
    /// Standard deviation of the relative emissivity across the surface.
    pub amplitude: f64,
    /// Correlation length of the texture.
    pub correlation_mm: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    pub ambient_k: f64,
    /// Convection coefficient at the inspected face; radiation is added from the
    /// emissivity (linearized at ambient).
    pub convection_front_w_m2k: f64,
    pub convection_rear_w_m2k: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Station {
    pub heating: Heating,
    pub recording: Recording,
    pub camera: Camera,
    pub lamps: Lamps,
    pub emissivity_texture: EmissivityTexture,
    pub environment: Environment,
}

impl Default for Station {
    /// Halogen lamps on a long pulse, a Lepton-class camera at 8.7 Hz, two minutes.
    fn default() -> Self {
        Station {
            heating: Heating::Step {
                flux_w_m2: 4000.0,
                duration_s: 10.0,
            },
            recording: Recording {
                duration_s: 120.0,
                frame_rate_hz: 8.7,
                preheat_frames: 10,
            },
            camera: Camera {
                pixels: [160, 120],
                view_mm: None,
                netd_k: 0.05,
                fixed_pattern_k: 0.03,
                drift_k_per_min: 0.02,
            },
            lamps: Lamps { non_uniformity: 0.12 },
            emissivity_texture: EmissivityTexture {
                amplitude: 0.01,
                correlation_mm: 8.0,
            },
            environment: Environment {
                ambient_k: 293.15,
                convection_front_w_m2k: 8.0,
                convection_rear_w_m2k: 4.0,
            },
        }
    }
}

/// Specimens shipped in `trainer/specimens/`, by name.
pub const SHIPPED: &[(&str, &str)] = &[
    ("gfrp-reference", include_str!("../../specimens/gfrp-reference.toml")),
    ("gfrp-sound", include_str!("../../specimens/gfrp-sound.toml")),
    (
        "cfrp-delaminations",
        include_str!("../../specimens/cfrp-delaminations.toml"),
    ),
];

impl Specimen {
    /// A shipped specimen by name, or a TOML file by path.
    pub fn load(name_or_path: &str) -> Result<Self, SpecimenError> {
        if let Some((_, text)) = SHIPPED.iter().find(|(n, _)| *n == name_or_path) {
            return Self::parse(text, &format!("specimens/{name_or_path}.toml"));
        }
        let path = Path::new(name_or_path);
        if path.extension().is_none() && !path.exists() {
            let names: Vec<&str> = SHIPPED.iter().map(|(n, _)| *n).collect();
            return Err(SpecimenError::Unknown(name_or_path.into(), names.join(", ")));
        }
        let text = std::fs::read_to_string(path).map_err(|source| SpecimenError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and validates TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, SpecimenError> {
        let s: Specimen = toml::from_str(text).map_err(|e| SpecimenError::Parse {
            path: origin.into(),
            message: e.to_string(),
        })?;
        s.validate().map_err(|(field, reason)| SpecimenError::Invalid {
            path: origin.into(),
            field,
            reason,
        })?;
        Ok(s)
    }

    /// Validates a specimen built in code (e.g. by the dataset generator); `origin` names
    /// it in errors.
    pub fn check(&self, origin: &str) -> Result<(), SpecimenError> {
        self.validate().map_err(|(field, reason)| SpecimenError::Invalid {
            path: origin.into(),
            field,
            reason,
        })
    }

    /// Distance from the inspected face to the bottom of `hole`, in mm.
    pub fn hole_ligament_mm(&self, hole: &Hole) -> f64 {
        match hole.depth_from {
            DepthFrom::Front => hole.depth_mm,
            DepthFrom::Rear => self.plate.thickness_mm - hole.depth_mm,
        }
    }

    /// The view rectangle `[x0, y0, x1, y1]` in mm.
    pub fn view_mm(&self) -> [f64; 4] {
        self.station
            .camera
            .view_mm
            .unwrap_or([0.0, 0.0, self.plate.width_mm, self.plate.height_mm])
    }

    /// Every field checked; the first problem as (field, reason).
    fn validate(&self) -> Result<(), (String, String)> {
        self.validate_part()?;
        self.validate_defects()?;
        self.validate_station()
    }

    /// Plate, material and surface.
    fn validate_part(&self) -> Result<(), (String, String)> {
        let p = &self.plate;
        positive("plate.width_mm", p.width_mm)?;
        positive("plate.height_mm", p.height_mm)?;
        positive("plate.thickness_mm", p.thickness_mm)?;
        // What a station inspects: a typo (1e9 mm) is refused here, not after minutes of
        // simulation.
        physical("plate.width_mm", p.width_mm, 1.0, 5000.0, "mm")?;
        physical("plate.height_mm", p.height_mm, 1.0, 5000.0, "mm")?;
        physical("plate.thickness_mm", p.thickness_mm, 0.1, 200.0, "mm")?;
        let m = &self.material;
        positive("material.density_kg_m3", m.density_kg_m3)?;
        positive("material.specific_heat_j_kgk", m.specific_heat_j_kgk)?;
        positive("material.conductivity_z_w_mk", m.conductivity_z_w_mk)?;
        positive("material.conductivity_xy_w_mk", m.conductivity_xy_w_mk)?;
        // Bounds of real solids, as for inclusions.
        physical("material.density_kg_m3", m.density_kg_m3, 10.0, 25_000.0, "kg/m³")?;
        physical(
            "material.specific_heat_j_kgk",
            m.specific_heat_j_kgk,
            50.0,
            5000.0,
            "J/(kg·K)",
        )?;
        physical(
            "material.conductivity_z_w_mk",
            m.conductivity_z_w_mk,
            0.01,
            2000.0,
            "W/(m·K)",
        )?;
        physical(
            "material.conductivity_xy_w_mk",
            m.conductivity_xy_w_mk,
            0.01,
            2000.0,
            "W/(m·K)",
        )?;
        fraction("surface.emissivity", self.surface.emissivity, 0.01, 1.0)?;
        fraction("surface.absorptivity", self.surface.absorptivity, 0.01, 1.0)?;
        Ok(())
    }

    /// Each defect on the plate and within its thickness, and no two overlapping.
    fn validate_defects(&self) -> Result<(), (String, String)> {
        // Footprints: (field, centre, radius, kind) to check placement and overlaps.
        let p = &self.plate;
        let mut footprints: Vec<(String, [f64; 2], f64)> = Vec::new();
        let inside = |field: &str, c: [f64; 2], d: f64| -> Result<(), (String, String)> {
            for (i, v) in c.iter().enumerate() {
                if !v.is_finite() {
                    return bad(
                        &format!("{field}.center_mm[{i}]"),
                        format!("{v} is not a finite number"),
                    );
                }
            }
            positive(&format!("{field}.diameter_mm"), d)?;
            let r = d / 2.0;
            if c[0] - r < 0.0 || c[1] - r < 0.0 || c[0] + r > p.width_mm || c[1] + r > p.height_mm {
                return bad(
                    &format!("{field}.center_mm"),
                    format!(
                        "a {d} mm defect at ({}, {}) mm reaches outside the {} × {} mm plate",
                        c[0], c[1], p.width_mm, p.height_mm
                    ),
                );
            }
            Ok(())
        };
        for (i, h) in self.holes.iter().enumerate() {
            let f = format!("hole[{i}]");
            inside(&f, h.center_mm, h.diameter_mm)?;
            positive(&format!("{f}.depth_mm"), h.depth_mm)?;
            if h.depth_mm >= p.thickness_mm {
                return bad(
                    &format!("{f}.depth_mm"),
                    format!(
                        "{} mm is not less than the plate thickness {} mm",
                        h.depth_mm, p.thickness_mm
                    ),
                );
            }
            footprints.push((f, h.center_mm, h.diameter_mm / 2.0));
        }
        for (i, s) in self.surface_defects.iter().enumerate() {
            let f = format!("surface_defect[{i}]");
            inside(&f, s.center_mm, s.diameter_mm)?;
            positive(&format!("{f}.absorptivity_factor"), s.absorptivity_factor)?;
            positive(&format!("{f}.emissivity_factor"), s.emissivity_factor)?;
            if s.absorptivity_factor * self.surface.absorptivity > 1.0 {
                return bad(
                    &format!("{f}.absorptivity_factor"),
                    "makes the absorptivity exceed 1".into(),
                );
            }
            if s.emissivity_factor * self.surface.emissivity > 1.0 {
                return bad(
                    &format!("{f}.emissivity_factor"),
                    "makes the emissivity exceed 1".into(),
                );
            }
            footprints.push((f, s.center_mm, s.diameter_mm / 2.0));
        }
        for (i, d) in self.delaminations.iter().enumerate() {
            let f = format!("delamination[{i}]");
            inside(&f, d.center_mm, d.diameter_mm)?;
            positive(&format!("{f}.depth_mm"), d.depth_mm)?;
            positive(&format!("{f}.thickness_mm"), d.thickness_mm)?;
            if d.depth_mm + d.thickness_mm >= p.thickness_mm {
                return bad(
                    &format!("{f}.depth_mm"),
                    format!("the gap reaches the rear face ({} mm)", p.thickness_mm),
                );
            }
            footprints.push((f, d.center_mm, d.diameter_mm / 2.0));
        }
        for (i, d) in self.inclusions.iter().enumerate() {
            let f = format!("inclusion[{i}]");
            inside(&f, d.center_mm, d.diameter_mm)?;
            positive(&format!("{f}.depth_mm"), d.depth_mm)?;
            positive(&format!("{f}.thickness_mm"), d.thickness_mm)?;
            if d.depth_mm + d.thickness_mm >= p.thickness_mm {
                return bad(
                    &format!("{f}.thickness_mm"),
                    format!(
                        "{} mm at {} mm reaches the rear face ({} mm)",
                        d.thickness_mm, d.depth_mm, p.thickness_mm
                    ),
                );
            }
            // Bounds of real solids: aerogel to diamond, foams to tungsten.
            fraction(&format!("{f}.conductivity_w_mk"), d.conductivity_w_mk, 0.01, 2000.0)?;
            fraction(&format!("{f}.density_kg_m3"), d.density_kg_m3, 10.0, 25_000.0)?;
            fraction(&format!("{f}.specific_heat_j_kgk"), d.specific_heat_j_kgk, 50.0, 5000.0)?;
            footprints.push((f, d.center_mm, d.diameter_mm / 2.0));
        }
        for (a, (fa, ca, ra)) in footprints.iter().enumerate() {
            for (fb, cb, rb) in &footprints[a + 1..] {
                let dist = ((ca[0] - cb[0]).powi(2) + (ca[1] - cb[1]).powi(2)).sqrt();
                if dist < ra + rb {
                    return bad(
                        &format!("{fb}.center_mm"),
                        format!("overlaps {fa} (centres {dist:.2} mm apart)"),
                    );
                }
            }
        }
        Ok(())
    }

    /// Heating, recording, camera, lamps, texture and environment.
    fn validate_station(&self) -> Result<(), (String, String)> {
        let (st, p) = (&self.station, &self.plate);
        match &st.heating {
            Heating::Flash {
                energy_j_m2,
                duration_s,
            } => {
                positive("station.heating.energy_j_m2", *energy_j_m2)?;
                positive("station.heating.duration_s", *duration_s)?;
                // Xenon flashes deliver a few to some tens of kJ/m².
                physical("station.heating.energy_j_m2", *energy_j_m2, 1.0, 1e6, "J/m²")?;
                physical("station.heating.duration_s", *duration_s, 1e-6, 3600.0, "s")?;
            }
            Heating::Step { flux_w_m2, duration_s } => {
                positive("station.heating.flux_w_m2", *flux_w_m2)?;
                positive("station.heating.duration_s", *duration_s)?;
                // Halogen lamps give 1–20 kW/m²; 1 MW/m² would burn any part.
                physical("station.heating.flux_w_m2", *flux_w_m2, 1.0, 1e6, "W/m²")?;
                physical("station.heating.duration_s", *duration_s, 1e-3, 3600.0, "s")?;
            }
        }
        positive("station.recording.duration_s", st.recording.duration_s)?;
        positive("station.recording.frame_rate_hz", st.recording.frame_rate_hz)?;
        physical(
            "station.recording.duration_s",
            st.recording.duration_s,
            0.1,
            7200.0,
            "s",
        )?;
        physical(
            "station.recording.frame_rate_hz",
            st.recording.frame_rate_hz,
            0.01,
            1000.0,
            "Hz",
        )?;
        let frames = st.recording.duration_s * st.recording.frame_rate_hz;
        if frames > 100_000.0 {
            return bad(
                "station.recording.duration_s",
                format!("{frames:.0} frames is more than 100000"),
            );
        }
        let [w, h] = st.camera.pixels;
        if w == 0 || h == 0 || w > 2048 || h > 2048 {
            return bad(
                "station.camera.pixels",
                format!("{w} × {h} must be within 1..=2048 each"),
            );
        }
        if let Some(v) = st.camera.view_mm {
            if v.iter().any(|x| !x.is_finite()) || v[0] < 0.0 || v[1] < 0.0 || v[2] > p.width_mm || v[3] > p.height_mm {
                return bad(
                    "station.camera.view_mm",
                    "must lie on the plate, [x0, y0, x1, y1] in mm".into(),
                );
            }
            if v[2] <= v[0] || v[3] <= v[1] {
                return bad("station.camera.view_mm", "needs x1 > x0 and y1 > y0".into());
            }
        }
        fraction("station.camera.netd_k", st.camera.netd_k, 0.0, 10.0)?;
        fraction("station.camera.fixed_pattern_k", st.camera.fixed_pattern_k, 0.0, 10.0)?;
        fraction("station.camera.drift_k_per_min", st.camera.drift_k_per_min, 0.0, 10.0)?;
        fraction("station.lamps.non_uniformity", st.lamps.non_uniformity, 0.0, 0.9)?;
        fraction(
            "station.emissivity_texture.amplitude",
            st.emissivity_texture.amplitude,
            0.0,
            0.3,
        )?;
        positive(
            "station.emissivity_texture.correlation_mm",
            st.emissivity_texture.correlation_mm,
        )?;
        positive("station.environment.ambient_k", st.environment.ambient_k)?;
        physical(
            "station.environment.ambient_k",
            st.environment.ambient_k,
            150.0,
            400.0,
            "K",
        )?;
        fraction(
            "station.environment.convection_front_w_m2k",
            st.environment.convection_front_w_m2k,
            0.0,
            1000.0,
        )?;
        fraction(
            "station.environment.convection_rear_w_m2k",
            st.environment.convection_rear_w_m2k,
            0.0,
            1000.0,
        )?;
        Ok(())
    }
}

type Invalid = (String, String);

fn bad(field: &str, reason: String) -> Result<(), Invalid> {
    Err((field.to_string(), reason))
}

fn positive(field: &str, v: f64) -> Result<(), Invalid> {
    if !v.is_finite() {
        return bad(field, format!("{v} is not a finite number"));
    }
    if v <= 0.0 {
        return bad(field, format!("must be positive, got {v}"));
    }
    Ok(())
}

/// `v` within what the physics of a station allows, in `unit` (after [`positive`], so a
/// NaN or a sign error keeps its own message).
fn physical(field: &str, v: f64, lo: f64, hi: f64, unit: &str) -> Result<(), Invalid> {
    if !(lo..=hi).contains(&v) {
        return bad(
            field,
            format!("{v} {unit} is outside what a station inspects ({lo}..={hi} {unit})"),
        );
    }
    Ok(())
}

fn fraction(field: &str, v: f64, lo: f64, hi: f64) -> Result<(), Invalid> {
    if !v.is_finite() || v < lo || v > hi {
        return bad(field, format!("must be within {lo}..={hi}, got {v}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_specimens_load() {
        for (name, _) in SHIPPED {
            let s = Specimen::load(name).unwrap();
            assert_eq!(&s.name, name);
        }
        let r = Specimen::load("gfrp-reference").unwrap();
        assert_eq!(r.holes.len(), 15);
        assert_eq!(r.surface_defects.len(), 5);
        assert!(Specimen::load("gfrp-sound").unwrap().holes.is_empty());
        assert!(!Specimen::load("cfrp-delaminations").unwrap().delaminations.is_empty());
    }

    fn error_for(edit: &str, replace: &str) -> String {
        let base = SHIPPED[0].1;
        assert!(base.contains(edit), "fixture lacks {edit:?}");
        let text = base.replacen(edit, replace, 1);
        Specimen::parse(&text, "test.toml").unwrap_err().to_string()
    }

    #[test]
    fn bad_files_name_the_field_and_reason() {
        let cases = [
            (
                "thickness_mm = 20.0",
                "thickness_mm = -1.0",
                "plate.thickness_mm: must be positive",
            ),
            (
                "thickness_mm = 20.0",
                "thickness_mm = 0.0",
                "plate.thickness_mm: must be positive",
            ),
            (
                "thickness_mm = 20.0",
                "thickness_mm = nan",
                "plate.thickness_mm: NaN is not a finite number",
            ),
            (
                "thickness_mm = 20.0",
                "thickness_mm = 20.0\ncolour = 1",
                "unknown field `colour`",
            ),
            (
                "depth_mm = 15.7",
                "depth_mm = 25.0",
                "hole[0].depth_mm: 25 mm is not less than the plate thickness",
            ),
            (
                "center_mm = [35.0, 40.0]",
                "center_mm = [2.0, 40.0]",
                "hole[0].center_mm: a 7.85 mm defect at (2, 40) mm reaches outside",
            ),
            (
                "center_mm = [35.0, 40.0]",
                "center_mm = [76.0, 40.0]",
                "hole[1].center_mm: overlaps hole[0]",
            ),
            (
                "density_kg_m3 = 1900.0",
                "density_kg_m3 = inf",
                "material.density_kg_m3: inf is not a finite number",
            ),
            // Absurd values are refused before a minute of simulation is spent on them.
            (
                "thickness_mm = 20.0",
                "thickness_mm = 1e9",
                "plate.thickness_mm: 1000000000 mm is outside what a station inspects (0.1..=200 mm)",
            ),
            (
                "density_kg_m3 = 1900.0",
                "density_kg_m3 = 1.9",
                "material.density_kg_m3: 1.9 kg/m³ is outside",
            ),
            (
                "flux_w_m2 = 4000.0",
                "flux_w_m2 = 4e9",
                "station.heating.flux_w_m2: 4000000000 W/m² is outside",
            ),
            (
                "ambient_k = 293.15",
                "ambient_k = 20.0",
                "station.environment.ambient_k: 20 K is outside",
            ),
            (
                "frame_rate_hz = 1.0",
                "frame_rate_hz = 1e5",
                "station.recording.frame_rate_hz: 100000 Hz is outside",
            ),
        ];
        for (from, to, want) in cases {
            let e = error_for(from, to);
            assert!(e.contains(want), "{from} → {to}: {e}");
            assert!(e.starts_with("test.toml"), "{e}");
        }
        assert!(matches!(
            Specimen::load("no-such-plate"),
            Err(SpecimenError::Unknown(..))
        ));
    }

    fn inclusion(fields: &str) -> Result<Specimen, SpecimenError> {
        let text = format!(
            "{}\n[[inclusion]]\n{fields}\n",
            SHIPPED[1].1.split("[station").next().unwrap()
        );
        Specimen::parse(&text, "inc.toml")
    }

    #[test]
    fn inclusions_are_checked_like_the_other_defects() {
        let ptfe = "center_mm = [100.0, 100.0]\ndiameter_mm = 12.0\ndepth_mm = 2.0\nthickness_mm = 0.5\n\
                    conductivity_w_mk = 0.25\ndensity_kg_m3 = 2200.0\nspecific_heat_j_kgk = 1000.0";
        let s = inclusion(ptfe).unwrap();
        assert_eq!(s.inclusions.len(), 1);
        assert_eq!(s.inclusions[0].rho_c(), 2.2e6);
        let cases = [
            (
                "thickness_mm = 0.5",
                "thickness_mm = 18.0",
                "inclusion[0].thickness_mm: 18 mm at 2 mm reaches the rear face",
            ),
            (
                "conductivity_w_mk = 0.25",
                "conductivity_w_mk = 0.0",
                "inclusion[0].conductivity_w_mk: must be within",
            ),
            (
                "density_kg_m3 = 2200.0",
                "density_kg_m3 = 1e9",
                "inclusion[0].density_kg_m3: must be within",
            ),
            (
                "depth_mm = 2.0",
                "depth_mm = -2.0",
                "inclusion[0].depth_mm: must be positive",
            ),
            (
                "center_mm = [100.0, 100.0]",
                "center_mm = [1.0, 100.0]",
                "inclusion[0].center_mm: a 12 mm defect",
            ),
            (
                "specific_heat_j_kgk = 1000.0",
                "specific_heat_j_kgk = 1000.0\ncolour = 2",
                "unknown field `colour`",
            ),
        ];
        for (from, to, want) in cases {
            let e = inclusion(&ptfe.replace(from, to)).unwrap_err().to_string();
            assert!(e.contains(want), "{from} → {to}: {e}");
        }
    }

    #[test]
    fn depth_readings() {
        let s = Specimen::load("gfrp-reference").unwrap();
        let mut h = s.holes[0].clone();
        h.depth_from = DepthFrom::Front;
        h.depth_mm = 4.35;
        assert_eq!(s.hole_ligament_mm(&h), 4.35);
        h.depth_from = DepthFrom::Rear;
        assert!((s.hole_ligament_mm(&h) - (s.plate.thickness_mm - 4.35)).abs() < 1e-12);
    }
}
