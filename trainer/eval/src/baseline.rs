//! Classical thermography processing, the yardstick for the CNN.
//!
//! All methods work on the temperature rise ΔT = frame − cold (mean of the pre-heating
//! frames) over an analysis window starting at `start_s` (by default the end of the
//! heating, when the cooling reveals what is below the surface):
//! - `contrast`: absolute contrast against a local sound reference — ΔT minus its
//!   large-scale background (Gaussian blur, σ = 12 px) — and its peak over time;
//! - `pct` (Principal Component Thermography, Rajic 2002): each pixel's history
//!   standardized over time, the time-domain covariance diagonalized, the first empirical
//!   orthogonal functions as images;
//! - `ppt` (Pulsed Phase Thermography, Maldague 1996): the phase of each pixel's history at
//!   the lowest frequencies of its discrete Fourier transform;
//! - `tsr` (Thermographic Signal Reconstruction, Shepard 2001): ln ΔT fitted by a
//!   polynomial in ln t (degree 4–7), and its first and second logarithmic derivatives.
//!
//! PCT, PPT and TSR look at the shape of each pixel's history, so a spot that only
//! scales it (an absorptivity or emissivity change on the surface) is invisible to them;
//! the contrast sees amplitude and finds such spots.
//!
//! Every method yields a few processed images and one score image; the defect map flags
//! pixels whose score lies more than `threshold` robust standard deviations (1.4826 ×
//! median absolute deviation) above the median.

use nalgebra::{DMatrix, SymmetricEigen};
use rustfft::FftPlanner;
use rustfft::num_complex::Complex;

use tqc_data::sequence::Sequence;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Method {
    Contrast,
    Pct,
    Ppt,
    Tsr,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Params {
    /// Analysis window start (s from the start of heating).
    pub start_s: f64,
    /// Robust z-score above which a pixel is flagged.
    pub threshold: f64,
    /// TSR polynomial degree (4..=7).
    pub tsr_degree: usize,
    /// PCT components / PPT frequencies to keep.
    pub components: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("the analysis window from {start_s} s holds {frames} frames; at least {needed} are needed")]
    TooFewFrames { start_s: f64, frames: usize, needed: usize },
    #[error("TSR degree {0} is outside 4..=7")]
    Degree(usize),
    #[error("PPT needs evenly spaced frames (times vary by {0:.1} % within the window)")]
    Uneven(f64),
}

pub struct Output {
    /// Processed images, named.
    pub images: Vec<(String, Vec<f32>)>,
    pub score: Vec<f32>,
    /// 1 where a defect is flagged.
    pub map: Vec<u8>,
}

/// Robust z-scores: (x − median) / (1.4826 · MAD).
pub fn robust_z(values: &[f32]) -> Vec<f32> {
    let mut v: Vec<f32> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return vec![0.0; values.len()];
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let median = v[v.len() / 2];
    let mut dev: Vec<f32> = v.iter().map(|x| (x - median).abs()).collect();
    dev.sort_by(|a, b| a.total_cmp(b));
    let mad = (dev[dev.len() / 2] * 1.4826).max(1e-12);
    values
        .iter()
        .map(|x| if x.is_finite() { (x - median) / mad } else { 0.0 })
        .collect()
}

fn gaussian_blur(img: &[f32], w: usize, h: usize, sigma: f64) -> Vec<f32> {
    let r = (3.0 * sigma).ceil() as isize;
    let k: Vec<f32> = (-r..=r)
        .map(|i| (-(i * i) as f64 / (2.0 * sigma * sigma)).exp() as f32)
        .collect();
    let pass = |src: &[f32], horizontal: bool| -> Vec<f32> {
        let mut out = vec![0.0; w * h];
        for y in 0..h {
            for x in 0..w {
                let (mut s, mut n) = (0.0, 0.0);
                for (j, kv) in k.iter().enumerate() {
                    let o = j as isize - r;
                    let (xx, yy) = if horizontal {
                        (x as isize + o, y as isize)
                    } else {
                        (x as isize, y as isize + o)
                    };
                    if xx >= 0 && yy >= 0 && (xx as usize) < w && (yy as usize) < h {
                        s += kv * src[yy as usize * w + xx as usize];
                        n += kv;
                    }
                }
                out[y * w + x] = s / n;
            }
        }
        out
    };
    pass(&pass(img, true), false)
}

/// Runs `method` on `seq`.
pub fn run(seq: &Sequence, method: Method, p: &Params) -> Result<Output, BaselineError> {
    let window: Vec<usize> = (0..seq.frames)
        .filter(|&k| seq.times[k] >= p.start_s && seq.times[k] > 0.0)
        .collect();
    let needed = match method {
        Method::Contrast => 1,
        Method::Tsr => p.tsr_degree + 3,
        Method::Pct | Method::Ppt => 2 * p.components.max(2),
    };
    if window.len() < needed {
        return Err(BaselineError::TooFewFrames {
            start_s: p.start_s,
            frames: window.len(),
            needed,
        });
    }
    let w = Window {
        seq,
        cold: seq.cold(),
        frames: window,
        needed,
    };
    let mut images = Vec::new();
    let score = match method {
        Method::Contrast => contrast(&w, &mut images),
        Method::Pct => pct(&w, p, &mut images),
        Method::Ppt => ppt(&w, p, &mut images)?,
        Method::Tsr => tsr(&w, p, &mut images)?,
    };
    let map = score.iter().map(|&s| u8::from(s as f64 > p.threshold)).collect();
    Ok(Output { images, score, map })
}

/// The frames a method looks at, and the rise of each over the cold image.
struct Window<'a> {
    seq: &'a Sequence,
    cold: Vec<f32>,
    /// Frame indices of the analysis window.
    frames: Vec<usize>,
    /// Frames the method needs (for the error when a fit is singular).
    needed: usize,
}

impl Window<'_> {
    fn rise(&self, k: usize) -> Vec<f32> {
        self.seq.frame(k).iter().zip(&self.cold).map(|(a, b)| a - b).collect()
    }
}

type Images = Vec<(String, Vec<f32>)>;

/// Absolute contrast against the blurred background, peak over the window.
fn contrast(win: &Window<'_>, images: &mut Images) -> Vec<f32> {
    let (seq, window, rise) = (win.seq, &win.frames, |k| win.rise(k));
    let (w, h, px) = (seq.width, seq.height, seq.pixels());
    let mut peak = vec![f32::MIN; px];
    let mut best = (0.0f32, 0usize);
    for &k in window {
        let d = rise(k);
        let bg = gaussian_blur(&d, w, h, 12.0);
        let c: Vec<f32> = d.iter().zip(&bg).map(|(a, b)| a - b).collect();
        let spread: f32 = c.iter().map(|v| v.abs()).sum();
        if spread > best.0 {
            best = (spread, k);
        }
        for (m, v) in peak.iter_mut().zip(&c) {
            *m = m.max(*v);
        }
    }
    let d = rise(best.1);
    let bg = gaussian_blur(&d, w, h, 12.0);
    images.push((
        format!("contrast-t{:.1}s", seq.times[best.1]),
        d.iter().zip(&bg).map(|(a, b)| a - b).collect(),
    ));
    images.push(("contrast-peak".into(), peak.clone()));
    robust_z(&peak)
}

/// Principal component thermography: empirical orthogonal functions 2.. as images.
fn pct(win: &Window<'_>, p: &Params, images: &mut Images) -> Vec<f32> {
    let (window, rise) = (&win.frames, |k| win.rise(k));
    let px = win.seq.pixels();
    let t = window.len();
    // Standardize each pixel's history over time.
    let mut a = DMatrix::<f64>::zeros(t, px);
    for (i, &k) in window.iter().enumerate() {
        for (j, v) in rise(k).into_iter().enumerate() {
            a[(i, j)] = v as f64;
        }
    }
    for j in 0..px {
        let col = a.column(j);
        let mean = col.mean();
        let sd = (col.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / t as f64)
            .sqrt()
            .max(1e-12);
        for i in 0..t {
            a[(i, j)] = (a[(i, j)] - mean) / sd;
        }
    }
    let cov = &a * a.transpose() / px as f64;
    let eig = SymmetricEigen::new(cov);
    let mut order: Vec<usize> = (0..t).collect();
    order.sort_by(|&x, &y| eig.eigenvalues[y].total_cmp(&eig.eigenvalues[x]));
    let mut score = vec![0.0f32; px];
    for (n, &c) in order.iter().take(p.components).enumerate() {
        let u = eig.eigenvectors.column(c);
        let eof: Vec<f32> = (0..px).map(|j| a.column(j).dot(&u) as f32).collect();
        let z = robust_z(&eof);
        if n > 0 {
            // The first component is the mean cooling; defects live in the next.
            for (s, v) in score.iter_mut().zip(&z) {
                *s = s.max(v.abs());
            }
        }
        images.push((format!("pct-eof{}", n + 1), eof));
    }
    score
}

/// Pulsed phase thermography: the phase at the lowest frequencies.
fn ppt(win: &Window<'_>, p: &Params, images: &mut Images) -> Result<Vec<f32>, BaselineError> {
    let (seq, window, rise) = (win.seq, &win.frames, |k| win.rise(k));
    let px = seq.pixels();
    let t = window.len();
    let dt: Vec<f64> = window.windows(2).map(|k| seq.times[k[1]] - seq.times[k[0]]).collect();
    let mean_dt = dt.iter().sum::<f64>() / dt.len().max(1) as f64;
    let spread = dt.iter().map(|d| (d - mean_dt).abs()).fold(0.0, f64::max) / mean_dt;
    if spread > 0.01 {
        return Err(BaselineError::Uneven(spread * 100.0));
    }
    let fft = FftPlanner::<f64>::new().plan_fft_forward(t);
    let rises: Vec<Vec<f32>> = window.iter().map(|&k| rise(k)).collect();
    let mut phases = vec![vec![0.0f32; px]; p.components];
    let mut buf = vec![Complex::new(0.0, 0.0); t];
    for j in 0..px {
        for (i, r) in rises.iter().enumerate() {
            buf[i] = Complex::new(r[j] as f64, 0.0);
        }
        fft.process(&mut buf);
        for (f, ph) in phases.iter_mut().enumerate() {
            ph[j] = buf[f + 1].arg() as f32;
        }
    }
    let mut score = vec![0.0f32; px];
    for (f, ph) in phases.into_iter().enumerate() {
        for (s, v) in score.iter_mut().zip(robust_z(&ph)) {
            *s = s.max(v.abs());
        }
        images.push((format!("ppt-phase-f{:.4}hz", (f + 1) as f64 / (t as f64 * mean_dt)), ph));
    }
    Ok(score)
}

/// Thermographic signal reconstruction: logarithmic derivatives of a polynomial fit.
fn tsr(win: &Window<'_>, p: &Params, images: &mut Images) -> Result<Vec<f32>, BaselineError> {
    let (seq, window, rise, needed) = (win.seq, &win.frames, |k| win.rise(k), win.needed);
    let px = seq.pixels();
    if !(4..=7).contains(&p.tsr_degree) {
        return Err(BaselineError::Degree(p.tsr_degree));
    }
    let n = p.tsr_degree + 1;
    // Times relative to the window start, so the cooling starts near ln t = 0.
    let t0 = seq.times[window[0]] - (seq.times[window[1]] - seq.times[window[0]]);
    let lt: Vec<f64> = window.iter().map(|&k| (seq.times[k] - t0).ln()).collect();
    let x = DMatrix::from_fn(lt.len(), n, |i, c| lt[i].powi(c as i32));
    let pinv = (x.transpose() * &x).try_inverse().map(|m| m * x.transpose());
    let Some(pinv) = pinv else {
        return Err(BaselineError::TooFewFrames {
            start_s: p.start_s,
            frames: window.len(),
            needed,
        });
    };
    let probes: Vec<f64> = (0..8)
        .map(|i| lt[0] + (lt[lt.len() - 1] - lt[0]) * (i as f64 + 1.0) / 9.0)
        .collect();
    let rises: Vec<Vec<f32>> = window.iter().map(|&k| rise(k)).collect();
    let mut d1 = vec![vec![0.0f32; px]; probes.len()];
    let mut d2 = vec![vec![0.0f32; px]; probes.len()];
    let mut y = nalgebra::DVector::<f64>::zeros(lt.len());
    for j in 0..px {
        for (i, r) in rises.iter().enumerate() {
            y[i] = (r[j] as f64).max(1e-4).ln();
        }
        let coef = &pinv * &y;
        for (q, &l) in probes.iter().enumerate() {
            let (mut a, mut b) = (0.0, 0.0);
            for c in 1..n {
                a += c as f64 * coef[c] * l.powi(c as i32 - 1);
                if c >= 2 {
                    b += (c * (c - 1)) as f64 * coef[c] * l.powi(c as i32 - 2);
                }
            }
            d1[q][j] = a as f32;
            d2[q][j] = b as f32;
        }
    }
    let mut score = vec![0.0f32; px];
    for (q, (a, b)) in d1.into_iter().zip(d2).enumerate() {
        for (s, v) in score.iter_mut().zip(robust_z(&b)) {
            *s = s.max(v.abs());
        }
        let at = probes[q].exp() + t0;
        images.push((format!("tsr-d1-t{at:.1}s"), a));
        images.push((format!("tsr-d2-t{at:.1}s"), b));
    }
    Ok(score)
}
