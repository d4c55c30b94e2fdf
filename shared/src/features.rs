//! Per-pixel thermal features, computed from the frame stream as it arrives — the same
//! code on the device and in the trainer.
//!
//! Frames come as radiometric `u16` centikelvin (a Lepton 3.5 in TLinear mode; the host
//! converts kelvin with [`kelvin_to_centikelvin`]) with their time in ms from the start
//! of heating (pre-heating frames negative). The extractor keeps:
//! - the **cold reference**: the mean of the pre-heating frames, per pixel;
//! - the **rise** ΔT averaged over a window around each scheduled time `t_k`
//!   (`t_k ± window_permille/1000 · t_k`; a window that no frame falls in takes the first
//!   frame after it, so any frame rate works).
//!
//! Channels of the int8 feature image (HWC, `times.len()` channels):
//! - channel 0, **amplitude**: ΔT(t₀) over the mean ΔT(t₀) of the square window of
//!   `amplitude_window_px` around the pixel (or over the image median when that is 0) —
//!   what surface spots change; a window a few defects wide cancels the lamp's smooth
//!   non-uniformity, which the image median leaves in;
//! - channel k ≥ 1, **shape**: ΔT(t_k) / ΔT(t₀) of the same pixel — emissivity, lamp
//!   intensity and absorptivity scale a pixel's whole history, so they cancel; what lies
//!   below the surface changes how it cools.
//!
//! Ratios are Q12 fixed point and quantized to int8 with the model's input quantization
//! through the engine's own requantization, so host and device agree bit for bit.
//! Memory: 10 bytes per pixel of state plus the feature image (one byte per channel).

use serde::{Deserialize, Serialize};

use crate::model::QuantParams;
use crate::quant::{Prepared, quantize_multiplier};

/// Most feature channels.
pub const MAX_FEATURES: usize = 16;
/// Fractional bits of the ratios.
pub const RATIO_BITS: u32 = 12;

/// The feature schedule, stored in the model blob's input spec.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureSpec {
    /// Sample times in ms after the start of heating, strictly increasing; the first is
    /// the reference of the shape channels.
    pub times_ms: heapless::Vec<u32, MAX_FEATURES>,
    /// Half-width of each averaging window relative to its time (‰).
    pub window_permille: u16,
    /// Side of the square window (pixels, odd) whose mean rise the amplitude channel is
    /// relative to; 0 takes the image median instead. A window a few times wider than
    /// the defects removes the lamp's smooth non-uniformity and keeps the spots.
    #[serde(default)]
    pub amplitude_window_px: u16,
}

/// Widest amplitude window: its sums of centikelvin stay within `i32`.
pub const MAX_AMPLITUDE_WINDOW: u16 = 81;

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FeatureError {
    #[error("feature schedule: {0}")]
    Schedule(&'static str),
    #[error("{what} holds {found} values, expected {expected}")]
    Buffer {
        what: &'static str,
        expected: usize,
        found: usize,
    },
    #[error("frame at {t_ms} ms is not after the previous one ({previous_ms} ms)")]
    Time { t_ms: i64, previous_ms: i64 },
    #[error("the heating started before any pre-heating frame: no cold reference")]
    NoColdFrames,
    #[error("the recording ended before sample {sample} at {t_ms} ms")]
    TooShort { sample: usize, t_ms: u32 },
    #[error("input quantization cannot represent the features")]
    Quantization,
    #[error("frame width {width} does not divide the {pixels} pixels of a frame")]
    Width { width: usize, pixels: usize },
}

impl FeatureSpec {
    /// Log-spaced times from `first_ms` to `last_ms`, `channels` of them.
    pub fn log_spaced(
        first_ms: u32,
        last_ms: u32,
        channels: usize,
        window_permille: u16,
    ) -> Result<Self, FeatureError> {
        let mut times_ms = heapless::Vec::new();
        for k in 0..channels {
            let f = if channels > 1 {
                k as f64 / (channels - 1) as f64
            } else {
                0.0
            };
            let t = first_ms as f64 * libm::pow(last_ms as f64 / first_ms as f64, f);
            times_ms
                .push(libm::round(t) as u32)
                .map_err(|_| FeatureError::Schedule("more than 16 channels"))?;
        }
        let s = FeatureSpec {
            times_ms,
            window_permille,
            amplitude_window_px: 0,
        };
        s.check()?;
        Ok(s)
    }

    pub fn channels(&self) -> usize {
        self.times_ms.len()
    }

    /// Window `[start, end]` of sample `k` in ms.
    pub fn window(&self, k: usize) -> (i64, i64) {
        // Past the schedule: the last window (callers stop at the last sample).
        let t = self.times_ms.get(k).or(self.times_ms.last()).map_or(0, |&t| t as i64);
        let half = t * self.window_permille as i64 / 1000;
        (t - half, t + half)
    }

    pub fn check(&self) -> Result<(), FeatureError> {
        let n = self.times_ms.len();
        if n < 2 {
            return Err(FeatureError::Schedule("needs at least two sample times"));
        }
        if self.window_permille == 0 || self.window_permille > 450 {
            return Err(FeatureError::Schedule("window must be within 1..=450 ‰"));
        }
        let a = self.amplitude_window_px;
        if a != 0 && (a.is_multiple_of(2) || !(3..=MAX_AMPLITUDE_WINDOW).contains(&a)) {
            return Err(FeatureError::Schedule(
                "amplitude window must be 0 (image median) or odd within 3..=81 pixels",
            ));
        }
        if self.times_ms[0] == 0 {
            return Err(FeatureError::Schedule(
                "sample times must be after the start of heating",
            ));
        }
        for k in 1..n {
            if self.times_ms[k] <= self.times_ms[k - 1] {
                return Err(FeatureError::Schedule("sample times must increase"));
            }
            if self.window(k).0 <= self.window(k - 1).1 {
                return Err(FeatureError::Schedule("averaging windows overlap"));
            }
        }
        Ok(())
    }
}

/// A recording's time stamp (seconds from the start of heating) as the extractor's
/// milliseconds, rounded to nearest.
pub fn seconds_to_ms(s: f64) -> i64 {
    libm::round(s * 1000.0) as i64
}

/// Kelvin to Lepton TLinear centikelvin, rounded and clamped to `u16`.
pub fn kelvin_to_centikelvin(k: f32) -> u16 {
    let v = libm::roundf(k * 100.0);
    if v.is_nan() { 0 } else { v.clamp(0.0, 65535.0) as u16 }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Cold,
    Heating,
    Done,
}

/// Streaming feature extraction over caller-provided buffers.
pub struct FeatureExtractor<'a> {
    spec: &'a FeatureSpec,
    pixels: usize,
    /// Pixels per row, for the amplitude window.
    width: usize,
    /// Sum of the pre-heating frames, then their mean (centikelvin).
    cold: &'a mut [u32],
    /// Sum of rises (centikelvin) in the current window.
    window: &'a mut [i32],
    /// Mean rise at the reference time, at least 1 centikelvin.
    reference: &'a mut [u16],
    /// The feature image, HWC.
    features: &'a mut [i8],
    requant: Prepared,
    zero_point: i32,
    phase: Phase,
    cold_frames: u32,
    sample: usize,
    in_window: u32,
    last_ms: Option<i64>,
    /// Pixels read at 0 or 65535 (saturated or dead) since the start.
    pub saturated: u32,
    /// Frames pushed since the start (pre-heating ones included).
    pub frames: u32,
    /// Median rise of the image at the reference time (centikelvin), once known: how
    /// strongly the lamps heated the part.
    pub median_rise_ck: Option<u16>,
}

impl<'a> FeatureExtractor<'a> {
    /// Frames are `width` pixels wide; `cold`, `window`, `reference` hold one value per
    /// pixel, `features` one byte per pixel and channel.
    pub fn new(
        spec: &'a FeatureSpec,
        input: QuantParams,
        width: usize,
        cold: &'a mut [u32],
        window: &'a mut [i32],
        reference: &'a mut [u16],
        features: &'a mut [i8],
    ) -> Result<Self, FeatureError> {
        spec.check()?;
        let pixels = cold.len();
        if width == 0 || !pixels.is_multiple_of(width) {
            return Err(FeatureError::Width { width, pixels });
        }
        for (what, found) in [("window buffer", window.len()), ("reference buffer", reference.len())] {
            if found != pixels {
                return Err(FeatureError::Buffer {
                    what,
                    expected: pixels,
                    found,
                });
            }
        }
        if features.len() != pixels * spec.channels() {
            return Err(FeatureError::Buffer {
                what: "feature image",
                expected: pixels * spec.channels(),
                found: features.len(),
            });
        }
        // int8 = ratio_q12 / (4096 · scale) + zero point, with the engine's arithmetic.
        let real = 1.0 / (input.scale as f64 * (1u32 << RATIO_BITS) as f64);
        let rq = quantize_multiplier(real).map_err(|_| FeatureError::Quantization)?;
        let requant = Prepared::new(rq).ok_or(FeatureError::Quantization)?;
        cold.fill(0);
        window.fill(0);
        reference.fill(0);
        features.fill(0);
        Ok(FeatureExtractor {
            spec,
            pixels,
            width,
            cold,
            window,
            reference,
            features,
            requant,
            zero_point: input.zero_point as i32,
            phase: Phase::Cold,
            cold_frames: 0,
            sample: 0,
            in_window: 0,
            last_ms: None,
            saturated: 0,
            frames: 0,
            median_rise_ck: None,
        })
    }

    pub fn is_complete(&self) -> bool {
        self.phase == Phase::Done
    }

    /// The feature image (complete once [`Self::is_complete`]).
    pub fn features(&self) -> &[i8] {
        self.features
    }

    /// A Q12 ratio (as its deviation from 1) to the input's int8.
    fn quantizer(&self) -> impl Fn(i32) -> i8 + use<> {
        let (requant, zero_point) = (self.requant, self.zero_point);
        move |ratio_q12| {
            let v = crate::quant::multiply_prepared(ratio_q12, requant).saturating_add(zero_point);
            v.clamp(-128, 127) as i8
        }
    }

    /// Closes the current sample window into its feature channel.
    fn close_window(&mut self) {
        let k = self.sample;
        let n = self.in_window.max(1) as i64;
        let channels = self.spec.channels();
        let quantize = self.quantizer();
        if k == 0 {
            for (r, &s) in self.reference.iter_mut().zip(self.window.iter()) {
                let mean = (s as i64 + n / 2).div_euclid(n);
                *r = mean.clamp(1, u16::MAX as i64) as u16;
            }
            let median = median_u16(self.reference) as i64;
            self.median_rise_ck = Some(median as u16);
            if self.spec.amplitude_window_px == 0 {
                for (f, &r) in self
                    .features
                    .chunks_exact_mut(channels.max(1))
                    .zip(self.reference.iter())
                {
                    let ratio = ((r as i64) << RATIO_BITS) / median.max(1);
                    if let Some(f) = f.first_mut() {
                        *f = quantize(deviation(ratio));
                    }
                }
            } else {
                self.local_amplitude();
            }
        } else {
            // The window sums are done with: the buffer takes the ratios.
            for (w, &r) in self.window.iter_mut().zip(self.reference.iter()) {
                let mean = (*w as i64 + n / 2).div_euclid(n);
                let ratio = (mean << RATIO_BITS) / (r as i64).max(1);
                *w = ratio.clamp(i32::MIN as i64, i32::MAX as i64) as i32;
            }
            // Relative to the plate's own median: material, thickness and time since the
            // heating shift every pixel's cooling alike; a defect shifts its own.
            let median = (median_i32(self.window) as i64).max(1);
            for (f, &w) in self.features.chunks_exact_mut(channels.max(1)).zip(self.window.iter()) {
                let relative = ((w as i64) << RATIO_BITS) / median;
                if let Some(f) = f.get_mut(k) {
                    *f = quantize(deviation(relative));
                }
            }
        }
        self.window.fill(0);
        self.in_window = 0;
        self.sample += 1;
        if self.sample == channels {
            self.phase = Phase::Done;
        }
    }

    /// Channel 0 as each pixel's rise over the mean rise of the square window around it,
    /// clipped at the image border. Separable box sums: rows into `window` (free between
    /// samples), then a running sum down each column, so it needs no memory of its own.
    fn local_amplitude(&mut self) {
        let w = self.width.max(1);
        let h = self.pixels / w;
        let r = (self.spec.amplitude_window_px / 2) as usize;
        let channels = self.spec.channels();
        let quantize = self.quantizer();
        // Row sums over [x − r, x + r], clipped.
        for (row, sums) in self.reference.chunks_exact(w).zip(self.window.chunks_exact_mut(w)) {
            let mut s: i32 = row.iter().take(r + 1).map(|&v| v as i32).sum();
            for (x, sum) in sums.iter_mut().enumerate() {
                *sum = s;
                if let Some(&v) = row.get(x + r + 1) {
                    s += v as i32;
                }
                if let Some(&v) = x.checked_sub(r).and_then(|i| row.get(i)) {
                    s -= v as i32;
                }
            }
        }
        // Then down each column: the box sum of the rows [y − r, y + r], clipped.
        let column = |x: usize, y: usize| self.window.get(y * w + x).map_or(0, |&v| v as i64);
        for x in 0..w {
            let cols = ((x + r + 1).min(w) - x.saturating_sub(r)) as i64;
            let mut s: i64 = (0..(r + 1).min(h)).map(|y| column(x, y)).sum();
            for y in 0..h {
                let rows = ((y + r + 1).min(h) - y.saturating_sub(r)) as i64;
                let p = y * w + x;
                let reference = self.reference.get(p).map_or(0, |&v| v as i64);
                let ratio = (reference << RATIO_BITS) * cols * rows / s.max(1);
                if let Some(f) = self.features.get_mut(p * channels) {
                    *f = quantize(deviation(ratio));
                }
                if y + r + 1 < h {
                    s += column(x, y + r + 1);
                }
                if y >= r {
                    s -= column(x, y - r);
                }
            }
        }
    }

    /// Adds one frame (centikelvin, row-major) taken `t_ms` after the start of heating.
    pub fn push_frame(&mut self, t_ms: i64, frame: &[u16]) -> Result<(), FeatureError> {
        if frame.len() != self.pixels {
            return Err(FeatureError::Buffer {
                what: "frame",
                expected: self.pixels,
                found: frame.len(),
            });
        }
        if let Some(previous_ms) = self.last_ms
            && t_ms <= previous_ms
        {
            return Err(FeatureError::Time { t_ms, previous_ms });
        }
        self.last_ms = Some(t_ms);
        self.frames += 1;
        self.saturated += frame.iter().filter(|&&v| v == 0 || v == u16::MAX).count() as u32;
        if t_ms < 0 {
            if self.phase == Phase::Cold {
                for (c, &v) in self.cold.iter_mut().zip(frame) {
                    *c += v as u32;
                }
                self.cold_frames += 1;
            }
            return Ok(());
        }
        if self.phase == Phase::Cold {
            if self.cold_frames == 0 {
                return Err(FeatureError::NoColdFrames);
            }
            let n = self.cold_frames;
            for c in self.cold.iter_mut() {
                *c = (*c + n / 2) / n;
            }
            self.phase = Phase::Heating;
        }
        while self.phase == Phase::Heating {
            let (start, end) = self.spec.window(self.sample);
            if t_ms < start {
                return Ok(());
            }
            if t_ms > end && self.in_window > 0 {
                self.close_window();
                continue;
            }
            // Inside the window, or the first frame after an empty one.
            for ((s, &v), &c) in self.window.iter_mut().zip(frame).zip(self.cold.iter()) {
                *s += v as i32 - c as i32;
            }
            self.in_window += 1;
            if t_ms >= end {
                self.close_window();
            }
            return Ok(());
        }
        Ok(())
    }

    /// Ends the recording: closes a window that has frames; an unfinished schedule is an
    /// error naming the first sample that never came.
    pub fn finish(&mut self) -> Result<(), FeatureError> {
        if self.phase == Phase::Heating && self.in_window > 0 {
            self.close_window();
        }
        if self.phase != Phase::Done {
            let k = self.sample.min(self.spec.channels().saturating_sub(1));
            return Err(FeatureError::TooShort {
                sample: k,
                t_ms: self.spec.times_ms.get(k).copied().unwrap_or(0),
            });
        }
        Ok(())
    }
}

/// A Q12 ratio to the plate's median as the deviation from it (ratio − 1), in i32: the
/// typical pixel is 0, which is also what zero padding at the image border means.
fn deviation(ratio_q12: i64) -> i32 {
    (ratio_q12 - (1 << RATIO_BITS)).clamp(i32::MIN as i64, i32::MAX as i64) as i32
}

/// Exact median (lower middle) of `values` without sorting or allocating, as
/// [`median_u16`].
pub fn median_i32(values: &[i32]) -> i32 {
    if values.is_empty() {
        return 0;
    }
    let target = (values.len() - 1) / 2;
    let (mut lo, mut hi) = (i32::MIN as i64, i32::MAX as i64);
    while lo < hi {
        let mid = (lo + hi).div_euclid(2);
        let at_most = values.iter().filter(|&&v| v as i64 <= mid).count();
        if at_most > target { hi = mid } else { lo = mid + 1 }
    }
    lo as i32
}

/// Exact median (lower middle) of `values` without sorting or allocating: a binary search
/// on the value, counting.
pub fn median_u16(values: &[u16]) -> u16 {
    if values.is_empty() {
        return 0;
    }
    let target = (values.len() - 1) / 2;
    let (mut lo, mut hi) = (0u32, u16::MAX as u32);
    while lo < hi {
        let mid = (lo + hi) / 2;
        let at_most = values.iter().filter(|&&v| v as u32 <= mid).count();
        if at_most > target { hi = mid } else { lo = mid + 1 }
    }
    lo as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    extern crate std;
    use std::vec;
    use std::vec::Vec;

    fn spec() -> FeatureSpec {
        FeatureSpec::log_spaced(2_000, 64_000, 6, 100).unwrap()
    }

    #[test]
    fn schedule_checks() {
        let s = spec();
        assert_eq!(s.times_ms.as_slice(), [2000, 4000, 8000, 16000, 32000, 64000]);
        assert!(
            FeatureSpec::log_spaced(2_000, 2_100, 4, 100).is_err(),
            "overlapping windows"
        );
        let mut bad = s.clone();
        bad.window_permille = 0;
        assert!(bad.check().is_err());
    }

    #[test]
    fn median_is_exact() {
        assert_eq!(median_u16(&[5, 1, 9, 3, 7]), 5);
        assert_eq!(median_u16(&[4, 1, 3, 2]), 2);
        assert_eq!(median_u16(&[65535]), 65535);
        let v: Vec<u16> = (0..1001).map(|i| ((i * 7919) % 1001) as u16).collect();
        assert_eq!(median_u16(&v), 500);
        assert_eq!(median_i32(&[5, -1, 9, -3, 7]), 5);
        assert_eq!(median_i32(&[i32::MIN, i32::MAX, -4]), -4);
        assert_eq!(median_i32(&[i32::MAX]), i32::MAX);
        let w: Vec<i32> = (0..1001).map(|i: i32| (i * 7919) % 1001 - 700).collect();
        assert_eq!(median_i32(&w), -200);
    }

    /// A synthetic recording: pixel 0 cools like a semi-infinite body after a pulse, pixel
    /// 1 the same at twice the emissivity-scaled amplitude, pixel 2 cools slower.
    fn run(frame_ms: i64, quant: QuantParams) -> Result<Vec<i8>, FeatureError> {
        let s = spec();
        let (mut cold, mut window, mut reference, mut features) =
            (vec![0u32; 3], vec![0i32; 3], vec![0u16; 3], vec![0i8; 18]);
        let mut fx = FeatureExtractor::new(&s, quant, 3, &mut cold, &mut window, &mut reference, &mut features)?;
        let mut t = -5 * frame_ms;
        while t <= 80_000 {
            let rise = |a: f64, tau: f64| if t <= 0 { 0.0 } else { a / (1.0 + t as f64 / tau).sqrt() };
            let frame = [
                29315 + rise(1000.0, 2000.0) as u16,
                29315 + rise(2000.0, 2000.0) as u16,
                29315 + rise(1000.0, 8000.0) as u16,
            ];
            fx.push_frame(t, &frame)?;
            t += frame_ms;
        }
        fx.finish()?;
        assert!(fx.is_complete());
        Ok(fx.features().to_vec())
    }

    #[test]
    fn features_cancel_emissivity_and_see_slow_cooling() {
        let quant = QuantParams {
            scale: 1.0 / 64.0,
            zero_point: 0,
        };
        for frame_ms in [115, 1000, 3000] {
            let f = run(frame_ms, quant).unwrap();
            // Shape channels of pixels 0 and 1 (same history, twice the amplitude) agree.
            for k in 1..6 {
                assert!(
                    (f[k] as i32 - f[6 + k] as i32).abs() <= 1,
                    "{frame_ms} ms, channel {k}: {:?}",
                    f
                );
                // The slow pixel keeps more of its rise.
                assert!(f[12 + k] > f[k], "{frame_ms} ms, channel {k}: {:?}", f);
                // Pixels 0 and 1 are the median of the shape: deviation 0.
                assert_eq!(f[k], 0, "{frame_ms} ms, channel {k}: {:?}", f);
            }
            // Amplitude: the median pixel (the slow one) has ratio 1 → deviation 0; pixel
            // 1 is twice pixel 0 (ratio = 1 + deviation, 64 counts per unit).
            assert_eq!(f[12], 0, "{f:?}");
            let (a0, a1) = (f[0] as i32 + 64, f[6] as i32 + 64);
            assert!((a1 - 2 * a0).abs() <= 2, "{f:?}");
        }
    }

    /// Channel 0 of a recording whose pixels rise by `rise[p]` centikelvin and stay there:
    /// the reference rise of pixel `p` is exactly `rise[p]`.
    fn amplitude(rise: &[u16], width: usize, window_px: u16) -> Result<Vec<i8>, FeatureError> {
        let mut s = spec();
        s.amplitude_window_px = window_px;
        let quant = QuantParams {
            scale: 1.0 / 256.0,
            zero_point: 3,
        };
        let px = rise.len();
        let (mut cold, mut window, mut reference, mut features) = (
            vec![0u32; px],
            vec![0i32; px],
            vec![0u16; px],
            vec![0i8; px * s.channels()],
        );
        let mut fx = FeatureExtractor::new(&s, quant, width, &mut cold, &mut window, &mut reference, &mut features)?;
        let mut frame = vec![0u16; px];
        for t in [-2_000, -1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000] {
            for (f, &r) in frame.iter_mut().zip(rise) {
                *f = 20_000 + if t > 0 { r } else { 0 };
            }
            fx.push_frame(t, &frame)?;
        }
        fx.finish()?;
        Ok(features.iter().step_by(s.channels()).copied().collect())
    }

    /// The window mean straight from its definition: every pixel of the clipped window
    /// summed, then the same integer ratio and quantization.
    fn amplitude_reference(rise: &[u16], width: usize, window_px: u16) -> Vec<i8> {
        let height = rise.len() / width;
        let r = (window_px / 2) as i64;
        let real = 1.0 / ((1.0 / 256.0) * (1u32 << RATIO_BITS) as f64);
        let requant = Prepared::new(quantize_multiplier(real).unwrap()).unwrap();
        let mut out = Vec::new();
        for y in 0..height as i64 {
            for x in 0..width as i64 {
                let (mut sum, mut count) = (0i64, 0i64);
                for yy in (y - r).max(0)..(y + r + 1).min(height as i64) {
                    for xx in (x - r).max(0)..(x + r + 1).min(width as i64) {
                        sum += rise[(yy * width as i64 + xx) as usize].max(1) as i64;
                        count += 1;
                    }
                }
                let own = rise[(y * width as i64 + x) as usize].max(1) as i64;
                let ratio = (own << RATIO_BITS) * count / sum;
                let v = crate::quant::multiply_prepared(deviation(ratio), requant).saturating_add(3);
                out.push(v.clamp(-128, 127) as i8);
            }
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn local_amplitude_is_the_window_mean(
            width in 1usize..24,
            height in 1usize..20,
            half in 1u16..12,
            seed in proptest::prelude::any::<u64>(),
        ) {
            let mut state = seed | 1;
            let rise: Vec<u16> = (0..width * height)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state % 4_000) as u16
                })
                .collect();
            let window_px = 2 * half + 1;
            proptest::prop_assert_eq!(
                amplitude(&rise, width, window_px).unwrap(),
                amplitude_reference(&rise, width, window_px)
            );
        }
    }

    #[test]
    fn local_amplitude_cancels_the_lamp_and_keeps_a_spot() {
        // 60×40 plate under a lamp 40 % stronger on the right, with a 6×6 spot that absorbs
        // 8 % more in the middle.
        let (w, h) = (60usize, 40usize);
        let mut rise = vec![0u16; w * h];
        for y in 0..h {
            for x in 0..w {
                let lamp = 1.0 + 0.4 * x as f64 / (w - 1) as f64;
                let spot = if (27..33).contains(&x) && (17..23).contains(&y) {
                    1.08
                } else {
                    1.0
                };
                rise[y * w + x] = (1_000.0 * lamp * spot) as u16;
            }
        }
        let median = amplitude(&rise, w, 0).unwrap();
        let local = amplitude(&rise, w, 21).unwrap();
        // 256 counts per unit of ratio, zero point 3.
        let at = |f: &[i8], x: usize, y: usize| (f[y * w + x] as i32 - 3) as f64 / 256.0;
        // The lamp: ±20 % across the image against the median, within 1 % locally (away
        // from the spot and the border, where the window is clipped and not centred).
        assert!(at(&median, 2, 5) < -0.15 && at(&median, 57, 5) > 0.15);
        for x in 10..50 {
            assert!(at(&local, x, 5).abs() < 0.01, "x {x}: {}", at(&local, x, 5));
        }
        // The spot stands out by its 8 % (less what it adds to its own window's mean).
        let spot = at(&local, 30, 20);
        assert!((0.06..0.08).contains(&spot), "spot {spot}");
        // Windows wider than the image, clipped at every border, are covered by the
        // property test above (images up to 23 pixels wide, windows up to 23).
        assert_eq!(
            amplitude(&rise, 7, 21),
            Err(FeatureError::Width {
                width: 7,
                pixels: w * h
            })
        );
        let mut bad = spec();
        for px in [2, 1, 83] {
            bad.amplitude_window_px = px;
            assert!(bad.check().is_err(), "window {px}");
        }
    }

    #[test]
    fn bad_streams_are_errors() {
        let quant = QuantParams {
            scale: 1.0 / 64.0,
            zero_point: -128,
        };
        let s = spec();
        let (mut cold, mut window, mut reference, mut features) =
            (vec![0u32; 3], vec![0i32; 3], vec![0u16; 3], vec![0i8; 18]);
        let mut fx =
            FeatureExtractor::new(&s, quant, 3, &mut cold, &mut window, &mut reference, &mut features).unwrap();
        assert_eq!(fx.push_frame(0, &[1, 2, 3]), Err(FeatureError::NoColdFrames));
        let mut fx =
            FeatureExtractor::new(&s, quant, 3, &mut cold, &mut window, &mut reference, &mut features).unwrap();
        assert!(matches!(fx.push_frame(-10, &[1, 2]), Err(FeatureError::Buffer { .. })));
        fx.push_frame(-10, &[29315; 3]).unwrap();
        assert_eq!(
            fx.push_frame(-10, &[29315; 3]),
            Err(FeatureError::Time {
                t_ms: -10,
                previous_ms: -10
            })
        );
        fx.push_frame(2_000, &[30000; 3]).unwrap();
        assert_eq!(fx.finish(), Err(FeatureError::TooShort { sample: 1, t_ms: 4000 }));
        let mut short = vec![0i8; 5];
        assert!(matches!(
            FeatureExtractor::new(&s, quant, 3, &mut cold, &mut window, &mut reference, &mut short),
            Err(FeatureError::Buffer {
                what: "feature image",
                ..
            })
        ));
    }
}
