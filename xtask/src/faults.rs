//! `cargo xtask faults`: a camera fault campaign on the emulated board. Each seed sends
//! the recording through the emulated Lepton link with faults in a share of the frames
//! (20, 50, 100, 200 and 400 ‰ in turn), runs the real driver and state machine under
//! QEMU, and checks the run against the host twin on exactly the frames the station
//! received (`tests::faults::check`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tests::emulator::{self, Board, StationJob};
use tests::faults::{self, Outcome};
use tqc_data::sequence::{ReadOptions, Sequence};

/// Shares of faulty frames the seeds cycle through (‰).
pub const RATES: [u16; 5] = [20, 50, 100, 200, 400];

pub fn campaign(sequence: &Path, seeds: u64, first_seed: u64) -> Result<()> {
    if !sequence.join("sequence.npy").is_file() {
        bail!(
            "no recording in {}: `cargo xtask demo` simulates the reference plate into target/demo/recording, or pass --sequence DIR",
            sequence.display()
        );
    }
    let images = emulator::build_firmware()?;
    let elf = images.get("station")?;
    let seq = Sequence::open(sequence, &ReadOptions::default())
        .with_context(|| format!("recording {}", sequence.display()))?;
    let blob_path = emulator::root().join("onnx_models/thermonet2.tqm");
    let blob = std::fs::read(&blob_path).with_context(|| format!("cannot read {}", blob_path.display()))?;
    let workdir = super::work_dir("faults")?;
    println!(
        "{seeds} seeds on {} ({} frames), faults in {:?} ‰ of the frames in turn",
        sequence.display(),
        seq.frames,
        RATES
    );
    println!(
        "{:>6} {:>5} {:>7} {:>7} {:>9} {:>8}  outcome",
        "seed", "‰", "sent", "faults", "received", "longest"
    );
    let bar = indicatif::ProgressBar::new(seeds);
    let mut outcomes: BTreeMap<String, u32> = BTreeMap::new();
    let mut failures = Vec::new();
    for seed in first_seed..first_seed + seeds {
        let permille = RATES[(seed % RATES.len() as u64) as usize];
        let run = emulator::run_station(&StationJob {
            board: Board::An500,
            elf,
            sequence,
            model: None,
            workdir: &workdir.join("run"),
            timeout: Duration::from_secs(1800),
            stall_at_frame: None,
            camera_faults: Some((seed, permille)),
        })
        .with_context(|| format!("seed {seed}"))?;
        let injected = run.injected.unwrap_or_default();
        let received = run.delivered_ms.as_ref().map_or(0, Vec::len);
        let outcome = match faults::check(&run, &seq, &blob) {
            Ok(Outcome::Decided(v)) => v.label().to_string(),
            Ok(Outcome::Retest(f)) => format!("RETEST: {f}"),
            Err(why) => {
                failures.push(format!("seed {seed} ({permille} ‰): {why}"));
                format!("CHECK FAILED: {why}")
            }
        };
        let kind = outcome.split(':').next().unwrap_or("").to_string();
        *outcomes.entry(kind).or_default() += 1;
        bar.suspend(|| {
            println!(
                "{seed:>6} {permille:>5} {:>7} {:>7} {received:>9} {:>6} ms  {outcome}",
                injected.frames,
                injected.faults(),
                run.report.counters.longest_gap_ms
            )
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!("\noutcomes:");
    for (kind, n) in &outcomes {
        println!("  {kind}: {n}");
    }
    if !failures.is_empty() {
        bail!(
            "{} of {seeds} runs failed their check:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
    println!("all {seeds} runs agree with the host twin on the frames received");
    Ok(())
}
