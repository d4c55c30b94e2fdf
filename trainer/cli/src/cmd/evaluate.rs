//! `trainer evaluate`: a defect map against a recording's ground truth.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use npyz::NpyFile;
use tqc_data::Split;

use tqc_eval::score::{components, evaluate, footprints_of};

fn read_u8(path: &Path) -> Result<(Vec<u64>, Vec<u8>)> {
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let npy =
        NpyFile::new(std::io::BufReader::new(f)).with_context(|| format!("{} is not a .npy file", path.display()))?;
    let shape = npy.shape().to_vec();
    let v = npy
        .into_vec::<u8>()
        .with_context(|| format!("{}: expected a u8 map", path.display()))?;
    Ok((shape, v))
}

pub fn run(map_path: &Path, truth: &Path, json: Option<&Path>) -> Result<()> {
    let (mshape, map) = read_u8(map_path)?;
    let (lshape, labels) = read_u8(&truth.join("labels.npy"))?;
    if mshape != lshape {
        bail!("{} is {mshape:?}, the ground truth {lshape:?}", map_path.display());
    }
    let (w, h) = (lshape[1] as usize, lshape[0] as usize);
    let (footprints, area) = match footprints_of(truth)? {
        Some((f, a)) => (f, Some(a)),
        None => (components(&labels, None, w, h), None),
    };
    let e = evaluate(&map, &labels, &footprints, area);
    println!("{} against {}", map_path.display(), truth.display());
    for c in &e.classes {
        println!("  IoU {:<12} {:.3}", c.class, c.iou);
    }
    println!("  precision    {:.3}\n  recall       {:.3}", e.precision, e.recall);
    match e.false_call_mm2 {
        Some(a) => println!("  false calls  {} px ({a:.0} mm²)", e.false_call_pixels),
        None => println!("  false calls  {} px", e.false_call_pixels),
    }
    println!("  defects found {}/{}", e.found, e.defects.len());
    for d in &e.defects {
        println!(
            "    {:<44} {:>4}/{:<4} px  {}",
            d.name,
            d.flagged,
            d.pixels,
            if d.found { "found" } else { "missed" }
        );
    }
    let json_path = json
        .map(Path::to_path_buf)
        .unwrap_or_else(|| map_path.with_extension("evaluation.json"));
    std::fs::write(&json_path, serde_json::to_string_pretty(&e)?)
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    println!("  → {}", json_path.display());
    Ok(())
}

/// The arguments of `trainer evaluate`.
#[derive(clap::Args)]
pub struct EvaluateArgs {
    /// A defect map (.npy) to score (with --truth).
    #[arg(long, conflicts_with_all = ["model", "data"], required_unless_present = "model")]
    map: Option<PathBuf>,
    /// The recording folder holding labels.npy (and meta.json for named defects).
    #[arg(long, requires = "map")]
    truth: Option<PathBuf>,
    /// A model blob (.tqm) to evaluate on --data.
    #[arg(long, requires = "data")]
    model: Option<PathBuf>,
    /// A dataset folder (index.json).
    #[arg(long)]
    data: Option<PathBuf>,
    /// The split of --data to evaluate on.
    #[arg(long, default_value = "test")]
    split: Split,
    /// Write the model card (Markdown) here.
    #[arg(long, requires = "model")]
    card: Option<PathBuf>,
    /// Where to write the JSON (default: next to the map / the model).
    #[arg(long)]
    json: Option<PathBuf>,
}

impl EvaluateArgs {
    pub fn run(self) -> Result<()> {
        match (&self.map, &self.truth, &self.model, &self.data) {
            (Some(map), Some(truth), _, _) => run(map, truth, self.json.as_deref()),
            (_, _, Some(model), Some(data)) => {
                super::model_card::run(model, data, self.split, self.json.as_deref(), self.card.as_deref())
            }
            _ => anyhow::bail!("give --map with --truth, or --model with --data"),
        }
    }
}
