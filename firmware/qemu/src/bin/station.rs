//! The emulated ThermoQC station: the real inspection state machine and the embedded
//! model, with the camera replaced by a recording read from the host.
//!
//! In QEMU's working directory: `sequence.npy` and `times.npy` (the trainer's layout) and,
//! optionally, `model.tqm` (instead of the embedded `onnx_models/thermonet2.tqm`). The
//! recording's arrival is the trigger: the board inspects one part, writes `report.bin`
//! (postcard [`Report`]) and, when inference ran, `classes.u8` (the class map,
//! row-major) and, for a model with a depth output, `depth.i8` (its codes), and exits. LEDs on the SCC register; defmt over semihosting.
//!
//! Fault injection (emulation only): a file `stall-at-frame` holding a decimal frame
//! number makes the camera hang at that frame, as a wedged SPI transfer would; the
//! watchdog must then end the run (NMI, error log, failing exit). A file `camera-faults`
//! holding `SEED PERMILLE` sends the recording through an emulated Lepton link to the
//! real VoSPI driver, with faults in that share of the frames (discard packets, CRC
//! errors, skipped and repeated packets, invalid segments, frames cut short); the board
//! then writes the recorded time (ms, i32 LE) of every frame the station received to
//! `delivered.i32`, and the faults injected to `injected.u32` (`InjectedFaults`: frames,
//! discards, CRC errors, skipped, repeated, invalid segments, truncated, resyncs,
//! unreadable).
#![no_std]
#![no_main]

use core::cell::RefCell;

use cortex_m_rt::{entry, exception};
use static_cell::ConstStaticCell;
use tqc_drivers::lepton::Lepton;
use tqc_drivers::station::{Lamp, Leds};
use tqc_playback::{FaultRate, LampSwitch, Link, LinkDelay, LinkSpi, Playback, PlaybackClock, Timeline};
use tqc_qemu::board::{self, CmsdkWatchdog, LED_BUSY, LED_FAIL, LED_LAMP, LED_PASS, LED_RETEST, Led};
use tqc_qemu::host::HostFile;
use tqc_qemu::{clock, exit};
use tqc_shared::inspection::{Fault, InjectedFaults, REPORT_MAX_BYTES, Report};
use tqc_station::{
    Buffers, CameraError, Hardware, Indication, Indicator, LeptonCamera, Station, StationConfig, work_bytes,
};

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
/// The frame the emulated Lepton link is sending (fault injection only).
static LINK_FRAME: ConstStaticCell<[u16; PIXELS]> = ConstStaticCell::new([0; PIXELS]);
static LINK: static_cell::StaticCell<EmulatedLink> = static_cell::StaticCell::new();
static SHIPPED_MODEL: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../onnx_models/thermonet2.tqm"));

type Recorded = Playback<'static, HostFile, HostFile>;
type EmulatedLink = RefCell<Link<'static, Recorded>>;

/// The Lepton's CCI on the emulated board: not wired (the station only streams).
struct NoCci;

impl embedded_hal::i2c::ErrorType for NoCci {
    type Error = embedded_hal::i2c::ErrorKind;
}

impl embedded_hal::i2c::I2c for NoCci {
    fn transaction(
        &mut self,
        _: u8,
        _: &mut [embedded_hal::i2c::Operation<'_>],
    ) -> Result<(), embedded_hal::i2c::ErrorKind> {
        Err(embedded_hal::i2c::ErrorKind::NoAcknowledge(
            embedded_hal::i2c::NoAcknowledgeSource::Address,
        ))
    }
}

type LinkedLepton = LeptonCamera<LinkSpi<'static, 'static, Recorded>, NoCci, LinkDelay<'static, 'static, Recorded>>;

/// Where the station's frames come from: the recording itself, or the recording sent
/// through the emulated Lepton link and the real driver.
// One value for the whole run, built once in `main`: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Source {
    Recording(Recorded),
    Lepton {
        camera: LinkedLepton,
        link: &'static EmulatedLink,
        delivered: Option<HostFile>,
    },
}

impl tqc_station::Camera for Source {
    fn capture(&mut self, frame: &mut [u16]) -> Result<(), CameraError> {
        match self {
            Source::Recording(r) => r.capture(frame),
            Source::Lepton {
                camera,
                link,
                delivered,
            } => {
                let got = camera.capture(frame);
                let Ok(link) = link.try_borrow() else {
                    return Err(CameraError::Failed);
                };
                match got {
                    Ok(()) => {
                        let ms = link.frame_ms().unwrap_or(0).clamp(i32::MIN as i64, i32::MAX as i64) as i32;
                        if let Some(f) = delivered
                            && f.write_all(&ms.to_le_bytes()).is_err()
                        {
                            *delivered = None;
                        }
                        Ok(())
                    }
                    // The recording's end is the end, not a camera failure.
                    Err(e) => Err(link.ended.unwrap_or(e)),
                }
            }
        }
    }
}

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

/// Reads a small host file as text, if it exists.
fn host_text<'b>(name: &core::ffi::CStr, text: &'b mut [u8]) -> Option<&'b str> {
    let mut file = HostFile::open(name).ok()?;
    let n = file.len().ok()?.min(text.len());
    file.read_exact(&mut text[..n]).ok()?;
    core::str::from_utf8(&text[..n]).ok().map(str::trim)
}

/// `SEED PERMILLE` from `camera-faults`, if that file exists.
fn camera_faults() -> Option<FaultRate> {
    let mut text = [0u8; 48];
    let text = host_text(c"camera-faults", &mut text)?;
    // Split on ASCII spaces by bytes: `str::split_whitespace` links panic paths.
    let mut words = text
        .as_bytes()
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty());
    let mut number = || core::str::from_utf8(words.next()?).ok()?.parse::<u64>().ok();
    let seed = number()?;
    let permille = u16::try_from(number()?).ok()?;
    Some(FaultRate { seed, permille })
}

fn timeline_ms() -> i64 {
    TIMELINE.now_ms()
}

/// The frame number in `stall-at-frame`, if that file exists.
fn stall_at() -> Option<u32> {
    let mut text = [0u8; 10];
    host_text(c"stall-at-frame", &mut text)?.parse().ok()
}

fn cycles() -> u64 {
    clock::ticks() * clock::INSTRUCTIONS_PER_TICK
}

/// The model: `model.tqm` from the host when present, else the embedded one. A file that
/// cannot be read whole becomes an empty blob, which the station refuses.
fn model() -> &'static [u8] {
    let Ok(mut file) = HostFile::open(c"model.tqm") else {
        defmt::info!("model: embedded thermonet2.tqm ({=usize} B)", SHIPPED_MODEL.len());
        return SHIPPED_MODEL;
    };
    let Some(buffer) = MODEL_BUFFER.try_take() else {
        return &[];
    };
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
fn finish(report: &Report, maps: Option<(&[u8], Option<&[i8]>)>, injected: Option<InjectedFaults>) -> ! {
    if let Some(i) = injected {
        defmt::info!(
            "camera faults injected: {=u32} frames sent, {=u32} discards, {=u32} CRC errors, {=u32} skipped, {=u32} repeated, {=u32} invalid segments, {=u32} cut short, {=u32} resyncs",
            i.frames,
            i.discards,
            i.crc_errors,
            i.skipped,
            i.repeated,
            i.invalid_segments,
            i.truncated,
            i.resyncs
        );
        write_file(c"injected.u32", &i.to_bytes());
    }
    let mut buf = [0u8; REPORT_MAX_BYTES];
    let written = match report.encode(&mut buf) {
        Ok(bytes) => write_file(c"report.bin", bytes),
        Err(_) => false,
    };
    let maps_written = maps.is_none_or(|(classes, depth)| {
        write_file(c"classes.u8", classes) && depth.is_none_or(|d| write_file(c"depth.i8", bytemuck::cast_slice(d)))
    });
    defmt::info!(
        "LEDs {=u32:#07b} (bit 0 PASS, 1 FAIL, 2 RETEST, 3 BUSY, 4 LAMP)",
        board::leds()
    );
    let (used, size) = tqc_qemu::stack::high_water();
    defmt::info!("stack: {=usize} of {=usize} B used", used, size);
    exit(written && maps_written)
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
            finish(&Report::retest(Fault::Camera { errors: 0, budget: 0 }), None, None);
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
    let (source, link) = match camera_faults() {
        None => (Source::Recording(camera), None),
        Some(rate) => {
            defmt::info!(
                "camera: the recording through an emulated Lepton link, faults in {=u16} ‰ of the frames (seed {=u64})",
                rate.permille,
                rate.seed
            );
            let Some(link) = LINK_FRAME
                .try_take()
                .and_then(|f| Link::new(camera, f, rate, timeline_ms))
            else {
                exit(false)
            };
            let Some(link) = LINK.try_init(RefCell::new(link)) else {
                exit(false)
            };
            let link: &'static EmulatedLink = link;
            let lepton = Lepton::new(LinkSpi(link), NoCci, LinkDelay(link));
            let delivered = HostFile::create(c"delivered.i32").ok();
            let source = Source::Lepton {
                camera: LeptonCamera(lepton),
                link,
                delivered,
            };
            (source, Some(link))
        }
    };
    let hw = Hardware {
        camera: Camera {
            inner: source,
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
    let Some(buffers) = BUFFERS.try_take() else { exit(false) };
    let mut station = Station::new(hw, buffers.memory(), blob, cfg);
    let report = station.inspect();
    let inferred = report.fault.is_none();
    let injected = link.and_then(|l| l.try_borrow().ok().map(|l| l.injected));
    finish(
        &report,
        inferred.then(|| (station.classes(), station.depth_codes())),
        injected,
    );
}

/// The watchdog's first expiry: the station stopped making progress.
#[exception]
unsafe fn NonMaskableInt() {
    defmt::error!("watchdog: no progress for {=u32} ms", WATCHDOG_MS);
    exit(false)
}
