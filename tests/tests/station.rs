//! End to end: simulated plates → the emulated station (real firmware, embedded model,
//! QEMU mps2-an500) → verdict, LEDs and class map, checked against the host twin
//! (`trainer infer`) on the same recording with the same blob.
//!
//! Needs `qemu-system-arm` and the thumb target (`.ci/run` installs both); the firmware
//! image is built here if it is not up to date.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use npyz::WriterBuilder;

use tests::emulator::{self, Board, StationJob, StationRun};
use tqc_data::sequence::{ReadOptions, Sequence};
use tqc_data::specimen::Specimen;
use tqc_shared::inspection::{AcquisitionLimits, Fault};
use tqc_shared::verdict::{Verdict, VerdictConfig};

fn work() -> PathBuf {
    emulator::root().join("target/e2e")
}

fn shipped_model() -> PathBuf {
    emulator::root().join("onnx_models/thermonet2.tqm")
}

/// Builds the image once per test run; the station image's path, wherever cargo put it.
fn firmware() -> PathBuf {
    static BUILT: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    built
        .get_or_insert_with(|| {
            let images = emulator::build_firmware().unwrap_or_else(|e| panic!("firmware build: {e}"));
            images.get("station").expect("station image").to_path_buf()
        })
        .clone()
}

/// Simulates a shipped specimen once per run (seed 1, as `cargo xtask demo`); never
/// reused across runs, so a changed simulator cannot leave stale plates behind.
fn plate(name: &'static str, cell: &'static OnceLock<PathBuf>) -> &'static Path {
    cell.get_or_init(|| {
        let dir = work().join(name);
        let spec = Specimen::load(name).expect("shipped specimen");
        tqc_sim::simulate_to_dir(&spec, 1, tqc_sim::WallClock::Record, &dir, |_, _| {}).expect("simulation");
        dir
    })
}

fn reference_plate() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    plate("gfrp-reference", &P)
}

fn sound_plate() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    plate("gfrp-sound", &P)
}

fn station(sequence: &Path, model: Option<&Path>, name: &str) -> StationRun {
    let elf = firmware();
    emulator::run_station(&StationJob {
        board: Board::An500,
        elf: &elf,
        sequence,
        model,
        workdir: &work().join("runs").join(name),
        timeout: Duration::from_secs(900),
        stall_at_frame: None,
        camera_faults: None,
    })
    .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Writes a variant of a recording: `frame_of(k)` gives frame k's kelvin values (or
/// `None` to drop it).
fn variant(from: &Path, name: &str, frame_of: impl Fn(usize, &[f32], &[f32]) -> Option<Vec<f32>>) -> PathBuf {
    let seq = Sequence::open(from, &ReadOptions::default()).unwrap();
    let dir = work().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let (mut data, mut times) = (Vec::new(), Vec::new());
    for k in 0..seq.frames {
        if let Some(f) = frame_of(k, seq.frame(k), seq.frame(0)) {
            data.extend_from_slice(&f);
            times.push(seq.times[k]);
        }
    }
    let n = times.len() as u64;
    write_npy(
        &dir.join("sequence.npy"),
        &[n, seq.height as u64, seq.width as u64],
        &data,
    );
    write_npy(&dir.join("times.npy"), &[n], &times);
    dir
}

fn write_npy<T: npyz::AutoSerialize + Copy>(path: &Path, shape: &[u64], data: &[T]) {
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(shape)
        .writer(file)
        .begin_nd()
        .unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
}

fn assert_leds(run: &StationRun, lit: &str) {
    assert_eq!(run.leds.lit, vec![lit], "LEDs at the end: {:?}", run.leds);
    // Busy during the inspection, then exactly the verdict's LED.
    let on: Vec<_> = run.leds.changes.iter().filter(|c| c.1).map(|c| c.0).collect();
    assert_eq!(on.first(), Some(&"BUSY"), "{:?}", run.leds.changes);
    assert_eq!(on.last(), Some(&lit), "{:?}", run.leds.changes);
}

#[test]
fn the_reference_plate_fails_on_the_emulated_board_with_the_host_twins_class_map() {
    let dir = reference_plate();
    let run = station(dir, None, "reference");
    assert_eq!(
        run.report.verdict,
        Verdict::Fail,
        "{:#?}\n{}",
        run.report,
        run.log.join("\n")
    );
    assert_eq!(run.report.fault, None);
    assert_leds(&run, "FAIL");
    // The lamp lit for the programmed 30 s of the recording.
    assert!(run.leds.changes.contains(&("LAMP", true)) && run.leds.changes.contains(&("LAMP", false)));

    assert_host_twin(&run, &std::fs::read(shipped_model()).unwrap(), dir);
    // Every stage was timed; the log tells each.
    assert!(
        run.report.stage_cycles.iter().all(|&c| c > 0),
        "{:?}",
        run.report.stage_cycles
    );
    assert!(
        run.log.iter().any(|l| l.contains("stage inference")),
        "{}",
        run.log.join("\n")
    );
    assert_stack_margin(&run);
}

/// The stack stayed within three quarters of its region (an overflow would be a bus
/// fault; this keeps a margin for the real board's interrupts).
fn assert_stack_margin(run: &StationRun) {
    let (used, size) = run
        .stack()
        .unwrap_or_else(|| panic!("no stack line in\n{}", run.log.join("\n")));
    assert!(used > 0 && used <= size * 3 / 4, "stack: {used} of {size} B used");
}

/// The host twin on the same recording and blob: the device's class map, region for
/// region.
fn assert_host_twin(run: &StationRun, blob: &[u8], dir: &Path) {
    let seq = Sequence::open(dir, &ReadOptions::default()).unwrap();
    let host = tqc_eval::infer::infer(blob, &seq, &VerdictConfig::DEFAULT, &AcquisitionLimits::DEFAULT).unwrap();
    let device = run.classes.as_deref().expect("the board wrote its class map");
    assert_eq!(device.len(), host.classes.len());
    let differ = device.iter().zip(&host.classes).filter(|(a, b)| a != b).count();
    assert_eq!(differ, 0, "class maps differ on {differ} pixels");
    // A model with a depth output: the same codes, and each region's median depth.
    assert_eq!(
        run.depth.as_deref(),
        host.depth.as_ref().map(|(codes, _)| &codes[..]),
        "depth maps"
    );
    assert_eq!(run.report.region_count, host.findings.region_count);
    assert_eq!(
        &run.report.regions[..],
        &host.findings.regions[..run.report.regions.len()]
    );
    assert_eq!(run.report.acquisition, host.acquisition);
}

/// The reference encoder–decoder (seeded weights, the shipped model's features): its
/// skips and delay lines run in the work region the features free, the feature image
/// read in place, and the class map, the depth map and the regions' depths are the host
/// twin's.
#[test]
fn an_encoder_decoder_runs_on_the_emulated_station_with_the_host_twins_class_map() {
    let shipped = std::fs::read(shipped_model()).unwrap();
    let input = tqc_shared::blob::decode(&shipped).unwrap().desc.input.clone();
    let blob = tests::graph::inspection_encoder_decoder(input, 7).to_blob().unwrap();
    let path = work().join("encoder-decoder.tqm");
    std::fs::create_dir_all(work()).unwrap();
    std::fs::write(&path, &blob).unwrap();
    let dir = reference_plate();
    let run = station(dir, Some(&path), "encoder-decoder");
    assert_eq!(run.report.fault, None, "{:#?}\n{}", run.report, run.log.join("\n"));
    assert!(
        run.log.iter().any(|l| l.contains("model ok: 17 layers")),
        "{}",
        run.log.join("\n")
    );
    assert_host_twin(&run, &blob, dir);
    assert!(run.depth.is_some(), "the board wrote the depth codes");
    assert!(
        run.report.regions.iter().all(|r| r.depth_um.is_some()),
        "{:?}",
        run.report.regions
    );
    assert_stack_margin(&run);
}

#[test]
fn a_sound_plate_passes_with_the_green_led() {
    let run = station(sound_plate(), None, "sound");
    assert_eq!(
        run.report.verdict,
        Verdict::Pass,
        "{:#?}\n{}",
        run.report,
        run.log.join("\n")
    );
    assert_leds(&run, "PASS");
}

#[test]
fn unreadable_frames_beyond_the_camera_budget_are_retest() {
    let dir = variant(reference_plate(), "nan-frames", |k, f, _| {
        let mut f = f.to_vec();
        if (40..46).contains(&k) {
            f[1234] = f32::NAN;
        }
        Some(f)
    });
    let run = station(&dir, None, "nan-frames");
    assert_eq!(run.report.verdict, Verdict::Retest);
    assert_eq!(run.report.fault, Some(Fault::Camera { errors: 5, budget: 4 }));
    assert_leds(&run, "RETEST");
    assert!(run.classes.is_none(), "no class map from a part not inspected");
}

#[test]
fn dropped_frames_are_retest() {
    let dir = variant(reference_plate(), "dropped-frames", |k, f, _| {
        (!(100..110).contains(&k)).then(|| f.to_vec())
    });
    let run = station(&dir, None, "dropped-frames");
    assert_eq!(run.report.verdict, Verdict::Retest);
    assert!(
        matches!(run.report.fault, Some(Fault::FramesMissing { gap_ms: 11_000, .. })),
        "{:?}",
        run.report.fault
    );
    assert_leds(&run, "RETEST");
}

#[test]
fn a_part_the_lamps_did_not_heat_is_retest() {
    // Every frame shows the cold plate.
    let dir = variant(reference_plate(), "no-heating", |_, _, cold| Some(cold.to_vec()));
    let run = station(&dir, None, "no-heating");
    assert_eq!(run.report.verdict, Verdict::Retest);
    assert!(
        matches!(run.report.fault, Some(Fault::NoHeating { .. })),
        "{:?}",
        run.report.fault
    );
    assert_leds(&run, "RETEST");
    // The host twin refuses it too.
    let blob = std::fs::read(shipped_model()).unwrap();
    let seq = Sequence::open(&dir, &ReadOptions::default()).unwrap();
    let host = tqc_eval::infer::infer(&blob, &seq, &VerdictConfig::DEFAULT, &AcquisitionLimits::DEFAULT).unwrap();
    assert_eq!(host.findings.verdict, Verdict::Retest);
    assert!(matches!(host.fault, Some(Fault::NoHeating { .. })));
}

#[test]
fn a_corrupted_model_blob_is_never_run() {
    let mut blob = std::fs::read(shipped_model()).unwrap();
    let n = blob.len();
    blob[n - 100] ^= 0x10;
    let path = work().join("corrupted.tqm");
    std::fs::create_dir_all(work()).unwrap();
    std::fs::write(&path, &blob).unwrap();
    let run = station(reference_plate(), Some(&path), "corrupted-model");
    assert_eq!(run.report.verdict, Verdict::Retest);
    assert_eq!(run.report.fault, Some(Fault::Model));
    assert_eq!(run.report.acquisition.frames, 0, "not a frame was used");
    // RETEST from boot on, and again after the part; the lamp never lit.
    assert_eq!(run.leds.lit, vec!["RETEST"]);
    assert_eq!(run.leds.changes.first(), Some(&("RETEST", true)));
    assert!(
        !run.leds.changes.iter().any(|c| c.0 == "LAMP"),
        "{:?}",
        run.leds.changes
    );
    assert!(
        run.log.iter().any(|l| l.contains("model invalid") && l.contains("CRC")),
        "{}",
        run.log.join("\n")
    );
}

#[test]
fn a_hung_camera_is_caught_by_the_watchdog() {
    let elf = firmware();
    let result = emulator::run_station(&StationJob {
        board: Board::An500,
        elf: &elf,
        sequence: reference_plate(),
        model: None,
        workdir: &work().join("runs").join("stalled-camera"),
        timeout: Duration::from_secs(900),
        stall_at_frame: Some(30),
        camera_faults: None,
    });
    match result {
        Err(emulator::EmulatorError::Board { log, .. }) => {
            assert!(log.contains("the camera hangs at frame 30"), "{log}");
            assert!(log.contains("watchdog: no progress for 2000 ms"), "{log}");
        }
        other => panic!("the board should have been stopped by its watchdog: {other:?}"),
    }
}

/// A build folder outside the repository (`CARGO_TARGET_DIR`, as many set it for all
/// their projects): the image is found where cargo put it, and it runs.
#[test]
fn the_station_image_is_found_where_cargo_target_dir_puts_it() {
    let outside = tempfile::tempdir().unwrap();
    let images = emulator::build_workspace_with(
        &emulator::firmware_dir(),
        &["--release", "--bin", "station"],
        &[("CARGO_TARGET_DIR", outside.path().as_os_str())],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let elf = images.get("station").unwrap();
    assert!(
        elf.starts_with(outside.path()),
        "{} is not under {}",
        elf.display(),
        outside.path().display()
    );
    let run = emulator::run_station(&StationJob {
        board: Board::An500,
        elf,
        sequence: sound_plate(),
        model: None,
        workdir: &work().join("runs").join("outside-target-dir"),
        timeout: Duration::from_secs(900),
        stall_at_frame: None,
        camera_faults: None,
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(run.report.verdict, Verdict::Pass);
}

/// The recording through the emulated Lepton link with seeded faults (discard packets,
/// CRC errors, skipped and repeated packets, invalid segments, frames cut short) to the
/// real VoSPI driver on the board: each run agrees with the host twin on exactly the
/// frames the station received, and the seeds give both decisions and RETESTs.
/// `cargo xtask faults` runs the same check over many seeds.
#[test]
fn camera_faults_on_the_lepton_link_never_give_a_decision_the_frames_received_do_not_support() {
    let elf = firmware();
    let dir = reference_plate();
    let seq = Sequence::open(dir, &ReadOptions::default()).unwrap();
    let blob = std::fs::read(shipped_model()).unwrap();
    let mut outcomes = Vec::new();
    for (seed, permille) in [(1u64, 50u16), (2, 400)] {
        let run = emulator::run_station(&StationJob {
            board: Board::An500,
            elf: &elf,
            sequence: dir,
            model: None,
            workdir: &work().join("runs").join(format!("camera-faults-{seed}")),
            timeout: Duration::from_secs(900),
            stall_at_frame: None,
            camera_faults: Some((seed, permille)),
        })
        .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let injected = run.injected.expect("the board reports what it injected");
        assert!(injected.faults() > 0, "seed {seed}: nothing injected: {injected:?}");
        let outcome = tests::faults::check(&run, &seq, &blob)
            .unwrap_or_else(|why| panic!("seed {seed} ({permille} ‰): {why}\n{}", run.log.join("\n")));
        outcomes.push(outcome);
    }
    assert!(
        outcomes.iter().any(|o| matches!(o, tests::faults::Outcome::Decided(_)))
            && outcomes.iter().any(|o| matches!(o, tests::faults::Outcome::Retest(_))),
        "{outcomes:?}"
    );
}
