//! `trainer depth-head`: a network's own depth head scored on a held-out split — the float
//! ONNX file's, or the int8 blob's as the device computes it — or, for a network without
//! one, how much defect depth its last hidden maps
//! carry — a least-squares 1×1 depth head on the training plates, scored on a held-out
//! split (table + JSON).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use tqc_learn::depth::{
    DepthFile, DepthReport, engine_estimates, fit, mean_depth, network_estimates, score, score_estimates,
};

use tqc_data::index::{Split, split_dirs};
use tqc_learn::pipeline::{load_plates, read_float_model};

pub fn run(model: &Path, data: &Path, split: Split, json: Option<&Path>) -> Result<()> {
    let (train_dirs, held_dirs) = (split_dirs(data, Split::Train)?, split_dirs(data, split)?);
    if model.extension().is_some_and(|e| e == "tqm") {
        let report = engine_report(model, data, split, &train_dirs, &held_dirs)?;
        print!("{}", table(&report, split, &plate_names(&held_dirs), None));
        return write_report(json, data, model, None, report, split);
    }
    let (net, meta) = read_float_model(model)?;
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
    print!(
        "{}",
        table(
            &report,
            split,
            &plate_names(&held_dirs),
            head.as_ref().map(|h| h.training_pixels)
        )
    );
    write_report(json, data, model, head, report, split)
}

/// The int8 blob's depth output, as the device computes it, on the defects the blob's
/// own class map finds.
pub fn engine_report(
    model: &Path,
    data: &Path,
    split: Split,
    train_dirs: &[PathBuf],
    held_dirs: &[PathBuf],
) -> Result<DepthReport> {
    if train_dirs.is_empty() || held_dirs.is_empty() {
        bail!(
            "{}: the index needs plates in the train and the {split} split",
            data.display()
        );
    }
    let blob = std::fs::read(model).with_context(|| format!("cannot read {}", model.display()))?;
    let m =
        tqc_shared::blob::decode(&blob).with_context(|| format!("{} is not a valid model blob", model.display()))?;
    if m.depth_output().is_none() {
        bail!("{}: the model has no depth output", model.display());
    }
    let spec = m
        .desc
        .input
        .features
        .clone()
        .with_context(|| format!("{}: no feature schedule in the blob", model.display()))?;
    let input = m.desc.input.quant;
    if input != tqc_eval::features::FEATURE_QUANT {
        bail!(
            "{}: input quantization {input:?} differs from the trainer's {:?}",
            model.display(),
            tqc_eval::features::FEATURE_QUANT
        );
    }
    let train = load_plates(train_dirs, &spec)?;
    let held = load_plates(held_dirs, &spec)?;
    let mut estimates = Vec::with_capacity(held.len());
    let mut maps = Vec::with_capacity(held.len());
    for (s, dir) in held.iter().zip(held_dirs) {
        let (e, m) = engine_estimates(&m, s, input)
            .with_context(|| format!("{}: the engine", dir.display()))?
            .context("no depth output")?;
        estimates.push(e);
        maps.push(m);
    }
    let trivial = mean_depth(&train).context("the training plates' mean depth")?;
    score_estimates(&held, &estimates, Some(&maps), trivial).with_context(|| format!("scoring on the {split} plates"))
}

pub fn plate_names(dirs: &[PathBuf]) -> Vec<String> {
    dirs.iter()
        .map(|d| {
            d.file_name()
                .map_or_else(|| d.display().to_string(), |n| n.to_string_lossy().into_owned())
        })
        .collect()
}

fn write_report(
    json: Option<&Path>,
    data: &Path,
    model: &Path,
    head: Option<tqc_learn::depth::DepthHead>,
    report: DepthReport,
    split: Split,
) -> Result<()> {
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

pub fn table(r: &DepthReport, split: Split, names: &[String], probe_pixels: Option<usize>) -> String {
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
    let mm = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.2}"));
    let _ = writeln!(s, "| depth head | {:.2} | {} |", r.mae_mm, mm(r.defect_mae_mm));
    let _ = writeln!(
        s,
        "| training mean depth | {:.2} | {} |",
        r.mean_estimate_mae_mm,
        mm(r.defect_mean_estimate_mae_mm)
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
    /// The model: a float ONNX file (e.g. onnx_models/thermonet2.onnx), or an int8 blob
    /// (`.tqm`, e.g. onnx_models/thermonet2.tqm) whose depth output is scored as the
    /// device computes it.
    #[arg(long, default_value = "onnx_models/thermonet2.tqm")]
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
