//! The emulated ThermoQC station: the real inspection state machine and the embedded
//! model, with the camera replaced by a recording read from the host.
//!
//! In QEMU's working directory: `sequence.npy` and `times.npy` (the trainer's layout) and,
//! optionally, `model.tqm` (instead of the embedded `onnx_models/thermonet.tqm`). The
//! recording's arrival is the trigger: the board inspects one part, writes `report.bin`
//! (postcard [`Report`]) and, when inference ran, `classes.u8` (the class map,
//! row-major), and exits. LEDs on the SCC register; defmt over semihosting.
//!
//! Fault injection (emulation only): a file `stall-at-frame` holding a decimal frame
//! number makes the camera hang at that frame, as a wedged SPI transfer would; the
//! watchdog must then end the run (NMI, error log, failing exit).
#![no_std]
#![no_main]

use cortex_m_rt::{entry, exception};
use defmt_semihosting as _;
use static_cell::ConstStaticCell;
use tqc_drivers::station::{Lamp, Leds};
use tqc_playback::{LampSwitch, Playback, PlaybackClock, Timeline};
use tqc_qemu::board::{self, CmsdkWatchdog, LED_BUSY, LED_FAIL, LED_LAMP, LED_PASS, LED_RETEST, Led};
use tqc_qemu::host::HostFile;
use tqc_qemu::{clock, exit};
use tqc_shared::inspection::{Fault, REPORT_MAX_BYTES, Report};
use tqc_station::{Buffers, Hardware, Indication, Indicator, Station, StationConfig, work_bytes};

const WIDTH: usize = 160;
const HEIGHT: usize = 120;
const PIXELS: usize = WIDTH * HEIGHT;
/// Eight feature channels (the shipped model's).
const FEATURE_BYTES: usize = PIXELS * 8;
/// The frame, the running sums, then the engine's arena, then the verdict's stack.
const WORK: usize = work_bytes(PIXELS);
/// Largest model blob the board takes from the host.
const MODEL_MAX: usize = 64 * 1024;
/// Longest the board goes without progress.
const WATCHDOG_MS: u32 = 2_000;

static BUFFERS: ConstStaticCell<Buffers<PIXELS, FEATURE_BYTES, WORK>> = ConstStaticCell::new(Buffers::new());
static MODEL_BUFFER: ConstStaticCell<[u8; MODEL_MAX]> = ConstStaticCell::new([0; MODEL_MAX]);
static TIMELINE: Timeline = Timeline::new();
static SHIPPED_MODEL: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../onnx_models/thermonet.tqm"));

/// The emulated camera, optionally hanging for good at one frame.
struct Camera<C> {
    inner: C,
    frames: u32,
    stall_at: Option<u32>,
}

impl<C: tqc_station::Camera> tqc_station::Camera for Camera<C> {
    fn capture(&mut self, frame: &mut [u16]) -> Result<(), tqc_station::CameraError> {
        if self.stall_at == Some(self.frames) {
            defmt::warn!("injected fault: the camera hangs at frame {=u32}", self.frames);
            loop {
                cortex_m::asm::nop();
            }
        }
        self.frames += 1;
        self.inner.capture(frame)
    }
}

/// The frame number in `stall-at-frame`, if that file exists.
fn stall_at() -> Option<u32> {
    let mut file = HostFile::open(c"stall-at-frame").ok()?;
    let mut text = [0u8; 10];
    let n = file.len().ok()?.min(text.len());
    file.read_exact(&mut text[..n]).ok()?;
    core::str::from_utf8(&text[..n]).ok()?.trim().parse().ok()
}

fn cycles() -> u64 {
    clock::ticks() * clock::INSTRUCTIONS_PER_TICK
}

/// The model: `model.tqm` from the host when present, else the embedded one. A file that
/// cannot be read whole becomes an empty blob, which the station refuses.
fn model() -> &'static [u8] {
    let Ok(mut file) = HostFile::open(c"model.tqm") else {
        defmt::info!("model: embedded thermonet.tqm ({=usize} B)", SHIPPED_MODEL.len());
        return SHIPPED_MODEL;
    };
    let buffer: &'static mut [u8; MODEL_MAX] = MODEL_BUFFER.take();
    let len = match file.len() {
        Ok(n) if n <= MODEL_MAX => n,
        Ok(n) => {
            defmt::error!(
                "model.tqm is {=usize} B, the board takes at most {=usize}",
                n,
                MODEL_MAX
            );
            return &[];
        }
        Err(_) => return &[],
    };
    if file.read_exact(&mut buffer[..len]).is_err() {
        defmt::error!("model.tqm cannot be read");
        return &[];
    }
    defmt::info!("model: model.tqm from the host ({=usize} B)", len);
    &buffer[..len]
}

fn write_file(name: &core::ffi::CStr, data: &[u8]) -> bool {
    match HostFile::create(name).and_then(|mut f| f.write_all(data)) {
        Ok(()) => true,
        Err(_) => {
            defmt::error!("cannot write {=str}", name.to_str().unwrap_or("?"));
            false
        }
    }
}

/// Sends the report to the host and ends the emulation (success: the board worked,
/// whatever the verdict).
fn finish(report: &Report, classes: Option<&[u8]>) -> ! {
    let mut buf = [0u8; REPORT_MAX_BYTES];
    let written = match report.encode(&mut buf) {
        Ok(bytes) => write_file(c"report.bin", bytes),
        Err(_) => false,
    };
    let classes_written = classes.is_none_or(|c| write_file(c"classes.u8", c));
    defmt::info!(
        "LEDs {=u32:#07b} (bit 0 PASS, 1 FAIL, 2 RETEST, 3 BUSY, 4 LAMP)",
        board::leds()
    );
    let (used, size) = tqc_qemu::stack::high_water();
    defmt::info!("stack: {=usize} of {=usize} B used", used, size);
    exit(written && classes_written)
}

#[entry]
fn main() -> ! {
    let Some(core) = cortex_m::Peripherals::take() else {
        exit(false)
    };
    clock::start(core.SYST);
    defmt::info!("ThermoQC emulated station");
    let mut leds = Leds::new(Led(LED_PASS), Led(LED_FAIL), Led(LED_RETEST), Led(LED_BUSY));
    let blob = model();

    let recording = HostFile::open(c"sequence.npy").and_then(|f| Ok((f, HostFile::open(c"times.npy")?)));
    let opened = match recording {
        Ok((frames, times)) => Playback::open(frames, times, HEIGHT, WIDTH, &TIMELINE).map_err(Some),
        Err(_) => Err(None),
    };
    let (camera, rec) = match opened {
        Ok(x) => x,
        Err(e) => {
            match e {
                Some(e) => defmt::error!("recording: {}", defmt::Display2Format(&e)),
                None => defmt::error!("recording: sequence.npy and times.npy must be in QEMU's directory"),
            }
            Indicator::show(&mut leds, Indication::Retest);
            finish(&Report::retest(Fault::Camera { errors: 0, budget: 0 }), None);
        }
    };
    defmt::info!(
        "recording: {=u32} frames every {=u32} ms, {=u32} before the heating, {=i64}..{=i64} ms",
        rec.frames,
        rec.period_ms,
        rec.preheat_frames,
        rec.first_ms,
        rec.last_ms
    );

    // The recording sets what a real station's camera and program would: the pre-heat
    // frames it holds, and holes of three frame periods (at least 500 ms) as faults.
    let cfg = StationConfig {
        preheat_frames: rec.preheat_frames.min(u16::MAX as u32) as u16,
        max_frame_gap_ms: (3 * rec.period_ms).max(500),
        ..StationConfig::DEFAULT
    };
    let lamp_pin = LampSwitch {
        pin: Led(LED_LAMP),
        timeline: &TIMELINE,
    };
    let Ok(lamp) = Lamp::new(lamp_pin, cfg.heating_ms + 5_000) else {
        exit(false)
    };
    let hw = Hardware {
        camera: Camera {
            inner: camera,
            frames: 0,
            stall_at: stall_at(),
        },
        clock: PlaybackClock {
            timeline: &TIMELINE,
            cycles,
        },
        lamp,
        leds,
        watchdog: CmsdkWatchdog::start(WATCHDOG_MS),
    };
    let mut station = Station::new(hw, BUFFERS.take().memory(), blob, cfg);
    let report = station.inspect();
    let inferred = report.fault.is_none();
    finish(&report, inferred.then(|| station.classes()));
}

/// The watchdog's first expiry: the station stopped making progress.
#[exception]
unsafe fn NonMaskableInt() {
    defmt::error!("watchdog: no progress for {=u32} ms", WATCHDOG_MS);
    exit(false)
}
