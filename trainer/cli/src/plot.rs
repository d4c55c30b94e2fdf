//! What every picture the CLI writes shares: the class palette and the one PNG writer.

use std::path::Path;

use anyhow::{Context, Result};

/// Class colours, in class order: sound dark grey, in-depth (subsurface) red, surface blue.
/// Overlays show the image where the class is sound.
pub const CLASS_COLOURS: [[u8; 3]; 3] = [[40, 40, 40], [230, 40, 30], [40, 130, 240]];

/// The colour of class `c` (the last colour for anything beyond the palette).
pub fn class_colour(c: u8) -> [u8; 3] {
    CLASS_COLOURS[(c as usize).min(CLASS_COLOURS.len() - 1)]
}

/// Writes an 8-bit RGB image (`width × height × 3` bytes, row-major) as PNG, through a
/// `.partial` file renamed when complete.
pub fn write_rgb_png(path: &Path, width: usize, height: usize, rgb: &[u8]) -> Result<()> {
    let mut bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bytes, width as u32, height as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.write_header()
            .and_then(|mut w| w.write_image_data(rgb))
            .with_context(|| format!("encoding {}", path.display()))?;
    }
    tqc_data::io::write_atomic(path, &bytes)?;
    Ok(())
}

/// `map` (classes, `width × height`) scaled ×`scale` as RGB into `img` (row stride
/// `stride` pixels) at pixel offset (`x0`, `y0`).
pub fn class_map_rgb(
    map: &[u8],
    (width, height): (usize, usize),
    scale: usize,
    img: &mut [u8],
    stride: usize,
    (x0, y0): (usize, usize),
) {
    for y in 0..height * scale {
        for x in 0..width * scale {
            let c = class_colour(map[(y / scale) * width + x / scale]);
            let o = ((y0 + y) * stride + x0 + x) * 3;
            img[o..o + 3].copy_from_slice(&c);
        }
    }
}
