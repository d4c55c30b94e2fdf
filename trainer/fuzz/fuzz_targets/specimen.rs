//! Specimen files (TOML) through parsing and every physical check: any text is a
//! specimen that passed them or a typed error naming a field, never a panic; an
//! accepted specimen keeps its values within the bounds that make a simulation finish.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tqc_data::specimen::Specimen;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Specimen::parse(text, "fuzz.toml") {
        Ok(s) => {
            assert!(s.plate.thickness_mm > 0.0 && s.plate.thickness_mm <= 200.0);
            assert!(s.station.recording.duration_s * s.station.recording.frame_rate_hz <= 100_000.0);
            // Derived quantities the simulator uses stay finite.
            assert!(s.material.diffusivity_z().is_finite());
            assert!(s.view_mm().iter().all(|v| v.is_finite()));
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
        }
    }
});
