//! `cargo xtask demo`: the station end to end on a fresh machine — simulate a part (or take
//! a recording), inspect it on the emulated board with the real firmware and the shipped
//! model, and report what was found next to the part's true defects.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tests::emulator::{self, StationJob, StationRun};
use tqc_data::VerdictFile;
use tqc_eval::pod::study::{PodSummary, SUMMARY_FILE};
use tqc_shared::verdict::Verdict;

use crate::stages::StageTimes;
use crate::{Board, build_firmware, cargo, preflight, root, run, step};

pub struct DemoArgs {
    pub specimen: Option<PathBuf>,
    pub sequence: Option<PathBuf>,
    pub host: bool,
    pub board: Board,
    pub out: PathBuf,
    /// A trainer executable to run instead of building one.
    pub trainer: Option<PathBuf>,
    /// A model blob instead of the shipped (embedded) one.
    pub model: Option<PathBuf>,
}

/// The data of an `.npy` file the host twin wrote.
fn npy_data<T: npyz::Deserialize>(path: &Path) -> Result<Vec<T>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    npyz::NpyFile::new(bytes.as_slice())
        .and_then(|f| f.into_vec())
        .with_context(|| format!("{} is not the .npy file trainer infer writes", path.display()))
}

fn spinner(msg: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.set_message(msg.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// The trainer to run: the one given, or the workspace's, built now (cargo's progress
/// shows; the first build takes minutes).
fn trainer_exe(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(exe) = given {
        return Ok(exe.to_path_buf());
    }
    let images = emulator::build_host(&["-p", "trainer"])?;
    Ok(images.get("trainer")?.to_path_buf())
}

/// What a demo run found.
pub struct DemoOutcome {
    pub host: VerdictFile,
    pub device: Option<StationRun>,
}

pub fn demo(args: DemoArgs) -> Result<DemoOutcome> {
    let started = Instant::now();
    let qemu = if args.host { None } else { emulator::qemu().err() };
    let device = !args.host && qemu.is_none();
    step(&format!(
        "building what the demo runs: the host tools (simulator, host twin){} — a first build compiles \
         every dependency and takes minutes (about 20 on 2 cores); cargo's progress follows",
        if device {
            " and the emulated board's firmware"
        } else {
            ""
        }
    ));
    if device {
        preflight()?;
    }
    let trainer = trainer_exe(args.trainer.as_deref())?;
    let images = if device { Some(build_firmware()?) } else { None };
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let out = std::fs::canonicalize(&args.out).with_context(|| format!("{}", args.out.display()))?;
    let shipped = root().join("onnx_models/thermonet2.tqm");
    let model = match &args.model {
        Some(m) => std::fs::canonicalize(m).with_context(|| format!("model {}", m.display()))?,
        None => shipped,
    };

    let recording = match &args.sequence {
        Some(dir) => dir.clone(),
        None => {
            let specimen = args
                .specimen
                .as_ref()
                .map_or_else(|| "gfrp-reference".to_string(), |p| p.display().to_string());
            step(&format!("simulating {specimen} (seed 1) with the default station"));
            let dir = out.join("recording");
            run(Command::new(&trainer)
                .args(["simulate", "--specimen", &specimen, "--out"])
                .arg(&dir))?;
            dir
        }
    };

    step("host twin: trainer infer (the same features, engine and verdict code on the host)");
    let host_dir = out.join("host");
    run(Command::new(&trainer)
        .args(["infer", "--model"])
        .arg(&model)
        .arg("--sequence")
        .arg(&recording)
        .arg("--out")
        .arg(&host_dir))?;
    let host = VerdictFile::read(&host_dir)?;
    for image in ["contrast.png", "overlay.png"] {
        std::fs::copy(host_dir.join(image), out.join(image)).with_context(|| format!("copying {image}"))?;
    }

    let device = match (images, qemu) {
        (_, Some(e)) => {
            println!(
                "\n!! {e}.\n!! Falling back to --host: the results below come from the host twin; the device did NOT run."
            );
            None
        }
        (None, None) => None,
        (Some(images), None) => {
            step("emulated board: the real firmware with the shipped model under QEMU");
            let bar = spinner("inspecting on the emulated board (QEMU, -icount shift=0)");
            let run = emulator::run_station(&StationJob {
                board: args.board.emulated(),
                elf: images.get("station")?,
                sequence: &recording,
                model: args.model.as_ref().map(|_| model.as_path()),
                workdir: &out.join("device"),
                timeout: Duration::from_secs(1800),
                stall_at_frame: None,
                camera_faults: None,
            });
            bar.finish_and_clear();
            let run = run?;
            // The device and its host twin must agree to the byte.
            if let Some(classes) = &run.classes {
                let host_classes: Vec<u8> = npy_data(&host_dir.join("classes.npy"))?;
                if *classes != host_classes {
                    let differ = classes.iter().zip(&host_classes).filter(|(a, b)| a != b).count();
                    bail!("the device's class map differs from the host twin's on {differ} pixels");
                }
            }
            check_depth_map(&run, &model, &host_dir)?;
            Some(run)
        }
    };

    // The shipped model's qualification, when `trainer pod` has been run for it.
    let qualification = tqc_data::io::read_json::<PodSummary>(&model.with_extension(SUMMARY_FILE)).ok();
    let report = render(
        &host,
        device.as_ref(),
        &recording,
        args.host,
        qualification.as_ref(),
        args.model.as_deref(),
    )?;
    print!("{report}");
    let report_path = out.join("report.md");
    std::fs::write(&report_path, &report).with_context(|| format!("cannot write {}", report_path.display()))?;
    println!(
        "\nwritten: {} (report.md, contrast.png, overlay.png, host/, {})",
        out.display(),
        if device.is_some() { "device/" } else { "recording/" }
    );
    println!("total time {:.1?}", started.elapsed());
    Ok(DemoOutcome { host, device })
}

/// The device's depth codes against the host twin's depth map (mm, from the same codes
/// by the same formula): equal, or both absent.
fn check_depth_map(run: &StationRun, model: &Path, host_dir: &Path) -> Result<()> {
    let host_file = host_dir.join("depth_mm.npy");
    match (&run.depth, host_file.is_file()) {
        (None, false) => Ok(()),
        (Some(codes), true) => {
            let blob = std::fs::read(model).with_context(|| format!("cannot read {}", model.display()))?;
            let decoded = tqc_shared::blob::decode(&blob).map_err(|e| anyhow::anyhow!("{}: {e}", model.display()))?;
            let quant = decoded
                .depth_output()
                .and_then(|k| decoded.output_quant(k))
                .context("the device wrote depths for a model without a depth output")?;
            let map = tqc_shared::verdict::DepthMap { codes, quant };
            let device: Vec<f32> = codes.iter().map(|&c| map.millimetres(c)).collect();
            let host: Vec<f32> = npy_data(&host_file)?;
            let differ = device
                .iter()
                .zip(&host)
                .filter(|(a, b)| a.to_bits() != b.to_bits())
                .count();
            if differ > 0 || device.len() != host.len() {
                bail!("the device's depth map differs from the host twin's on {differ} pixels");
            }
            Ok(())
        }
        (Some(_), false) => bail!("the device wrote a depth map, the host twin none"),
        (None, true) => bail!("the host twin wrote a depth map, the device none"),
    }
}

fn mm(v: Option<[f64; 2]>) -> String {
    v.map_or_else(|| "–".into(), |[x, y]| format!("({x:.0}, {y:.0})"))
}

/// The demo's report (Markdown; also what the terminal shows).
fn render(
    host: &VerdictFile,
    device: Option<&StationRun>,
    recording: &Path,
    host_only: bool,
    qualification: Option<&PodSummary>,
    model: Option<&Path>,
) -> Result<String> {
    let mut s = String::new();
    writeln!(s, "\n# ThermoQC demo\n")?;
    writeln!(s, "Recording: `{}`\n", recording.display())?;
    match device {
        Some(run) => {
            let r = &run.report;
            writeln!(
                s,
                "Ran on: the emulated board (QEMU, real firmware, {})\n",
                match model {
                    Some(m) => format!("model `{}` loaded from the host", m.display()),
                    None => "embedded model".to_string(),
                }
            )?;
            writeln!(
                s,
                "**Verdict: {}** — LED lit: {}",
                r.verdict.label(),
                run.leds.lit.join(", ")
            )?;
            if let Some(f) = &r.fault {
                writeln!(s, "\nFault: {f}")?;
            }
            writeln!(
                s,
                "\nThe device's {} the host twin's byte for byte.",
                if run.depth.is_some() {
                    "class map and depth map equal"
                } else {
                    "class map equals"
                }
            )?;
        }
        None => {
            let why = if host_only {
                "--host was asked for"
            } else {
                "qemu-system-arm is missing"
            };
            writeln!(s, "Ran on: the host twin only ({why}); the device did not run.\n")?;
            let v = host.verdict;
            writeln!(
                s,
                "**Verdict: {}** — the device would light {} ({})",
                v.label(),
                v.label(),
                v.colour()
            )?;
            if let Some(f) = &host.fault {
                writeln!(s, "\nFault: {f}")?;
            }
        }
    }
    writeln!(s, "\n![class map over the best-contrast image](overlay.png)\n")?;
    writeln!(s, "## Defects found\n")?;
    let with_depth = host.regions.iter().any(|r| r.depth_mm.is_some());
    // A depth head is trained on in-depth defects: other classes get no depth.
    let in_depth = tqc_data::Class::Subsurface.name();
    let depth_of = |class: &str, depth: Option<f64>| {
        depth
            .filter(|_| class == in_depth)
            .map_or("–".into(), |d| format!("{d:.1}"))
    };
    writeln!(
        s,
        "| class | pixels | centre (mm) | equivalent ⌀ (mm) | estimated depth (mm) |\n| --- | ---: | --- | ---: | ---: |"
    )?;
    for r in &host.regions {
        writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            r.class,
            r.pixels,
            mm(r.centroid_mm),
            r.equivalent_diameter_mm.map_or("–".into(), |d| format!("{d:.1}")),
            depth_of(&r.class, r.depth_mm)
        )?;
    }
    if !with_depth {
        writeln!(s, "\n(this model has no depth output: depths are not estimated)")?;
    }
    if let Some(truth) = &host.truth {
        writeln!(
            s,
            "\n## The part's true defects ({} of {} found)\n",
            truth.found,
            truth.defects.len()
        )?;
        let a90 = qualification.and_then(|q| q.a90);
        match qualification {
            Some(q) => writeln!(
                s,
                "The station's qualification ({}, {} plates, {} in-depth defects): a90 = {} and a90/95 = {} in aspect \
                 ratio (diameter / depth), at {:.1} false calls per m². An in-depth defect below a90 is one the \
                 qualification expects to be missed often.\n",
                q.method,
                q.plates,
                q.in_depth_defects,
                q.a90.map_or("–".into(), |v| format!("{v:.2}")),
                q.a90_95.map_or("not reached".into(), |v| format!("{v:.2}")),
                q.false_calls_per_m2
            )?,
            None => writeln!(s, "(no POD qualification of this model beside it: run `trainer pod`)\n")?,
        }
        writeln!(
            s,
            "| defect | class | centre (mm) | ⌀ (mm) | depth (mm) | estimated depth (mm) | aspect ratio | vs a90 | found |\n| --- | --- | --- | ---: | ---: | ---: | ---: | --- | --- |"
        )?;
        for d in &truth.defects {
            let ratio = d.depth_mm.filter(|&v| v > 0.0).map(|v| d.equivalent_diameter_mm / v);
            let expected = match (ratio, a90) {
                (Some(r), Some(a)) if r >= a => "above: expected found",
                (Some(_), Some(_)) => "below: may be missed",
                _ => "–",
            };
            writeln!(
                s,
                "| {} | {} | {} | {:.1} | {} | {} | {} | {expected} | {} |",
                d.name,
                d.class,
                mm(Some(d.centre_mm)),
                d.equivalent_diameter_mm,
                d.depth_mm.map_or("–".into(), |v| format!("{v:.2}")),
                depth_of(&d.class, d.estimated_depth_mm),
                ratio.map_or("–".into(), |r| format!("{r:.2}")),
                if d.found { "yes" } else { "no" }
            )?;
        }
    }
    if let Some(run) = device {
        writeln!(s, "\n## Time on the device\n")?;
        writeln!(
            s,
            "Instructions counted under QEMU (`-icount shift=0`, SysTick), and what they take at \
             480 MHz (one instruction per cycle).\n"
        )?;
        writeln!(s, "| stage | instructions | at 480 MHz |\n| --- | ---: | ---: |")?;
        let times = StageTimes::of(&run.report);
        for row in &times.rows {
            let time = row
                .ms
                .map_or_else(|| "(emulation)".to_string(), |ms| format!("{ms:.1} ms"));
            writeln!(s, "| {} | {} | {time} |", row.name, row.instructions)?;
        }
        let a = &run.report.acquisition;
        writeln!(
            s,
            "\nThe camera stage is the emulation reading and converting recorded frames (a real \
             Lepton streams them over SPI). Features run on every one of the {} frames as it \
             arrives; inference and the verdict run once at the end.",
            a.frames
        )?;
    }
    Ok(s)
}

/// The demo's own end-to-end check (a stage of `cargo xtask test`): the demo on the
/// reference plate gives FAIL on the emulated board with all its outputs, `--host` on the
/// same recording gives the same verdict and the same class map, and a machine without
/// QEMU falls back to the host twin and says so.
pub fn check(board: Board, trainer: &Path) -> Result<()> {
    let base = root().join("target/xtask/demo-check");
    let device_out = base.join("device-run");
    let on_board = demo(DemoArgs {
        specimen: None,
        sequence: None,
        host: false,
        board,
        out: device_out.clone(),
        trainer: Some(trainer.to_path_buf()),
        model: None,
    })?;
    for f in [
        "report.md",
        "contrast.png",
        "overlay.png",
        "host/verdict.json",
        "device/classes.u8",
        "device/report.bin",
    ] {
        if !device_out.join(f).is_file() {
            bail!("demo check: {} was not written", device_out.join(f).display());
        }
    }
    // The verdict as the device reported it (and lit it), and as the host twin wrote it.
    let Some(device) = &on_board.device else {
        bail!("demo check: the emulated board did not run");
    };
    if device.report.verdict != Verdict::Fail
        || device.leds.lit != ["FAIL"]
        || VerdictFile::read(&device_out.join("host"))?.verdict != Verdict::Fail
    {
        bail!(
            "demo check: the reference plate gave {} with LEDs {:?} on the emulated board and {} on the host twin, \
             not FAIL with the red LED",
            device.report.verdict.label(),
            device.leds.lit,
            on_board.host.verdict.label()
        );
    }
    let host_out = base.join("host-run");
    demo(DemoArgs {
        specimen: None,
        sequence: Some(device_out.join("recording")),
        host: true,
        board,
        out: host_out.clone(),
        trainer: Some(trainer.to_path_buf()),
        model: None,
    })?;
    let host = VerdictFile::read(&host_out.join("host"))?;
    if host.verdict != Verdict::Fail {
        bail!(
            "demo check: --host gave {} on the reference plate",
            host.verdict.label()
        );
    }
    let device_classes = std::fs::read(device_out.join("device/classes.u8"))?;
    if npy_data::<u8>(&host_out.join("host/classes.npy"))? != device_classes {
        bail!("demo check: --host and the emulated board give different class maps");
    }
    // A machine without QEMU: the demo says so and falls back to the host twin.
    let fallback_out = base.join("no-qemu-run");
    // Through cargo: `cargo test` may have rebuilt this very binary under us.
    let fallback = cargo()
        .current_dir(root())
        .args(["run", "--quiet", "--locked", "-p", "xtask", "--", "demo", "--sequence"])
        .arg(device_out.join("recording"))
        .arg("--out")
        .arg(&fallback_out)
        .arg("--trainer")
        .arg(trainer)
        .env("QEMU_SYSTEM_ARM", base.join("no-such-qemu"))
        .output()
        .context("running the demo without QEMU")?;
    let said = String::from_utf8_lossy(&fallback.stdout);
    let fallback_verdict = VerdictFile::read(&fallback_out.join("host"));
    if !fallback.status.success()
        || !said.contains("qemu-system-arm not found")
        || !said.contains("the device did NOT run")
        || fallback_verdict.as_ref().map(|v| v.verdict).ok() != Some(Verdict::Fail)
    {
        bail!(
            "demo check: without QEMU the demo did not fall back clearly ({}):\n{said}\n{}",
            fallback.status,
            String::from_utf8_lossy(&fallback.stderr)
        );
    }
    if npy_data::<u8>(&fallback_out.join("host/classes.npy"))? != device_classes {
        bail!("demo check: the fallback's class map differs from the emulated board's");
    }
    println!("demo check: emulated board, --host and the no-QEMU fallback agree (FAIL, identical class maps)");
    Ok(())
}
