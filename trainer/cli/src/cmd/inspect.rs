//! A human-readable report of a model blob.

use std::fmt::Write;
use std::path::PathBuf;

use anyhow::Context;

use tqc_shared::blob::{self, BlobError};
use tqc_shared::planner::{Mode, plan};

/// Decodes `bytes` with the device's own validation and describes the model.
pub fn report(bytes: &[u8]) -> Result<String, BlobError> {
    let model = blob::decode(bytes)?;
    let d = &model.desc;
    let i = &d.input;
    let mut s = String::new();
    // Writing into a String cannot fail.
    let _ = writeln!(
        s,
        "model     {} ({} bytes, format v{})",
        d.name,
        bytes.len(),
        blob::FORMAT_VERSION
    );
    let _ = writeln!(
        s,
        "input     {}x{}x{} int8, scale {}, zero point {}",
        i.shape.height, i.shape.width, i.shape.channels, i.quant.scale, i.quant.zero_point
    );
    match &i.features {
        Some(f) => {
            let times: Vec<String> = f
                .times_ms
                .iter()
                .map(|t| format!("{:.1}", *t as f64 / 1000.0))
                .collect();
            let _ = writeln!(
                s,
                "features  rise at {} s (±{} ‰ windows), amplitude over {}",
                times.join(", "),
                f.window_permille,
                match f.amplitude_window_px {
                    0 => "the image median".to_string(),
                    px => format!("a {px}×{px} window mean"),
                }
            );
        }
        None => {
            let _ = writeln!(s, "features  none (the input is fed directly)");
        }
    }
    let classes: Vec<&str> = d.classes.iter().copied().collect();
    let _ = writeln!(
        s,
        "classes   {}",
        if classes.is_empty() {
            "(unnamed outputs)".into()
        } else {
            classes.join(", ")
        }
    );
    let outputs: Vec<String> = model
        .outputs()
        .iter()
        .map(|&t| {
            let o = model.tensor_shape(t as usize);
            format!("tensor {t} ({}x{}x{})", o.height, o.width, o.channels)
        })
        .collect();
    let _ = writeln!(s, "outputs   {}", outputs.join(", "));
    // Tensor 0 is the input; layer n writes tensor n + 1.
    let _ = writeln!(
        s,
        "\n{:>5}  {:<10} {:>7} {:>14} {:>6} {:>10} {:>12}  {:>11} {:>5}  float range",
        "layer", "kind", "reads", "output", "rows", "params", "MACs", "out scale", "zero"
    );
    // Rows of each output the streaming device holds at once (window and delay line).
    let streaming = plan(&model, Mode::Streaming);
    let (mut params, mut macs) = (0usize, 0u64);
    for (n, (layer, info)) in d.layers.iter().zip(&model.layers).enumerate() {
        let p = layer.weights.len() + layer.bias.len() / 4;
        params += p;
        macs += info.macs();
        let o = info.output;
        let q = layer.output;
        // The float interval the 256 output codes span: what the calibration kept.
        let lo = (-128 - i32::from(q.zero_point)) as f32 * q.scale;
        let hi = (127 - i32::from(q.zero_point)) as f32 * q.scale;
        let reads: Vec<String> = info.inputs().iter().map(|t| t.to_string()).collect();
        let _ = writeln!(
            s,
            "{:>5}  {:<10} {:>7} {:>14} {:>6} {:>10} {:>12}  {:>11.3e} {:>5}  [{:.3}, {:.3}]",
            n,
            info.kind(),
            reads.join(","),
            format!("{}x{}x{}", o.height, o.width, o.channels),
            streaming.ring_rows[n + 1],
            p,
            info.macs(),
            q.scale,
            q.zero_point,
            lo,
            hi
        );
    }
    let _ = writeln!(
        s,
        "{:>5}  {:<10} {:>7} {:>14} {:>6} {:>10} {:>12}",
        "total", "", "", "", "", params, macs
    );
    let _ = writeln!(
        s,
        "\narena     {} bytes streaming (the device), {} with the input resident, {} whole-map",
        d.arena_bytes,
        plan(&model, Mode::ResidentInput).total,
        plan(&model, Mode::WholeMap).total
    );
    Ok(s)
}

/// The arguments of `trainer inspect`.
#[derive(clap::Args)]
pub struct InspectArgs {
    /// The blob to check.
    blob: PathBuf,
}

impl InspectArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let bytes = std::fs::read(&self.blob).with_context(|| format!("cannot read {}", self.blob.display()))?;
        let report = report(&bytes).with_context(|| format!("{} is not a valid model blob", self.blob.display()))?;
        print!("{report}");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_a_valid_blob_and_rejects_a_corrupt_one() {
        let blob = ::tests::reference_network(24, 32, 1).to_blob().unwrap();
        let r = report(&blob).unwrap();
        assert!(r.contains("model     reference"), "{r}");
        assert!(r.contains("sound, subsurface, surface"), "{r}");
        assert!(r.contains("softmax"), "{r}");
        let macs: u64 = blob::decode(&blob).unwrap().layers.iter().map(|l| l.macs()).sum();
        assert!(r.contains(&macs.to_string()), "{r}");
        // Each layer's output grid and the float interval its codes span.
        let decoded = blob::decode(&blob).unwrap();
        let q = decoded.desc.layers[0].output;
        let hi = (127 - i32::from(q.zero_point)) as f32 * q.scale;
        assert!(r.contains(&format!("{:.3e}", q.scale)), "{r}");
        assert!(r.contains(&format!("{hi:.3}]")), "{r}");
        // A graph: what each layer reads, and every output.
        let graph = ::tests::graph::encoder_decoder(24, 32, 1).to_blob().unwrap();
        let r = report(&graph).unwrap();
        assert!(r.contains("outputs   tensor 16 (24x32x3), tensor 17 (24x32x1)"), "{r}");
        assert!(r.contains("concat        13,0"), "{r}");
        let mut bad = blob.clone();
        bad[20] ^= 1;
        assert!(matches!(report(&bad), Err(BlobError::Crc { .. })));
    }
}
