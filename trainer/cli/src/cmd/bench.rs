//! `trainer bench`: host inference speed of a shipped model, one run, same inputs — the
//! shared int8 engine (the device's code, portable path) against tract on the float and
//! the int8 ONNX files beside the blob. Frames (parts) per second and ratios.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use tqc_eval::infer::run_features;
use tqc_learn::onnx_run::OnnxModel;

fn time(iterations: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?; // warm-up (and planning for tract)
    let t = Instant::now();
    for _ in 0..iterations {
        f()?;
    }
    Ok(iterations as f64 / t.elapsed().as_secs_f64())
}

pub fn run(model: &Path, iterations: usize) -> Result<()> {
    let blob = std::fs::read(model).with_context(|| format!("cannot read {}", model.display()))?;
    let m = tqc_shared::blob::decode(&blob).with_context(|| format!("{} is not a valid blob", model.display()))?;
    let s = m.desc.input.shape;
    let (h, w, c) = (s.height as usize, s.width as usize, s.channels as usize);
    let q = m.desc.input.quant;
    // A plate-like input: the median level with a gentle gradient.
    let img: Vec<i8> = (0..h * w * c)
        .map(|i| (q.zero_point as i32 + ((i / c) % w * 8 / w) as i32 - 4).clamp(-128, 127) as i8)
        .collect();
    let chw = tqc_eval::features::dequantize_chw(&img, c, q);
    println!(
        "{} ({h}×{w}×{c}), {iterations} iterations each, one thread:",
        model.display()
    );
    let engine = time(iterations, || run_features(&blob, &img).map(|_| ()).map_err(Into::into))?;
    println!("  shared int8 engine   {engine:8.1} parts/s");
    let mut rows = vec![];
    for (label, path) in [
        ("tract f32 ONNX", model.with_extension("onnx")),
        ("tract int8 ONNX", model.with_extension("int8.onnx")),
    ] {
        if !path.exists() {
            println!("  {label:<20} (no {})", path.display());
            continue;
        }
        let onnx = OnnxModel::load(&path, c, h, w)?;
        let fps = time(iterations, || onnx.logits(&chw).map(|_| ()).map_err(Into::into))?;
        println!("  {label:<20} {fps:8.1} parts/s");
        rows.push((label, fps));
    }
    for (label, fps) in rows {
        println!("  engine / {label}: {:.2}×", engine / fps);
    }
    Ok(())
}

/// The arguments of `trainer bench`.
#[derive(clap::Args)]
pub struct BenchArgs {
    #[arg(long, default_value = "onnx_models/thermonet2.tqm")]
    model: PathBuf,
    #[arg(long, default_value_t = 20)]
    iterations: usize,
}

impl BenchArgs {
    pub fn run(self) -> Result<()> {
        run(&self.model, self.iterations)
    }
}
