//! `trainer pod`: a probability-of-detection study on an evaluation set — per-plate
//! outcomes (resumable, shardable), then the POD table (Markdown and JSON) and plots.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use plotters::prelude::*;

use tqc_data::index::Shard;
use tqc_eval::pod::study::{Curve, MethodPod, Operating, PodReport, SUMMARY_FILE, summarize};
use tqc_learn::pod::{CNN_INT8, StudyModel, method_names, read_outcomes, run_study};
use tqc_shared::verdict::VerdictConfig;

/// The arguments of `trainer pod`.
#[derive(clap::Args)]
#[command(after_long_help = tqc_eval::pod::study::RULES)]
pub struct PodArgs {
    /// Evaluation set (a dataset folder from `trainer dataset`, with its own seed; every
    /// plate is used, whatever its split).
    #[arg(long)]
    data: PathBuf,
    /// Model blob; its float ONNX twin is the file beside it with the .onnx extension
    /// (thermonet.tqm → thermonet.onnx) unless --float is given.
    #[arg(long, default_value = "onnx_models/thermonet2.tqm")]
    model: PathBuf,
    #[arg(long)]
    float: Option<PathBuf>,
    /// Study folder: plates/plate-NNNNN.json per plate, then pod.json, pod.md, PNGs and
    /// pod-summary.json (the CNN int8's figures, what the demo shows; the shipped model's
    /// is onnx_models/thermonet2.pod-summary.json).
    #[arg(long, default_value = "pod")]
    out: PathBuf,
    /// Compute only shard K of N of the plates (contiguous blocks) and stop; a run without
    /// --shard then reuses every plate already done and writes the report. Outcomes are
    /// written whole (temporary name, renamed), so a retried shard is safe.
    #[arg(long)]
    shard: Option<Shard>,
    /// Also write the report beside the model, as the shipped qualification the model
    /// card leads with and the demo shows: `<model>.pod.md` and `<model>.pod-summary.json`.
    #[arg(long)]
    ship: bool,
    /// Smallest region the verdict counts (pixels): the station's rule.
    #[arg(long, default_value_t = VerdictConfig::DEFAULT.min_region_pixels)]
    min_region_pixels: u32,
}

impl PodArgs {
    pub fn run(self) -> Result<()> {
        let float = self.float.clone().unwrap_or_else(|| self.model.with_extension("onnx"));
        let model = StudyModel::load(&self.model, &float)?;
        let cfg = VerdictConfig {
            min_region_pixels: self.min_region_pixels,
        };
        let shard = self.shard.unwrap_or(Shard::ALL);
        let started = Instant::now();
        let bar = crate::progress::bar(0, "inspecting", "plates");
        let computed = run_study(&model, &self.data, &self.out, shard, &cfg, |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        })?;
        bar.finish_and_clear();
        println!(
            "{computed} plates inspected by every method in {:.1} s → {}",
            started.elapsed().as_secs_f64(),
            self.out.join("plates").display()
        );
        if self.shard.is_some() {
            println!(
                "shard {shard} done; run trainer pod without --shard to write the report once every shard has run"
            );
            return Ok(());
        }
        let outcomes = read_outcomes(&self.data, &self.out, &model.provenance)?;
        let report = summarize(&outcomes, &method_names(), CNN_INT8)?;
        write_report(&report, &self.out)?;
        print!("{}", table(&report));
        println!("\n→ {}", self.out.join("pod.md").display());
        if self.ship {
            let md = self.model.with_extension("pod.md");
            tqc_data::io::write_atomic(&md, markdown(&report).as_bytes())?;
            if let Some(summary) = report.summary(&report.reference) {
                tqc_data::io::write_json(&self.model.with_extension(SUMMARY_FILE), &summary)?;
            }
            println!("→ {} and {SUMMARY_FILE} beside it", md.display());
        }
        Ok(())
    }
}

/// pod.json, pod.md and the plots.
pub fn write_report(report: &PodReport, out: &Path) -> Result<()> {
    tqc_data::io::write_json(&out.join("pod.json"), report)?;
    let page = format!("# Probability of detection\n\n{}", markdown(report));
    tqc_data::io::write_atomic(&out.join("pod.md"), page.as_bytes())?;
    for m in &report.methods {
        curve_png(&out.join(format!("pod-{}.png", slug(&m.method))), m)?;
    }
    froc_png(&out.join("pod-vs-false-calls.png"), report)?;
    if let Some(summary) = report.summary(&report.reference) {
        tqc_data::io::write_json(&out.join(SUMMARY_FILE), &summary)?;
    }
    Ok(())
}

fn slug(name: &str) -> String {
    let s: String = name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    s.split('-').filter(|p| !p.is_empty()).collect::<Vec<_>>().join("-")
}

fn opt(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.2}"))
}

fn pct(p: &tqc_eval::pod::study::Proportion) -> String {
    format!(
        "{}/{} ({:.0} %, {:.0}–{:.0} %)",
        p.k,
        p.n,
        100.0 * p.rate,
        100.0 * p.interval[0],
        100.0 * p.interval[1]
    )
}

fn row(name: &str, o: &Operating) -> String {
    let p = &o.point;
    let a90_95 = curve_bound(&o.aspect);
    format!(
        "| {name} | {:.1} | {} | {} | {a90_95} | {} | {} | {:.1} ({:.1}–{:.1}) | {} |\n",
        p.threshold,
        opt(o.aspect.a50),
        opt(o.aspect.a90),
        pct(&p.in_depth_found),
        pct(&p.surface_found),
        p.false_calls.per_m2,
        p.false_calls.interval[0],
        p.false_calls.interval[1],
        pct(&p.false_fail),
    )
}

const HEAD: &str = "| method | threshold | a50 | a90 | a90/95 | in-depth defects found | surface spots found | false calls per m² (95 %) | false FAIL, sound parts (95 %) |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";

/// The POD table at each method's own setting and at the reference's false-call rate.
pub fn table(r: &PodReport) -> String {
    let mut s = format!(
        "POD study: {} plates ({} sound), {} in-depth defects, {} surface spots, {:.2} m² inspected\n\
         a50 / a90 / a90/95: aspect ratio (diameter / depth) of in-depth defects\n\n### At each method's own setting\n\n{HEAD}",
        r.plates, r.sound_plates, r.in_depth_defects, r.surface_defects, r.inspected_m2
    );
    for m in &r.methods {
        s += &row(&m.method, &m.operating);
    }
    s += &format!(
        "\n### At the false-call rate of {} ({:.1} per m²)\n\n{HEAD}",
        r.reference,
        reference_rate(r)
    );
    for m in &r.methods {
        s += &row(&m.method, m.at_reference_rate.as_ref().unwrap_or(&m.operating));
    }
    s
}

fn reference_rate(r: &PodReport) -> f64 {
    r.methods
        .iter()
        .find(|m| m.method == r.reference)
        .map_or(f64::NAN, |m| m.operating.point.false_calls.per_m2)
}

/// The whole report as Markdown (its headings start at level 3, so it nests in a card).
pub fn markdown(r: &PodReport) -> String {
    let mut s = table(r);
    s += "\n### Flat-bottom holes only (aspect ratio), own setting\n\n| method | holes | found | a50 (95 % interval) | a90 | a90/95 |\n| --- | ---: | ---: | ---: | ---: | ---: |\n";
    for m in &r.methods {
        let c = &m.operating.aspect_holes;
        s += &format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            m.method,
            c.n,
            c.hits,
            c.a50_interval
                .map_or("–".into(), |[lo, hi]| format!("{} ({lo:.2}–{hi:.2})", opt(c.a50))),
            opt(c.a90),
            curve_bound(c)
        );
    }
    s += "\n### Depth down to which 90 % are found, per diameter class (own setting)\n\n| method |";
    let classes = &r.methods[0].operating.depth_by_diameter;
    for c in classes {
        s += &format!(" {} |", c.defects);
    }
    s += "\n| --- |";
    s += &" ---: |".repeat(classes.len());
    s += "\n";
    for m in &r.methods {
        s += &format!("| {} |", m.method);
        for c in &m.operating.depth_by_diameter {
            s += &format!(
                " d90 {} mm, d90/95 {} ({}/{}) |",
                opt(c.a90),
                curve_bound(c),
                c.hits,
                c.n
            );
        }
        s += "\n";
    }
    s += "\n### Found per kind of defect (own setting)\n\n| method |";
    for (k, _) in &r.methods[0].operating.by_kind {
        s += &format!(" {} |", k.name());
    }
    s += "\n| --- |";
    s += &" ---: |".repeat(r.methods[0].operating.by_kind.len());
    s += "\n";
    for m in &r.methods {
        s += &format!("| {} |", m.method);
        for (_, p) in &m.operating.by_kind {
            s += &format!(" {} |", pct(p));
        }
        s += "\n";
    }
    s += &format!(
        "\n### Surface spots the camera sees (own setting)\n\nSpots whose peak local contrast after the heating reaches {} × NETD in magnitude (footprint mean − its sound ring, measured on the recording; a spot that absorbs less is darker):\n\n| method | found |\n| --- | ---: |\n",
        tqc_eval::pod::study::VISIBLE_NETD
    );
    for m in &r.methods {
        s += &format!("| {} | {} |\n", m.method, pct(&m.operating.visible_surface_found));
    }
    s += &format!("\nRules: {}.\n", r.rules);
    let unfitted: Vec<String> = r
        .methods
        .iter()
        .filter_map(|m| {
            m.operating
                .aspect
                .error
                .as_ref()
                .map(|e| format!("- {}: {e}", m.method))
        })
        .collect();
    if !unfitted.is_empty() {
        s += &format!("\nNo POD fit (aspect ratio, own setting):\n{}\n", unfitted.join("\n"));
    }
    s
}

/// a90/95, marked when it lies beyond the sizes the study holds (an extrapolation).
fn curve_bound(c: &Curve) -> String {
    match (c.a90_95, &c.fit) {
        (Some(v), Some(f)) if v > f.size_range[1] || v < f.size_range[0] => format!("{v:.2} (beyond the data)"),
        (Some(v), _) => format!("{v:.2}"),
        (None, Some(_)) => "not reached".into(),
        (None, None) => "–".into(),
    }
}

const PALETTE: [RGBColor; 6] = [
    RGBColor(200, 30, 30),
    RGBColor(240, 130, 40),
    RGBColor(30, 90, 200),
    RGBColor(40, 150, 60),
    RGBColor(140, 60, 170),
    RGBColor(90, 90, 90),
];

/// Renders into memory and writes the PNG whole.
fn render(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> Result<()>,
) -> Result<()> {
    let mut buf = vec![0u8; (size.0 * size.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()?;
    }
    crate::plot::write_rgb_png(path, size.0 as usize, size.1 as usize, &buf)
        .with_context(|| format!("plotting {}", path.display()))
}

/// POD against aspect ratio at the method's own setting: the fitted curve, its 95 %
/// Wald band, a90 and a90/95, and the hits (top) and misses (bottom).
fn curve_png(path: &Path, m: &MethodPod) -> Result<()> {
    let c = &m.operating.aspect;
    render(path, (820, 520), |root| {
        let (lo, hi) = c
            .points
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.size), b.max(p.size)));
        let (lo, hi) = if lo < hi { (lo * 0.9, hi * 1.1) } else { (0.1, 100.0) };
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!(
                    "{}: POD of in-depth defects (threshold {:.1})",
                    m.method, m.operating.point.threshold
                ),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d((lo..hi).log_scale(), -0.05f64..1.05)?;
        chart
            .configure_mesh()
            .x_desc("aspect ratio: diameter / depth")
            .y_desc("probability of detection")
            .draw()?;
        let jitter = |i: usize| ((i * 7919) % 100) as f64 / 100.0 * 0.03;
        chart
            .draw_series(c.points.iter().enumerate().map(|(i, p)| {
                let y = if p.hit { 1.0 - jitter(i) } else { jitter(i) };
                Circle::new((p.size, y), 3, BLACK.mix(0.5).filled())
            }))?
            .label(format!("hits (1) and misses (0), {} of {}", c.hits, c.n))
            .legend(|(x, y)| Circle::new((x + 7, y), 3, BLACK.mix(0.5).filled()));
        if let Some(f) = &c.fit {
            let xs: Vec<f64> = (0..=200)
                .map(|k| (lo.ln() + (hi.ln() - lo.ln()) * k as f64 / 200.0).exp())
                .collect();
            chart
                .draw_series(std::iter::once(Polygon::new(
                    xs.iter()
                        .map(|&x| (x, f.pod_upper(x, 0.95)))
                        .chain(xs.iter().rev().map(|&x| (x, f.pod_lower(x, 0.95))))
                        .collect::<Vec<_>>(),
                    PALETTE[2].mix(0.2),
                )))?
                .label("95 % Wald confidence band")
                .legend(|(x, y)| Rectangle::new([(x, y - 4), (x + 15, y + 4)], PALETTE[2].mix(0.2).filled()));
            chart
                .draw_series(LineSeries::new(
                    xs.iter().map(|&x| (x, f.pod(x))),
                    PALETTE[2].stroke_width(2),
                ))?
                .label("POD, maximum likelihood (logit of ln size)")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], PALETTE[2].stroke_width(2)));
            for (value, label, colour) in [(c.a90, "a90", PALETTE[0]), (c.a90_95, "a90/95", PALETTE[1])] {
                if let Some(v) = value.filter(|v| *v > lo && *v < hi) {
                    chart
                        .draw_series(LineSeries::new([(v, 0.0), (v, 0.9)], colour.stroke_width(2)))?
                        .label(format!("{label} = {v:.2}"))
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], colour.stroke_width(2)));
                }
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.85))
            .draw()?;
        Ok(())
    })
}

/// Detection against false calls, every method over its sweep, with each method's own
/// setting marked: read "detects more" and "calls less" together.
fn froc_png(path: &Path, r: &PodReport) -> Result<()> {
    render(path, (900, 560), |root| {
        let rates: Vec<f64> = r
            .methods
            .iter()
            .flat_map(|m| m.sweep.iter().map(|p| p.false_calls.per_m2))
            .filter(|v| *v > 0.0)
            .collect();
        let lo = rates.iter().copied().fold(f64::MAX, f64::min).min(1.0) * 0.5;
        let hi = rates.iter().copied().fold(0.0, f64::max).max(10.0) * 2.0;
        // A rate of zero is drawn at the left edge.
        let at = |v: f64| v.max(lo);
        let mut chart = ChartBuilder::on(root)
            .caption("in-depth defects found against false calls", ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d((lo..hi).log_scale(), 0f64..1f64)?;
        chart
            .configure_mesh()
            .x_desc("false calls per m² of sound material (0 drawn at the left edge)")
            .y_desc("share of in-depth defects found")
            .draw()?;
        for (m, colour) in r.methods.iter().zip(PALETTE.iter().cycle()) {
            let colour = *colour;
            chart
                .draw_series(LineSeries::new(
                    m.sweep
                        .iter()
                        .map(|p| (at(p.false_calls.per_m2), p.in_depth_found.rate)),
                    colour.stroke_width(2),
                ))?
                .label(m.method.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], colour.stroke_width(2)));
            let o = &m.operating.point;
            chart.draw_series(std::iter::once(Circle::new(
                (at(o.false_calls.per_m2), o.in_depth_found.rate),
                6,
                colour.filled(),
            )))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.85))
            .draw()?;
        Ok(())
    })
}
