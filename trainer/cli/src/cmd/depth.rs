//! `trainer depth-head`: a network's own depth head scored on a held-out split, or, for a
//! network without one, how much defect depth its last hidden maps
//! carry — a least-squares 1×1 depth head on the training plates, scored on a held-out
//! split (table + JSON).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use tqc_learn::depth::{DepthFile, DepthReport, fit, mean_depth, network_estimates, score, score_estimates};

use tqc_data::index::{Split, split_dirs};
use tqc_learn::pipeline::{load_plates, read_float_model};

pub fn run(model: &Path, data: &Path, split: Split, json: Option<&Path>) -> Result<()> {
    let (net, meta) = read_float_model(model)?;
    let (train_dirs, held_dirs) = (split_dirs(data, Split::Train)?, split_dirs(data, split)?);
    if train_dirs.is_empty() || held_dirs.is_empty() {
        bail!(
            "{}: the index needs plates in the train and the {split} split",
            data.display()
        );
    }
    let train = load_plates(&train_dirs, &meta.features)?;
    let held = load_plates(&held_dirs, &meta.features)?;
    let (head, report) = if net.depth_output().is_some() {
        // The network's own depth head, on the defects its class map finds.
        let (estimates, maps): (Vec<_>, Vec<_>) = held.iter().filter_map(|s| network_estimates(&net, s)).unzip();
        let trivial = mean_depth(&train).context("the training plates' mean depth")?;
        let report = score_estimates(&held, &estimates, Some(&maps), trivial)
            .with_context(|| format!("scoring on the {split} plates"))?;
        (None, report)
    } else {
        let head = fit(&net, &train).context("fitting the depth head on the training plates")?;
        let report = score(&head, &net, &held).with_context(|| format!("scoring on the {split} plates"))?;
        (Some(head), report)
    };
    let names: Vec<String> = held_dirs
        .iter()
        .map(|d| {
            d.file_name()
                .map_or_else(|| d.display().to_string(), |n| n.to_string_lossy().into_owned())
        })
        .collect();
    print!(
        "{}",
        table(&report, split, &names, head.as_ref().map(|h| h.training_pixels))
    );
    if let Some(path) = json {
        let file = DepthFile {
            data: data.display().to_string(),
            head,
            model: model.display().to_string(),
            report,
            split,
        };
        tqc_data::io::write_json(path, &file)?;
        println!("→ {}", path.display());
    }
    Ok(())
}

fn table(r: &DepthReport, split: Split, names: &[String], probe_pixels: Option<usize>) -> String {
    let mut s = String::new();
    let plates = names.len();
    let _ = match probe_pixels {
        Some(n) => writeln!(
            s,
            "depth head (1×1, least squares on {n} in-depth pixels of the training plates), {plates} {split} plates:\n"
        ),
        None => writeln!(
            s,
            "the network's depth head, {plates} {split} plates (defect figures over the defects its class map finds):\n"
        ),
    };
    let _ = writeln!(s, "| estimate | pixel MAE (mm) | defect MAE (mm) |");
    let _ = writeln!(s, "| --- | ---: | ---: |");
    let _ = writeln!(s, "| depth head | {:.2} | {:.2} |", r.mae_mm, r.defect_mae_mm);
    let _ = writeln!(
        s,
        "| training mean depth | {:.2} | {:.2} |",
        r.mean_estimate_mae_mm, r.defect_mean_estimate_mae_mm
    );
    let _ = writeln!(
        s,
        "\n| depth band (mm) | defects | found | MAE of the found (mm) |\n| --- | ---: | ---: | ---: |"
    );
    for b in &r.bands {
        let _ = writeln!(
            s,
            "| {:.0}–{} | {} | {} | {} |",
            b.from_mm,
            b.to_mm.map_or("…".into(), |t| format!("{t:.0}")),
            b.defects,
            b.found,
            b.mae_mm.map_or("–".into(), |m| format!("{m:.2}"))
        );
    }
    let _ = writeln!(
        s,
        "\n{} true in-depth pixels, {} defects:\n\n| plate | pixels | depth (mm) | estimate (mm) | found |\n| --- | ---: | ---: | ---: | --- |",
        r.pixels,
        r.defects.len()
    );
    for d in &r.defects {
        let _ = writeln!(
            s,
            "| {} | {} | {:.2} | {:.2} | {} |",
            names.get(d.plate).map_or("?", String::as_str),
            d.pixels,
            d.depth_mm,
            d.estimate_mm,
            match d.found {
                Some(true) => "yes",
                Some(false) => "no",
                None => "–",
            }
        );
    }
    s
}

/// The arguments of `trainer depth-head`.
#[derive(clap::Args)]
pub struct DepthHeadArgs {
    /// The float ONNX model (e.g. onnx_models/thermonet.onnx).
    #[arg(long, default_value = "onnx_models/thermonet.onnx")]
    model: PathBuf,
    /// A dataset folder (from `trainer dataset`).
    #[arg(long)]
    data: PathBuf,
    #[arg(long, default_value = "test")]
    split: Split,
    /// Also write the head and the scores as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

impl DepthHeadArgs {
    pub fn run(self) -> Result<()> {
        run(&self.model, &self.data, self.split, self.json.as_deref())
    }
}
