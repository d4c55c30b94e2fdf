//! From a per-pixel class map to the part's verdict: connected defect regions
//! (8-connected pixels of one defect class) and PASS / FAIL by their size; with a
//! model's depth output beside the map, each region's median estimated depth.
//!
//! No allocation: the caller lends a stack of one `u32` per pixel (each pixel is pushed
//! at most once, so it never overflows) and a fixed-capacity list for the regions.
//! The map is marked in place while searching (bit 7, classes are below 8) and restored.

use crate::model::{MAX_CLASSES, QuantParams};

/// Class 0 of every inspection model is sound material.
pub const SOUND: u8 = 0;
const SEEN: u8 = 0x80;

/// How a class map becomes a verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct VerdictConfig {
    /// A defect region of at least this many pixels fails the part; smaller ones are
    /// reported but treated as noise (a Lepton pixel on the reference plate is ~2 mm).
    pub min_region_pixels: u32,
}

impl VerdictConfig {
    /// The station default: 6 pixels (≈ 24 mm² on the reference plate, the area of a
    /// 5.5 mm circle — smaller than the smallest reference hole).
    pub const DEFAULT: VerdictConfig = VerdictConfig { min_region_pixels: 6 };
}

impl Default for VerdictConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The decision shown on the LEDs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Verdict {
    Pass,
    Fail,
    /// Not inspected properly (camera, heating, model or data fault): inspect again.
    Retest,
}

impl Verdict {
    pub const ALL: [Verdict; 3] = [Verdict::Pass, Verdict::Fail, Verdict::Retest];

    /// The name on the LED and in the host's verdict file.
    pub const fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Retest => "RETEST",
        }
    }

    /// The LED's colour.
    pub const fn colour(self) -> &'static str {
        match self {
            Verdict::Pass => "green",
            Verdict::Fail => "red",
            Verdict::Retest => "amber",
        }
    }

    /// The verdict a [`Verdict::label`] names.
    pub fn from_label(label: &str) -> Option<Verdict> {
        Self::ALL.into_iter().find(|v| v.label() == label)
    }
}

/// One connected region of a defect class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Region {
    pub class: u8,
    pub pixels: u32,
    /// Bounding box, inclusive, in pixels.
    pub min_x: u16,
    pub min_y: u16,
    pub max_x: u16,
    pub max_y: u16,
    /// Sums of the pixel coordinates (centroid = sum / pixels).
    pub sum_x: u64,
    pub sum_y: u64,
    /// Median of the model's depth estimate over the region's pixels, in µm below the
    /// inspected face (negative estimates count as 0); `None` without a depth output.
    /// A depth head is trained on in-depth defects: on other classes it means nothing.
    pub depth_um: Option<u32>,
}

impl Region {
    pub fn centroid(&self) -> (f32, f32) {
        let n = self.pixels.max(1) as f32;
        (self.sum_x as f32 / n, self.sum_y as f32 / n)
    }

    /// [`Region::depth_um`] in mm.
    pub fn depth_mm(&self) -> Option<f32> {
        self.depth_um.map(|um| um as f32 / 1000.0)
    }
}

/// A model's depth output beside the class map: one int8 code a pixel, row-major like
/// the map, on the output's grid (mm = `scale · (code − zero_point)`).
#[derive(Clone, Copy, Debug)]
pub struct DepthMap<'a> {
    pub codes: &'a [i8],
    pub quant: QuantParams,
}

impl DepthMap<'_> {
    /// The depth a code stands for, mm (negative: above the face).
    pub fn millimetres(&self, code: i8) -> f32 {
        self.quant.scale * (i32::from(code) - i32::from(self.quant.zero_point)) as f32
    }

    /// µm of a code, rounded; negative depths are 0 (the face itself).
    pub fn micrometres(&self, code: i8) -> u32 {
        // `as` saturates: NaN → 0, beyond u32 → u32::MAX.
        (self.millimetres(code) * 1000.0 + 0.5) as u32
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerdictError {
    #[error("class map holds {found} pixels, expected {width}×{height}")]
    MapSize { width: usize, height: usize, found: usize },
    #[error("search stack holds {found} entries, needs one per pixel ({needed})")]
    Stack { needed: usize, found: usize },
    #[error("class {class} at pixel {pixel} is not a model class")]
    Class { pixel: usize, class: u8 },
    #[error("depth map holds {found} pixels, the class map {expected}")]
    DepthSize { expected: usize, found: usize },
}

/// What the map shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Findings<const N: usize> {
    /// The largest regions (at most `N`), largest first.
    pub regions: heapless::Vec<Region, N>,
    /// All regions found, including those not kept in `regions`.
    pub region_count: u32,
    /// Pixels of each class.
    pub class_pixels: [u32; MAX_CLASSES],
    pub verdict: Verdict,
}

/// Finds the defect regions of `map` (row-major `width`×`height` classes) and decides.
pub fn inspect<const N: usize>(
    map: &mut [u8],
    width: usize,
    height: usize,
    stack: &mut [u32],
    cfg: &VerdictConfig,
) -> Result<Findings<N>, VerdictError> {
    inspect_with_depth(map, None, width, height, stack, cfg)
}

/// [`inspect`], and each region's median depth from `depth` (same pixels as `map`).
pub fn inspect_with_depth<const N: usize>(
    map: &mut [u8],
    depth: Option<DepthMap<'_>>,
    width: usize,
    height: usize,
    stack: &mut [u32],
    cfg: &VerdictConfig,
) -> Result<Findings<N>, VerdictError> {
    let px = width * height;
    if map.len() != px {
        return Err(VerdictError::MapSize {
            width,
            height,
            found: map.len(),
        });
    }
    if let Some(d) = &depth
        && d.codes.len() != px
    {
        return Err(VerdictError::DepthSize {
            expected: px,
            found: d.codes.len(),
        });
    }
    if stack.len() < px {
        return Err(VerdictError::Stack {
            needed: px,
            found: stack.len(),
        });
    }
    let mut class_pixels = [0u32; MAX_CLASSES];
    for (pixel, &class) in map.iter().enumerate() {
        if class as usize >= MAX_CLASSES {
            return Err(VerdictError::Class { pixel, class });
        }
        if let Some(n) = class_pixels.get_mut(class as usize) {
            *n += 1;
        }
    }
    let mut findings = Findings {
        regions: heapless::Vec::new(),
        region_count: 0,
        class_pixels,
        verdict: Verdict::Pass,
    };
    for start in 0..px {
        let Some(&class) = map.get(start) else { break };
        if class == SOUND || class & SEEN != 0 {
            continue;
        }
        let region = flood(map, depth.as_ref(), width, height, start, stack);
        findings.region_count += 1;
        if region.pixels >= cfg.min_region_pixels {
            findings.verdict = Verdict::Fail;
        }
        keep_largest(&mut findings.regions, region);
    }
    for c in map.iter_mut() {
        *c &= !SEEN;
    }
    Ok(findings)
}

fn flood(
    map: &mut [u8],
    depth: Option<&DepthMap<'_>>,
    width: usize,
    height: usize,
    start: usize,
    stack: &mut [u32],
) -> Region {
    let class = map.get(start).copied().unwrap_or(0);
    // Depth codes of the region's pixels, counted per code (index = code + 128): the
    // median without storing the pixels.
    let mut histogram = [0u32; 256];
    let mut r = Region {
        class,
        pixels: 0,
        min_x: u16::MAX,
        min_y: u16::MAX,
        max_x: 0,
        max_y: 0,
        sum_x: 0,
        sum_y: 0,
        depth_um: None,
    };
    let width = width.max(1);
    // The stack holds a word per pixel (checked by `inspect`) and a pixel enters it at
    // most once, so pushes always fit.
    let mut top = 0;
    let push = |map: &mut [u8], stack: &mut [u32], q: usize, top: &mut usize| {
        if let (Some(c), Some(slot)) = (map.get_mut(q), stack.get_mut(*top)) {
            // Marked when pushed, so every pixel enters the stack at most once.
            *c |= SEEN;
            *slot = q as u32;
            *top += 1;
        }
    };
    push(map, stack, start, &mut top);
    while top > 0 {
        top -= 1;
        let Some(&p) = stack.get(top) else { break };
        let p = p as usize;
        let (x, y) = (p % width, p / width);
        r.pixels += 1;
        r.min_x = r.min_x.min(x as u16);
        r.min_y = r.min_y.min(y as u16);
        r.max_x = r.max_x.max(x as u16);
        r.max_y = r.max_y.max(y as u16);
        r.sum_x += x as u64;
        r.sum_y += y as u64;
        if let Some(&code) = depth.and_then(|d| d.codes.get(p))
            && let Some(n) = histogram.get_mut((i16::from(code) + 128) as usize)
        {
            *n += 1;
        }
        for (dx, dy) in [(-1, -1), (0, -1), (1, -1), (-1, 0), (1, 0), (-1, 1), (0, 1), (1, 1)] {
            let (nx, ny) = (x as isize + dx, y as isize + dy);
            if nx < 0 || ny < 0 || nx >= width as isize || ny >= height as isize {
                continue;
            }
            let q = ny as usize * width + nx as usize;
            if map.get(q) == Some(&class) {
                push(map, stack, q, &mut top);
            }
        }
    }
    if let Some(d) = depth {
        r.depth_um = median_code(&histogram, r.pixels).map(|code| d.micrometres(code));
    }
    r
}

/// The lower median of `n` codes counted in `histogram` (index = code + 128).
fn median_code(histogram: &[u32; 256], n: u32) -> Option<i8> {
    if n == 0 {
        return None;
    }
    let half = n.div_ceil(2);
    let mut seen = 0u32;
    for (i, &count) in histogram.iter().enumerate() {
        seen = seen.saturating_add(count);
        if seen >= half {
            return i8::try_from(i as i16 - 128).ok();
        }
    }
    None
}

fn keep_largest<const N: usize>(regions: &mut heapless::Vec<Region, N>, region: Region) {
    let at = regions
        .iter()
        .position(|r| r.pixels < region.pixels)
        .unwrap_or(regions.len());
    if at >= N {
        return;
    }
    if regions.is_full() {
        regions.pop();
    }
    // Cannot fail: a slot was freed above and `at` is within the length.
    let _ = regions.insert(at, region);
}
