//! What one inspection of a part reports, and when an acquisition is too poor to decide.
//!
//! The device sends a [`Report`] (postcard) at the end of every inspection; the host twin
//! (`trainer infer`) applies the same [`AcquisitionLimits`], so both give RETEST for the
//! same recordings. A part is never PASSed on a bad acquisition: every [`Fault`] makes
//! the verdict RETEST.

use serde::{Deserialize, Serialize};

use crate::features::FeatureExtractor;
use crate::model::MAX_CLASSES;
use crate::verdict::{Findings, Region, Verdict};

/// Regions a report carries (the largest first).
pub const REPORT_REGIONS: usize = 16;

/// Why a part could not be inspected properly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Fault {
    /// The camera failed more often than the station's budget allows (CRC errors, lost
    /// segments, unreadable frames), or failed in a way it cannot recover from.
    #[error("camera failed {errors} times (budget {budget})")]
    Camera { errors: u16, budget: u16 },
    /// No frame came for too long: the part's history has a hole.
    #[error("no frame for {gap_ms} ms after {after_ms} ms (limit {limit_ms} ms)")]
    FramesMissing { after_ms: i32, gap_ms: u32, limit_ms: u32 },
    /// The recording ended (or timed out) before the model's schedule was complete.
    #[error("recording ended before feature sample {sample}")]
    RecordingShort { sample: u8 },
    /// Frames came out of order or with a time stamp that does not advance.
    #[error("frame time stamps do not advance at {t_ms} ms")]
    FrameOrder { t_ms: i32 },
    /// The lamps did not heat the part enough for the features to mean anything.
    #[error("median heating rise {median_rise_ck} cK, at least {min_rise_ck} cK needed")]
    NoHeating { median_rise_ck: u16, min_rise_ck: u16 },
    /// Too many pixel readings at the camera's floor or ceiling (saturated or dead).
    #[error("{permille} ‰ of pixel readings saturated (limit {limit_permille} ‰)")]
    Saturated { permille: u16, limit_permille: u16 },
    /// The lamp stayed on to its hard limit and the interlock switched it off.
    #[error("lamp interlock tripped")]
    LampInterlock,
    /// The lamp relay could not be driven.
    #[error("lamp relay cannot be driven")]
    LampRelay,
    /// The model blob is invalid (CRC, version, shape) or does not fit the arena.
    #[error("model blob invalid")]
    Model,
    /// The inference engine or the verdict stage refused the data (never expected with a
    /// validated model; reported instead of trusted).
    #[error("inference failed")]
    Inference,
}

/// Counters of one acquisition, from the feature extractor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Acquisition {
    /// Frames used (pre-heating included).
    pub frames: u32,
    pub pixels: u32,
    /// Pixel readings at 0 or 65535 over those frames.
    pub saturated: u32,
    /// Median rise at the first feature sample (centikelvin), 0 before it.
    pub median_rise_ck: u16,
}

impl Acquisition {
    pub fn of(fx: &FeatureExtractor<'_>, pixels: usize) -> Self {
        Acquisition {
            frames: fx.frames,
            pixels: pixels as u32,
            saturated: fx.saturated,
            median_rise_ck: fx.median_rise_ck.unwrap_or(0),
        }
    }

    /// Saturated readings per thousand readings, rounded up (one bad reading is not 0 ‰).
    pub fn saturated_permille(&self) -> u16 {
        let readings = self.frames as u64 * self.pixels as u64;
        if readings == 0 {
            return 0;
        }
        (self.saturated as u64 * 1000).div_ceil(readings).min(1000) as u16
    }
}

/// The limits below which an acquisition is not trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct AcquisitionLimits {
    /// Least median rise at the first feature sample (centikelvin). Default 50 cK
    /// (0.5 K): a Lepton's NETD is ~0.05 K, and the shipped schedules see rises of
    /// several kelvin on every simulated plate.
    pub min_rise_ck: u16,
    /// Most saturated or dead readings, per thousand. Default 5 ‰.
    pub max_saturated_permille: u16,
}

impl AcquisitionLimits {
    pub const DEFAULT: AcquisitionLimits = AcquisitionLimits {
        min_rise_ck: 50,
        max_saturated_permille: 5,
    };

    /// The heating check alone, as soon as the first sample is known.
    pub fn check_heating(&self, median_rise_ck: u16) -> Result<(), Fault> {
        if median_rise_ck < self.min_rise_ck {
            return Err(Fault::NoHeating {
                median_rise_ck,
                min_rise_ck: self.min_rise_ck,
            });
        }
        Ok(())
    }

    pub fn check(&self, a: &Acquisition) -> Result<(), Fault> {
        self.check_heating(a.median_rise_ck)?;
        let permille = a.saturated_permille();
        if permille > self.max_saturated_permille {
            return Err(Fault::Saturated {
                permille,
                limit_permille: self.max_saturated_permille,
            });
        }
        Ok(())
    }
}

impl Default for AcquisitionLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Stages of one inspection, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Stage {
    /// Frame capture (on the emulated board: reading and converting recorded frames).
    Camera,
    /// Streaming feature extraction, every frame.
    Features,
    /// The int8 network over the feature image, and the argmax per pixel.
    Inference,
    /// Defect regions and the decision.
    Verdict,
}

impl Stage {
    pub const ALL: [Stage; 4] = [Stage::Camera, Stage::Features, Stage::Inference, Stage::Verdict];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Camera => "camera",
            Stage::Features => "features",
            Stage::Inference => "inference",
            Stage::Verdict => "verdict",
        }
    }
}

/// Fault counters of one inspection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Counters {
    /// Camera errors (each a frame lost).
    pub camera_errors: u16,
    /// Longest time between two frames (ms).
    pub longest_gap_ms: u32,
    /// Times the watchdog was fed (progress made).
    pub watchdog_feeds: u32,
}

/// Everything the device says about one part.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub verdict: Verdict,
    pub fault: Option<Fault>,
    /// The largest defect regions, largest first.
    pub regions: heapless::Vec<Region, REPORT_REGIONS>,
    /// Regions found, including those not listed.
    pub region_count: u32,
    pub class_pixels: [u32; MAX_CLASSES],
    pub acquisition: Acquisition,
    pub counters: Counters,
    /// CPU cycles per stage (see [`Stage::ALL`]; on QEMU with `-icount shift=0`,
    /// instructions).
    pub stage_cycles: [u64; 4],
    /// CRC-32 of the model blob's payload that decided (0 when no valid model).
    pub model_crc: u32,
}

impl Report {
    /// A report for a part that ended in `fault` before any decision.
    pub fn retest(fault: Fault) -> Self {
        Report {
            verdict: Verdict::Retest,
            fault: Some(fault),
            regions: heapless::Vec::new(),
            region_count: 0,
            class_pixels: [0; MAX_CLASSES],
            acquisition: Acquisition::default(),
            counters: Counters::default(),
            stage_cycles: [0; 4],
            model_crc: 0,
        }
    }

    /// Copies the findings of the class map in (keeping the report's fault, if any: a
    /// fault always means RETEST).
    pub fn set_findings<const N: usize>(&mut self, findings: &Findings<N>) {
        self.regions.clear();
        for r in findings.regions.iter().take(REPORT_REGIONS) {
            // Cannot fail: at most REPORT_REGIONS are taken.
            let _ = self.regions.push(*r);
        }
        self.region_count = findings.region_count;
        self.class_pixels = findings.class_pixels;
        self.verdict = if self.fault.is_some() {
            Verdict::Retest
        } else {
            findings.verdict
        };
    }

    /// The postcard encoding into `out`; the used prefix.
    pub fn encode<'b>(&self, out: &'b mut [u8]) -> Result<&'b mut [u8], postcard::Error> {
        postcard::to_slice(self, out)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(bytes)
    }
}

/// Longest postcard encoding of a [`Report`] (varints at their widest), for buffers.
pub const REPORT_MAX_BYTES: usize = 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_round_trips_through_postcard() {
        let mut r = Report::retest(Fault::Saturated {
            permille: 7,
            limit_permille: 5,
        });
        for k in 0..REPORT_REGIONS {
            r.regions
                .push(Region {
                    class: 1 + (k % 2) as u8,
                    pixels: u32::MAX,
                    min_x: u16::MAX,
                    min_y: u16::MAX,
                    max_x: u16::MAX,
                    max_y: u16::MAX,
                    sum_x: u64::MAX,
                    sum_y: u64::MAX,
                    depth_um: Some(u32::MAX),
                })
                .unwrap();
        }
        r.stage_cycles = [u64::MAX; 4];
        r.acquisition.frames = u32::MAX;
        r.counters.longest_gap_ms = u32::MAX;
        let mut buf = [0u8; REPORT_MAX_BYTES];
        let used = r.encode(&mut buf).unwrap().len();
        assert!(used <= REPORT_MAX_BYTES, "{used} bytes");
        assert_eq!(Report::decode(&buf[..used]).unwrap(), r);
    }

    #[test]
    fn limits_refuse_weak_heating_and_saturation_but_pass_a_good_acquisition() {
        let lim = AcquisitionLimits::DEFAULT;
        let good = Acquisition {
            frames: 100,
            pixels: 1000,
            saturated: 500, // exactly 5 ‰
            median_rise_ck: 50,
        };
        assert_eq!(lim.check(&good), Ok(()));
        let cold = Acquisition {
            median_rise_ck: 49,
            ..good
        };
        assert!(matches!(
            lim.check(&cold),
            Err(Fault::NoHeating { median_rise_ck: 49, .. })
        ));
        let hot = Acquisition { saturated: 501, ..good };
        assert!(matches!(lim.check(&hot), Err(Fault::Saturated { permille: 6, .. })));
        let one = Acquisition { saturated: 1, ..good };
        assert_eq!(one.saturated_permille(), 1);
    }

    #[test]
    fn a_fault_keeps_the_verdict_at_retest_whatever_the_map_says() {
        let mut r = Report::retest(Fault::LampInterlock);
        let f: Findings<4> = Findings {
            regions: heapless::Vec::new(),
            region_count: 0,
            class_pixels: [0; MAX_CLASSES],
            verdict: Verdict::Pass,
        };
        r.set_findings(&f);
        assert_eq!(r.verdict, Verdict::Retest);
        r.fault = None;
        r.set_findings(&f);
        assert_eq!(r.verdict, Verdict::Pass);
    }
}

/// What the emulated board's Lepton link injected in one run of a camera fault campaign:
/// the board writes it to `injected.u32` (nine little-endian `u32`, in field order), the
/// host reads it back with the same type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InjectedFaults {
    /// Frames the link began to send.
    pub frames: u32,
    pub discards: u32,
    pub crc_errors: u32,
    pub skipped: u32,
    pub repeated: u32,
    pub invalid_segments: u32,
    /// Frames whose last segments never came.
    pub truncated: u32,
    /// Resyncs the driver asked for.
    pub resyncs: u32,
    /// Recorded frames that could not be read (non-finite values): never sent.
    pub unreadable: u32,
}

impl InjectedFaults {
    pub const BYTES: usize = 36;

    fn words(&self) -> [u32; 9] {
        [
            self.frames,
            self.discards,
            self.crc_errors,
            self.skipped,
            self.repeated,
            self.invalid_segments,
            self.truncated,
            self.resyncs,
            self.unreadable,
        ]
    }

    pub fn to_bytes(&self) -> [u8; Self::BYTES] {
        let mut bytes = [0u8; Self::BYTES];
        for (b, w) in bytes.chunks_exact_mut(4).zip(self.words()) {
            b.copy_from_slice(&w.to_le_bytes());
        }
        bytes
    }

    /// `None` unless `bytes` holds exactly the nine counters.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; Self::BYTES] = bytes.try_into().ok()?;
        let (words, _) = bytes.as_chunks::<4>();
        let [
            frames,
            discards,
            crc_errors,
            skipped,
            repeated,
            invalid_segments,
            truncated,
            resyncs,
            unreadable,
        ] = core::array::from_fn(|i| words.get(i).map_or(0, |w| u32::from_le_bytes(*w)));
        Some(InjectedFaults {
            frames,
            discards,
            crc_errors,
            skipped,
            repeated,
            invalid_segments,
            truncated,
            resyncs,
            unreadable,
        })
    }

    /// Faults that damage a frame or its order (discard packets are not faults).
    pub fn faults(&self) -> u32 {
        self.crc_errors + self.skipped + self.repeated + self.invalid_segments + self.truncated
    }
}

#[cfg(test)]
mod injected_tests {
    use super::InjectedFaults;

    #[test]
    fn injected_faults_round_trip_and_refuse_other_lengths() {
        let i = InjectedFaults {
            frames: 601,
            discards: 7,
            crc_errors: 3,
            skipped: 2,
            repeated: 1,
            invalid_segments: 4,
            truncated: 5,
            resyncs: 9,
            unreadable: 6,
        };
        let bytes = i.to_bytes();
        assert_eq!(&bytes[..4], &601u32.to_le_bytes());
        assert_eq!(InjectedFaults::from_bytes(&bytes), Some(i));
        assert_eq!(InjectedFaults::from_bytes(&bytes[..35]), None);
        assert_eq!(i.faults(), 3 + 2 + 1 + 4 + 5);
    }
}
