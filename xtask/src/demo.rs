//! `cargo xtask demo`: the station end to end on a fresh machine — simulate a part (or take
//! a recording), inspect it on the emulated board with the real firmware and the shipped
//! model, and report what was found next to the part's true defects.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;
use tests::emulator::{self, StationJob, StationRun};
use tqc_shared::inspection::Stage;

use crate::{BOARD_HZ, Board, build_firmware, cargo, root, run, step};

pub struct DemoArgs {
    pub specimen: Option<PathBuf>,
    pub sequence: Option<PathBuf>,
    pub host: bool,
    pub board: Board,
    pub out: PathBuf,
    /// A trainer executable to run instead of `cargo run -p trainer`.
    pub trainer: Option<PathBuf>,
}

impl DemoArgs {
    fn trainer(&self) -> Command {
        match &self.trainer {
            Some(exe) => Command::new(exe),
            None => {
                let mut c = cargo();
                c.current_dir(root())
                    .args(["run", "--quiet", "--locked", "-p", "trainer", "--"]);
                c
            }
        }
    }
}

/// The data of a u8 `.npy` file (header skipped).
fn npy_data(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let header = match bytes.get(6) {
        Some(1) => 10 + u16::from_le_bytes([bytes[8], bytes[9]]) as usize,
        Some(2 | 3) => 12 + u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
        _ => bail!("{} is not an .npy file", path.display()),
    };
    Ok(bytes.get(header..).unwrap_or_default().to_vec())
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

pub fn demo(args: DemoArgs) -> Result<()> {
    let started = Instant::now();
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let out = std::fs::canonicalize(&args.out)?;
    let model = root().join("onnx_models/thermonet.tqm");

    let recording = match &args.sequence {
        Some(dir) => dir.clone(),
        None => {
            let specimen = args
                .specimen
                .as_ref()
                .map_or_else(|| "gfrp-reference".to_string(), |p| p.display().to_string());
            step(&format!("simulating {specimen} (seed 1) with the default station"));
            let dir = out.join("recording");
            run(args
                .trainer()
                .args(["simulate", "--specimen", &specimen, "--out"])
                .arg(&dir))?;
            dir
        }
    };

    step("host twin: trainer infer (the same features, engine and verdict code on the host)");
    let host_dir = out.join("host");
    run(args
        .trainer()
        .args(["infer", "--model"])
        .arg(&model)
        .arg("--sequence")
        .arg(&recording)
        .arg("--out")
        .arg(&host_dir))?;
    let verdict_path = host_dir.join("verdict.json");
    let host: Value = serde_json::from_str(
        &std::fs::read_to_string(&verdict_path).with_context(|| format!("cannot read {}", verdict_path.display()))?,
    )?;
    for image in ["contrast.png", "overlay.png"] {
        std::fs::copy(host_dir.join(image), out.join(image)).with_context(|| format!("copying {image}"))?;
    }

    let device = if args.host {
        None
    } else if let Err(e) = emulator::qemu() {
        println!(
            "\n!! {e}.\n!! Falling back to --host: the results below come from the host twin; the device did NOT run."
        );
        None
    } else {
        step("emulated board: the real firmware with the shipped model under QEMU");
        build_firmware()?;
        let bar = spinner("inspecting on the emulated board (QEMU, -icount shift=0)");
        let run = emulator::run_station(&StationJob {
            board: args.board.emulated(),
            sequence: &recording,
            model: None,
            workdir: &out.join("device"),
            timeout: Duration::from_secs(1800),
            stall_at_frame: None,
        });
        bar.finish_and_clear();
        let run = run?;
        // The device and its host twin must agree to the byte.
        if let Some(classes) = &run.classes {
            let host_classes = npy_data(&host_dir.join("classes.npy"))?;
            if *classes != host_classes {
                let differ = classes.iter().zip(&host_classes).filter(|(a, b)| a != b).count();
                bail!("the device's class map differs from the host twin's on {differ} pixels");
            }
        }
        Some(run)
    };

    let report = render(&host, device.as_ref(), &recording, args.host)?;
    print!("{report}");
    let report_path = out.join("report.md");
    std::fs::write(&report_path, &report).with_context(|| format!("cannot write {}", report_path.display()))?;
    println!(
        "\nwritten: {} (report.md, contrast.png, overlay.png, host/, {})",
        out.display(),
        if device.is_some() { "device/" } else { "recording/" }
    );
    println!("total time {:.1?}", started.elapsed());
    Ok(())
}

fn mm(v: &Value) -> String {
    match v
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect::<Vec<_>>())
    {
        Some(a) if a.len() == 2 => format!("({:.0}, {:.0})", a[0], a[1]),
        _ => "–".into(),
    }
}

/// The demo's report (Markdown; also what the terminal shows).
fn render(host: &Value, device: Option<&StationRun>, recording: &Path, host_only: bool) -> Result<String> {
    let mut s = String::new();
    writeln!(s, "\n# ThermoQC demo\n")?;
    writeln!(s, "Recording: `{}`\n", recording.display())?;
    match device {
        Some(run) => {
            let r = &run.report;
            writeln!(s, "Ran on: the emulated board (QEMU, real firmware, embedded model)\n")?;
            writeln!(s, "**Verdict: {:?}** — LED lit: {}", r.verdict, run.leds.lit.join(", "))?;
            if let Some(f) = &r.fault {
                writeln!(s, "\nFault: {f}")?;
            }
            writeln!(s, "\nThe device's class map equals the host twin's byte for byte.")?;
        }
        None => {
            let why = if host_only {
                "--host was asked for"
            } else {
                "qemu-system-arm is missing"
            };
            writeln!(s, "Ran on: the host twin only ({why}); the device did not run.\n")?;
            let v = host["verdict"].as_str().unwrap_or("?");
            let led = match v {
                "PASS" => "PASS (green)",
                "FAIL" => "FAIL (red)",
                _ => "RETEST (amber)",
            };
            writeln!(s, "**Verdict: {v}** — the device would light {led}")?;
            if let Some(f) = host["fault"].as_str() {
                writeln!(s, "\nFault: {f}")?;
            }
        }
    }
    writeln!(s, "\n![class map over the best-contrast image](overlay.png)\n")?;
    writeln!(s, "## Defects found\n")?;
    writeln!(
        s,
        "| class | pixels | centre (mm) | equivalent ⌀ (mm) |\n| --- | ---: | --- | ---: |"
    )?;
    for r in host["regions"].as_array().into_iter().flatten() {
        writeln!(
            s,
            "| {} | {} | {} | {} |",
            r["class"].as_str().unwrap_or("?"),
            r["pixels"],
            mm(&r["centroid_mm"]),
            r["equivalent_diameter_mm"]
                .as_f64()
                .map_or("–".into(), |d| format!("{d:.1}"))
        )?;
    }
    writeln!(s, "\n(no depth head yet: depths are not estimated)")?;
    if let Some(truth) = host.get("truth") {
        let defects = truth["defects"].as_array().cloned().unwrap_or_default();
        writeln!(
            s,
            "\n## The part's true defects ({} of {} found)\n",
            truth["found"],
            defects.len()
        )?;
        writeln!(
            s,
            "| defect | class | centre (mm) | ⌀ (mm) | depth (mm) | found |\n| --- | --- | --- | ---: | ---: | --- |"
        )?;
        for d in &defects {
            writeln!(
                s,
                "| {} | {} | {} | {:.1} | {} | {} |",
                d["name"].as_str().unwrap_or("?"),
                d["class"].as_str().unwrap_or("?"),
                mm(&d["centre_mm"]),
                d["equivalent_diameter_mm"].as_f64().unwrap_or(0.0),
                d["depth_mm"].as_f64().map_or("–".into(), |v| format!("{v:.2}")),
                if d["found"].as_bool() == Some(true) {
                    "yes"
                } else {
                    "no"
                }
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
        for (stage, n) in Stage::ALL.iter().zip(run.report.stage_cycles) {
            let time = if stage == &Stage::Camera {
                "(emulation)".to_string()
            } else {
                format!("{:.1} ms", n as f64 / BOARD_HZ * 1e3)
            };
            writeln!(s, "| {} | {} | {time} |", stage.name(), n)?;
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

/// The demo's own end-to-end check (a step of `cargo xtask test`): the demo on the
/// reference plate gives FAIL on the emulated board with all its outputs, and `--host`
/// on the same recording gives the same verdict and the same class map.
///
/// `trainer` is the executable `cargo test --workspace` built: `cargo run -p trainer`
/// would resolve the dependencies' features for the trainer alone and build burn and
/// tract a second time (minutes of CPU, gigabytes of disk).
pub fn check(board: Board, trainer: &Path) -> Result<()> {
    let base = root().join("target/xtask/demo-check");
    let device_out = base.join("device-run");
    demo(DemoArgs {
        specimen: None,
        sequence: None,
        host: false,
        board,
        out: device_out.clone(),
        trainer: Some(trainer.to_path_buf()),
    })?;
    for f in [
        "report.md",
        "contrast.png",
        "overlay.png",
        "host/verdict.json",
        "device/classes.u8",
    ] {
        if !device_out.join(f).is_file() {
            bail!("demo check: {} was not written", device_out.join(f).display());
        }
    }
    let report = std::fs::read_to_string(device_out.join("report.md"))?;
    if !report.contains("**Verdict: Fail** — LED lit: FAIL") || !report.contains("Ran on: the emulated board") {
        bail!("demo check: the reference plate did not FAIL with the red LED on the emulated board:\n{report}");
    }
    let host_out = base.join("host-run");
    demo(DemoArgs {
        specimen: None,
        sequence: Some(device_out.join("recording")),
        host: true,
        board,
        out: host_out.clone(),
        trainer: Some(trainer.to_path_buf()),
    })?;
    let host: Value = serde_json::from_str(&std::fs::read_to_string(host_out.join("host/verdict.json"))?)?;
    if host["verdict"].as_str() != Some("FAIL") {
        bail!("demo check: --host gave {} on the reference plate", host["verdict"]);
    }
    let device_classes = std::fs::read(device_out.join("device/classes.u8"))?;
    if npy_data(&host_out.join("host/classes.npy"))? != device_classes {
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
    if !fallback.status.success()
        || !said.contains("qemu-system-arm not found")
        || !said.contains("the device did NOT run")
    {
        bail!(
            "demo check: without QEMU the demo did not fall back clearly ({}):\n{said}\n{}",
            fallback.status,
            String::from_utf8_lossy(&fallback.stderr)
        );
    }
    let fallback_report = std::fs::read_to_string(fallback_out.join("report.md"))?;
    if !fallback_report.contains("the host twin only (qemu-system-arm is missing)")
        || npy_data(&fallback_out.join("host/classes.npy"))? != device_classes
    {
        bail!("demo check: the fallback's report or class map is wrong:\n{fallback_report}");
    }
    println!("demo check: emulated board, --host and the no-QEMU fallback agree (FAIL, identical class maps)");
    Ok(())
}
