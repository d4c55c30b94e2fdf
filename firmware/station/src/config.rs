//! How a station runs an inspection. The defaults are those of the reference station
//! (docs/architecture.md: a Lepton 3.5 at up to 8.7 Hz, halogen lamps on a 30 s step); the boards
//! adjust what their camera dictates (the emulated board takes the recording's frame
//! period and pre-heating frames).

use tqc_shared::inspection::AcquisitionLimits;
use tqc_shared::verdict::VerdictConfig;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct StationConfig {
    /// Frames averaged into the cold reference before the lamp switches on.
    pub preheat_frames: u16,
    /// Programmed lamp on-time.
    pub heating_ms: u32,
    /// A frame later than this after the previous one is a hole in the part's history:
    /// RETEST.
    pub max_frame_gap_ms: u32,
    /// Lost frames a part may have before it is RETEST.
    pub camera_error_budget: u16,
    /// How long after the end of the model's last feature window the recording may run
    /// before it is declared short.
    pub record_margin_ms: u32,
    pub limits: AcquisitionLimits,
    pub verdict: VerdictConfig,
}

impl StationConfig {
    pub const DEFAULT: StationConfig = StationConfig {
        preheat_frames: 10,
        heating_ms: 30_000,
        max_frame_gap_ms: 2_500,
        camera_error_budget: 4,
        record_margin_ms: 5_000,
        limits: AcquisitionLimits::DEFAULT,
        verdict: VerdictConfig::DEFAULT,
    };
}

impl Default for StationConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}
