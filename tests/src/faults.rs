//! Camera fault campaigns on the emulated board. The recording goes through the emulated
//! Lepton link with faults drawn from a seed (discard packets, CRC errors, skipped and
//! repeated packets, invalid segments, frames cut short) to the real VoSPI driver and
//! state machine; every run is then checked against the host twin run on exactly the
//! frames the station received:
//! - a decision (PASS / FAIL) only when those frames have no hole longer than the
//!   station allows and the camera stayed within its error budget, and then the class
//!   map, the regions and the acquisition counters are the host twin's on those frames;
//! - a RETEST names what those frames show: the hole (the first gap beyond the limit,
//!   to the millisecond), the camera's errors, a recording cut short, or the acquisition
//!   limit the host twin finds too;
//! - the report's longest gap is the longest gap between the frames received.

use tqc_data::sequence::Sequence;
use tqc_shared::features::{FeatureError, seconds_to_ms};
use tqc_shared::inspection::{AcquisitionLimits, Fault};
use tqc_shared::verdict::{Verdict, VerdictConfig};

use crate::emulator::StationRun;

/// Lost frames a part may have: the station's default budget (`StationConfig::DEFAULT`
/// in `firmware/station`, a crate of the firmware workspace).
pub const CAMERA_ERROR_BUDGET: u16 = 4;

/// The longest hole between frames the emulated board allows for a recording: three
/// frame periods, at least 500 ms (as `firmware/qemu/src/bin/station.rs` sets it).
pub fn max_frame_gap_ms(seq: &Sequence) -> i64 {
    let (Some(first), Some(last)) = (seq.times.first(), seq.times.last()) else {
        return 500;
    };
    let n = seq.times.len() as i64;
    let period = ((seconds_to_ms(*last) - seconds_to_ms(*first)) / (n - 1).max(1)).max(1);
    (3 * period).max(500)
}

/// How one run ended, once checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Decided(Verdict),
    Retest(Fault),
}

/// Checks one run made with camera faults against `seq` (the recording it played) and
/// `blob` (the model it ran); what went wrong, in words, as the error.
pub fn check(run: &StationRun, seq: &Sequence, blob: &[u8]) -> Result<Outcome, String> {
    let delivered = run
        .delivered_ms
        .as_deref()
        .ok_or("the run was made without camera faults")?;
    // The frames received, as indices of the recording, in order.
    let mut indices = Vec::with_capacity(delivered.len());
    let mut from = 0;
    for &ms in delivered {
        let k = (from..seq.frames)
            .find(|&k| seconds_to_ms(seq.times[k]) == ms as i64)
            .ok_or_else(|| {
                format!("the station received a frame at {ms} ms the recording does not have after frame {from}")
            })?;
        indices.push(k);
        from = k + 1;
    }
    let longest = delivered.windows(2).map(|w| (w[1] - w[0]) as i64).max().unwrap_or(0);
    if run.report.counters.longest_gap_ms as i64 != longest {
        return Err(format!(
            "report's longest gap {} ms, the frames received have {longest} ms",
            run.report.counters.longest_gap_ms
        ));
    }
    let limit = max_frame_gap_ms(seq);
    let plane = seq.height * seq.width;
    let received = Sequence {
        frames: indices.len(),
        height: seq.height,
        width: seq.width,
        data: indices
            .iter()
            .flat_map(|&k| seq.data[k * plane..(k + 1) * plane].iter().copied())
            .collect(),
        times: indices.iter().map(|&k| seq.times[k]).collect(),
        labels: None,
        depth_mm: None,
    };
    let host = host_twin(blob, &received);
    let errors = run.report.counters.camera_errors;
    match run.report.fault {
        None => {
            if longest > limit || errors > CAMERA_ERROR_BUDGET {
                return Err(format!(
                    "{:?} with a {longest} ms hole (limit {limit}) and {errors} camera errors (budget {CAMERA_ERROR_BUDGET})",
                    run.report.verdict
                ));
            }
            let host = host.map_err(|e| {
                format!(
                    "{:?}, but the host twin on the frames received: {e}",
                    run.report.verdict
                )
            })?;
            if host.fault.is_some() || host.findings.verdict != run.report.verdict {
                return Err(format!(
                    "device {:?}, host twin {:?} ({:?})",
                    run.report.verdict, host.findings.verdict, host.fault
                ));
            }
            let device = run.classes.as_deref().ok_or("a decision without a class map")?;
            let differ = device.iter().zip(&host.classes).filter(|(a, b)| a != b).count();
            if differ > 0 || device.len() != host.classes.len() {
                return Err(format!("class maps differ on {differ} pixels"));
            }
            if run.report.acquisition != host.acquisition
                || run.report.region_count != host.findings.region_count
                || run.report.regions[..] != host.findings.regions[..run.report.regions.len()]
            {
                return Err(format!(
                    "report {:?} / {} regions, host twin {:?} / {}",
                    run.report.acquisition, run.report.region_count, host.acquisition, host.findings.region_count
                ));
            }
            Ok(Outcome::Decided(run.report.verdict))
        }
        Some(fault) => {
            if run.report.verdict != Verdict::Retest {
                return Err(format!("{:?} with fault {fault:?}", run.report.verdict));
            }
            let explained = match fault {
                Fault::FramesMissing { after_ms, gap_ms, .. } => {
                    let first = delivered.windows(2).find(|w| (w[1] - w[0]) as i64 > limit);
                    first.is_some_and(|w| w[0] == after_ms && (w[1] - w[0]) as u32 == gap_ms)
                }
                Fault::Camera { errors: e, .. } => e > CAMERA_ERROR_BUDGET,
                Fault::RecordingShort { .. } => {
                    matches!(
                        host,
                        Err(tqc_eval::infer::InferError::Features(FeatureError::TooShort { .. }))
                    ) || longest > limit
                }
                Fault::NoHeating { .. } | Fault::Saturated { .. } => host
                    .as_ref()
                    .is_ok_and(|h| h.fault.map(|f| std::mem::discriminant(&f)) == Some(std::mem::discriminant(&fault))),
                _ => false,
            };
            if !explained {
                return Err(format!(
                    "RETEST for {fault:?}, not what the frames received show: longest hole {longest} ms (limit {limit}), {errors} camera errors"
                ));
            }
            Ok(Outcome::Retest(fault))
        }
    }
}

/// The host twin with the station's defaults.
fn host_twin(blob: &[u8], seq: &Sequence) -> Result<tqc_eval::infer::Inference, tqc_eval::infer::InferError> {
    tqc_eval::infer::infer(blob, seq, &VerdictConfig::DEFAULT, &AcquisitionLimits::DEFAULT)
}
