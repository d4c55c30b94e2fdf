//! `trainer baseline`: classical processing of a recording into images and a defect map.

use std::path::Path;

use anyhow::{Context, Result};
use npyz::WriterBuilder;

use tqc_trainer::baseline::{self, Method, Params};
use tqc_trainer::preview::{self, Raster};
use tqc_trainer::sequence::{ReadOptions, Sequence};

pub use tqc_trainer::simulate::heating_end;

pub fn write_npy<T: npyz::AutoSerialize + Copy>(path: &Path, shape: &[u64], data: &[T]) -> Result<()> {
    let file = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(shape)
        .writer(std::io::BufWriter::new(file))
        .begin_nd()?;
    w.extend(data.iter().copied())?;
    w.finish()?;
    Ok(())
}

pub fn run(
    method: Method,
    sequence: &Path,
    out: &Path,
    read: &ReadOptions,
    mut params: Params,
    start: Option<f64>,
) -> Result<()> {
    let seq = Sequence::open(sequence, read).with_context(|| format!("reading {}", sequence.display()))?;
    params.start_s = start.or_else(|| heating_end(sequence)).unwrap_or(0.0);
    let result = baseline::run(&seq, method, &params)?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let (w, h) = (seq.width, seq.height);
    let shape = [h as u64, w as u64];
    for (name, img) in &result.images {
        write_npy(&out.join(format!("{name}.npy")), &shape, img)?;
        let raster = Raster {
            values: img,
            width: w,
            height: h,
        };
        preview::image_png(&out.join(format!("{name}.png")), &raster, preview::range(img), &[], 1.0)?;
    }
    write_npy(&out.join("score.npy"), &shape, &result.score)?;
    let raster = Raster {
        values: &result.score,
        width: w,
        height: h,
    };
    preview::image_png(
        &out.join("score.png"),
        &raster,
        (0.0, (2.0 * params.threshold) as f32),
        &[],
        1.0,
    )?;
    write_npy(&out.join("map.npy"), &shape, &result.map)?;
    let map_f: Vec<f32> = result.map.iter().map(|&m| m as f32).collect();
    let raster = Raster {
        values: &map_f,
        width: w,
        height: h,
    };
    preview::image_png(&out.join("map.png"), &raster, (0.0, 1.0), &[], 1.0)?;
    let flagged = result.map.iter().filter(|&&m| m != 0).count();
    println!(
        "{method:?} on {} ({} frames, window from {:.1} s): {} images, {flagged} pixels flagged above z = {} → {}",
        sequence.display(),
        seq.frames,
        params.start_s,
        result.images.len(),
        params.threshold,
        out.display()
    );
    Ok(())
}
