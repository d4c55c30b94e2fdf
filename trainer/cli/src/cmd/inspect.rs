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
    let _ = writeln!(
        s,
        "\n{:>5}  {:<10} {:>14} {:>10} {:>12}  {:>11} {:>5}  float range",
        "layer", "kind", "output", "params", "MACs", "out scale", "zero"
    );
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
        let _ = writeln!(
            s,
            "{:>5}  {:<10} {:>14} {:>10} {:>12}  {:>11.3e} {:>5}  [{:.3}, {:.3}]",
            n,
            info.kind(),
            format!("{}x{}x{}", o.height, o.width, o.channels),
            p,
            info.macs(),
            q.scale,
            q.zero_point,
            lo,
            hi
        );
    }
    let _ = writeln!(s, "{:>5}  {:<10} {:>14} {:>10} {:>12}", "total", "", "", params, macs);
    let _ = writeln!(
        s,
        "\narena     {} bytes streaming (the device), {} bytes whole-map",
        d.arena_bytes,
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
        let mut bad = blob.clone();
        bad[20] ^= 1;
        assert!(matches!(report(&bad), Err(BlobError::Crc { .. })));
    }
}
