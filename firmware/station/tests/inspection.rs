//! The state machine on the host, with the shipped model and a synthetic camera: the
//! class map equals the shared pipeline run directly on the same frames, and every
//! fault path ends at RETEST with the lamp off.

use std::cell::{Cell, RefCell};
use std::convert::Infallible;
use std::rc::Rc;

use tqc_drivers::station::Lamp as LampRelay;
use tqc_shared::engine::{Engine, EngineError};
use tqc_shared::features::FeatureExtractor;
use tqc_shared::inspection::Fault;
use tqc_shared::kernels::argmax;
use tqc_shared::model::{Op, QuantParams};
use tqc_shared::owned::{OwnedLayer, OwnedModel};
use tqc_shared::planner::Mode;
use tqc_shared::quant::Activation;
use tqc_shared::tensor::Padding;
use tqc_shared::verdict::Verdict;
use tqc_station::{
    Buffers, Camera, CameraError, Clock, Hardware, Indication, Indicator, Station, StationConfig, Watchdog, work_bytes,
};

const BLOB: &[u8] = include_bytes!("../../../onnx_models/thermonet.tqm");
const W: usize = 160;
const H: usize = 120;
const PX: usize = W * H;
type Mem = Buffers<PX, { PX * 8 }, { work_bytes(PX) }>;

fn buffers() -> Box<Mem> {
    // SAFETY: every field is an integer array, for which all zeros is a valid value;
    // built in place because the buffers are far larger than a test thread's stack.
    unsafe { Box::<Mem>::new_zeroed().assume_init() }
}

/// The station's time line, shared by the camera, the clock and the lamp pin.
#[derive(Clone, Default)]
struct Timeline {
    now_ms: Rc<Cell<i64>>,
    lamp: Rc<Cell<bool>>,
    /// (time, on) of every lamp switch.
    switches: Rc<RefCell<Vec<(i64, bool)>>>,
}

/// What can go wrong with a frame.
#[derive(Clone, Copy, PartialEq)]
enum Glitch {
    None,
    Lost,
    Fail,
    Saturated,
}

/// A synthetic plate: a warm disc (a defect) in a lamp field that is 10 % stronger on
/// the left, recorded at `period_ms` from −`preheat` frames to `end_ms`.
struct SynthCamera {
    line: Timeline,
    times: Vec<i64>,
    next: usize,
    glitch: Box<dyn Fn(usize) -> Glitch>,
    /// Rise scale (cK at 1 s of heating); 0 = no heating.
    amplitude: f64,
    heating_ms: i64,
    captured: Rc<Cell<usize>>,
}

fn synth_frame(t_ms: i64, amplitude: f64, heating_ms: i64, frame: &mut [u16]) {
    let rise = |t: f64| {
        if t <= 0.0 {
            return 0.0;
        }
        let h = heating_ms as f64 / 1000.0;
        amplitude * (t.sqrt() - if t > h { (t - h).sqrt() } else { 0.0 })
    };
    let t = t_ms as f64 / 1000.0;
    for y in 0..H {
        for x in 0..W {
            let lamp = 1.0 + 0.1 * (1.0 - x as f64 / W as f64);
            let (dx, dy) = (x as f64 - 100.0, y as f64 - 60.0);
            // Heat piles up over the disc once the front has reached it.
            let defect = if dx * dx + dy * dy < 64.0 {
                1.0 + 0.4 * (1.0 - (-t / 60.0).exp())
            } else {
                1.0
            };
            let texture = ((x * 7 + y * 13) % 5) as f64;
            frame[y * W + x] = (29315.0 + texture + rise(t) * lamp * defect).round() as u16;
        }
    }
}

impl Camera for SynthCamera {
    fn capture(&mut self, frame: &mut [u16]) -> Result<(), CameraError> {
        loop {
            let Some(&t) = self.times.get(self.next) else {
                return Err(CameraError::Ended);
            };
            let k = self.next;
            self.next += 1;
            // Frames from before the heating cannot come once the lamp is on.
            if t < 0 && self.line.lamp.get() {
                continue;
            }
            self.line.now_ms.set(t);
            match (self.glitch)(k) {
                Glitch::Lost => return Err(CameraError::Lost),
                Glitch::Fail => return Err(CameraError::Failed),
                g => {
                    synth_frame(t, self.amplitude, self.heating_ms, frame);
                    if g == Glitch::Saturated {
                        frame[..PX / 10].fill(u16::MAX);
                    }
                    self.captured.set(self.captured.get() + 1);
                    return Ok(());
                }
            }
        }
    }
}

struct SynthClock {
    line: Timeline,
    cycles: u64,
}

impl Clock for SynthClock {
    fn now_ms(&mut self) -> i64 {
        self.line.now_ms.get()
    }
    fn cycles(&mut self) -> u64 {
        self.cycles += 1;
        self.cycles
    }
}

/// The lamp relay pin: switching on starts the recording's heating (time 0).
struct LampPin(Timeline);

impl embedded_hal::digital::ErrorType for LampPin {
    type Error = Infallible;
}

impl embedded_hal::digital::OutputPin for LampPin {
    fn set_high(&mut self) -> Result<(), Infallible> {
        if self.0.now_ms.get() < 0 {
            self.0.now_ms.set(0);
        }
        self.0.lamp.set(true);
        self.0.switches.borrow_mut().push((self.0.now_ms.get(), true));
        Ok(())
    }
    fn set_low(&mut self) -> Result<(), Infallible> {
        if self.0.lamp.get() {
            self.0.switches.borrow_mut().push((self.0.now_ms.get(), false));
        }
        self.0.lamp.set(false);
        Ok(())
    }
}

#[derive(Clone, Default)]
struct LedLog(Rc<RefCell<Vec<Indication>>>);

impl Indicator for LedLog {
    fn show(&mut self, what: Indication) {
        self.0.borrow_mut().push(what);
    }
}

#[derive(Clone, Default)]
struct Dog(Rc<Cell<u32>>);

impl Watchdog for Dog {
    fn feed(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

struct Rig {
    line: Timeline,
    leds: LedLog,
    dog: Dog,
    captured: Rc<Cell<usize>>,
}

type TestStation<'a> = Station<'a, SynthCamera, SynthClock, LampRelay<LampPin>, LedLog, Dog>;

struct Setup {
    period_ms: i64,
    preheat: usize,
    end_ms: i64,
    amplitude: f64,
    lamp_limit_ms: u32,
    glitch: Box<dyn Fn(usize) -> Glitch>,
    drop: Box<dyn Fn(i64) -> bool>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            period_ms: 1000,
            preheat: 10,
            end_ms: 600_000,
            amplitude: 60.0,
            lamp_limit_ms: 35_000,
            glitch: Box::new(|_| Glitch::None),
            drop: Box::new(|_| false),
        }
    }
}

impl Setup {
    fn times(&self) -> Vec<i64> {
        (-(self.preheat as i64)..=self.end_ms / self.period_ms)
            .map(|k| k * self.period_ms)
            .filter(|&t| !(self.drop)(t))
            .collect()
    }
}

fn station<'a>(mem: &'a mut Mem, blob: &'a [u8], setup: Setup, cfg: StationConfig) -> (TestStation<'a>, Rig) {
    let line = Timeline::default();
    line.now_ms.set(-100_000);
    let captured = Rc::new(Cell::new(0));
    let camera = SynthCamera {
        line: line.clone(),
        times: setup.times(),
        next: 0,
        glitch: setup.glitch,
        amplitude: setup.amplitude,
        heating_ms: cfg.heating_ms as i64,
        captured: captured.clone(),
    };
    let rig = Rig {
        line: line.clone(),
        leds: LedLog::default(),
        dog: Dog::default(),
        captured,
    };
    let hw = Hardware {
        camera,
        clock: SynthClock {
            line: line.clone(),
            cycles: 0,
        },
        lamp: LampRelay::new(LampPin(line), setup.lamp_limit_ms).unwrap(),
        leds: rig.leds.clone(),
        watchdog: rig.dog.clone(),
    };
    (Station::new(hw, mem.memory(), blob, cfg), rig)
}

/// The shared pipeline run straight on the synthetic recording: features with the
/// recording's own times, the engine, argmax.
fn reference_classes(setup: &Setup, cfg: &StationConfig) -> Vec<u8> {
    reference_outputs(BLOB, setup, cfg).0
}

/// [`reference_classes`] of `blob`, and its depth codes if it has a depth output.
fn reference_outputs(blob: &[u8], setup: &Setup, cfg: &StationConfig) -> (Vec<u8>, Option<Vec<i8>>) {
    let model = tqc_shared::blob::decode(blob).unwrap();
    let spec = model.desc.input.features.clone().unwrap();
    let (mut cold, mut window, mut reference) = (vec![0u32; PX], vec![0i32; PX], vec![0u16; PX]);
    let mut features = vec![0i8; PX * spec.channels()];
    let mut fx = FeatureExtractor::new(
        &spec,
        model.desc.input.quant,
        model.input_shape().width as usize,
        &mut cold,
        &mut window,
        &mut reference,
        &mut features,
    )
    .unwrap();
    let mut frame = vec![0u16; PX];
    for t in setup.times() {
        synth_frame(t, setup.amplitude, cfg.heating_ms as i64, &mut frame);
        fx.push_frame(t, &frame).unwrap();
        if fx.is_complete() {
            break;
        }
    }
    fx.finish().unwrap();
    let mut arena = vec![0u64; model.desc.arena_bytes as usize / 8 + 1];
    let mut engine = Engine::new(&model, bytemuck::cast_slice_mut(&mut arena), Mode::Streaming).unwrap();
    let mut classes = vec![0u8; PX];
    let mut depth = model.depth_output().map(|_| vec![0i8; PX]);
    let class_count = model.output_shape().channels as usize;
    engine
        .run_streaming(&features, &mut |k, y, row| {
            if k == 0 {
                for (x, l) in row.chunks_exact(class_count).enumerate() {
                    classes[y * W + x] = argmax(l).unwrap() as u8;
                }
            } else if let Some(d) = depth.as_mut() {
                d[y * W..(y + 1) * W].copy_from_slice(row);
            }
        })
        .unwrap();
    (classes, depth)
}

#[test]
fn a_good_recording_gives_the_shared_pipelines_class_map_and_a_decision() {
    let cfg = StationConfig::DEFAULT;
    let mut mem = buffers();
    let (mut st, rig) = station(&mut mem, BLOB, Setup::default(), cfg);
    assert!(st.model_fault().is_none());
    let report = st.inspect();
    assert_eq!(report.fault, None, "{report:?}");
    assert_ne!(report.verdict, Verdict::Retest);
    assert_eq!(st.classes(), &reference_classes(&Setup::default(), &cfg)[..]);
    // The findings describe that map.
    let defect_px: u32 = report.class_pixels[1..].iter().sum();
    assert_eq!(defect_px as usize, st.classes().iter().filter(|&&c| c != 0).count());
    assert_eq!(
        report.verdict == Verdict::Fail,
        report.regions.iter().any(|r| r.pixels >= 6)
    );
    // Lamp: on right after the pre-heat frames, off at the programmed time, once.
    let switches = rig.line.switches.borrow().clone();
    assert_eq!(switches, vec![(0, true), (30_000, false)]);
    // LEDs: off at boot, busy, then the verdict.
    let want = if report.verdict == Verdict::Fail {
        Indication::Fail
    } else {
        Indication::Pass
    };
    assert_eq!(*rig.leds.0.borrow(), vec![Indication::Off, Indication::Busy, want]);
    // Stops as soon as the schedule is complete (last window ends at 589 s).
    let frames = report.acquisition.frames as usize;
    assert_eq!(frames, rig.captured.get());
    assert!((590..=600).contains(&(frames - 10)), "{frames}");
    // Fed once per frame, per output row and for the verdict.
    assert_eq!(rig.dog.0.get() as usize, frames + H + 1);
    assert_eq!(report.counters.watchdog_feeds, rig.dog.0.get());
    assert!(report.stage_cycles.iter().all(|&c| c > 0), "{:?}", report.stage_cycles);
    assert!(report.acquisition.median_rise_ck > 100, "{:?}", report.acquisition);
}

fn assert_retest(report: &tqc_station::Report, rig: &Rig) {
    assert_eq!(report.verdict, Verdict::Retest);
    assert!(report.fault.is_some());
    assert!(!rig.line.lamp.get(), "the lamp ends off");
    assert_eq!(rig.leds.0.borrow().last(), Some(&Indication::Retest));
}

#[test]
fn lost_frames_within_the_budget_are_tolerated_beyond_it_retest() {
    let cfg = StationConfig::DEFAULT;
    let mut mem = buffers();
    let few = Setup {
        glitch: Box::new(|k| {
            if [20, 40, 60, 80].contains(&k) {
                Glitch::Lost
            } else {
                Glitch::None
            }
        }),
        ..Setup::default()
    };
    let (mut st, _) = station(&mut mem, BLOB, few, cfg);
    let r = st.inspect();
    assert_eq!(r.fault, None);
    assert_eq!(r.counters.camera_errors, 4);

    let mut mem = buffers();
    let many = Setup {
        glitch: Box::new(|k| {
            if (200..205).contains(&k) {
                Glitch::Lost
            } else {
                Glitch::None
            }
        }),
        ..Setup::default()
    };
    let (mut st, rig) = station(&mut mem, BLOB, many, cfg);
    let r = st.inspect();
    assert_retest(&r, &rig);
    // Five frames in a row lost at 1 s each: the budget (4) goes first.
    assert_eq!(r.fault, Some(Fault::Camera { errors: 5, budget: 4 }));
    // No progress, no food: fed for the good frames and the verdict only.
    assert_eq!(rig.dog.0.get() as usize, rig.captured.get() + 1);
}

#[test]
fn a_failed_camera_is_retest_at_once() {
    let mut mem = buffers();
    let setup = Setup {
        glitch: Box::new(|k| if k == 100 { Glitch::Fail } else { Glitch::None }),
        ..Setup::default()
    };
    let (mut st, rig) = station(&mut mem, BLOB, setup, StationConfig::DEFAULT);
    let r = st.inspect();
    assert_retest(&r, &rig);
    assert!(matches!(r.fault, Some(Fault::Camera { .. })));
    assert_eq!(rig.captured.get(), 100);
    // The report still tells how far the acquisition got.
    assert_eq!(r.acquisition.frames, 100);
}

#[test]
fn a_hole_in_the_frame_stream_is_retest() {
    let mut mem = buffers();
    let setup = Setup {
        drop: Box::new(|t| (100_000..104_000).contains(&t)),
        ..Setup::default()
    };
    let (mut st, rig) = station(&mut mem, BLOB, setup, StationConfig::DEFAULT);
    let r = st.inspect();
    assert_retest(&r, &rig);
    assert_eq!(
        r.fault,
        Some(Fault::FramesMissing {
            after_ms: 99_000,
            gap_ms: 5_000,
            limit_ms: 2_500
        })
    );
}

#[test]
fn no_heating_is_retest_as_soon_as_the_first_sample_shows_it() {
    let mut mem = buffers();
    let setup = Setup {
        amplitude: 0.0,
        ..Setup::default()
    };
    let (mut st, rig) = station(&mut mem, BLOB, setup, StationConfig::DEFAULT);
    let r = st.inspect();
    assert_retest(&r, &rig);
    assert!(
        matches!(r.fault, Some(Fault::NoHeating { median_rise_ck: 1, .. })),
        "{r:?}"
    );
    // The first sample closes near 49 s: the part is given up long before 589 s.
    assert!(rig.captured.get() < 80, "{}", rig.captured.get());
}

#[test]
fn saturated_frames_are_retest() {
    let mut mem = buffers();
    let setup = Setup {
        glitch: Box::new(|k| if k % 10 == 0 { Glitch::Saturated } else { Glitch::None }),
        ..Setup::default()
    };
    let (mut st, rig) = station(&mut mem, BLOB, setup, StationConfig::DEFAULT);
    let r = st.inspect();
    assert_retest(&r, &rig);
    // A tenth of the pixels on every tenth frame: about 10 ‰.
    assert!(
        matches!(
            r.fault,
            Some(Fault::Saturated {
                permille: 10..=11,
                limit_permille: 5
            })
        ),
        "{r:?}"
    );
}

#[test]
fn the_lamp_interlock_ends_the_part_at_retest_and_is_rearmed_for_the_next() {
    let mut mem = buffers();
    // The relay's hard limit is shorter than the programmed heating.
    let setup = Setup {
        lamp_limit_ms: 20_000,
        ..Setup::default()
    };
    let (mut st, rig) = station(&mut mem, BLOB, setup, StationConfig::DEFAULT);
    let r = st.inspect();
    assert_retest(&r, &rig);
    assert_eq!(r.fault, Some(Fault::LampInterlock));
    // The relay counts from the switch command, issued at the last pre-heat frame's
    // time (−1 s): the emulated clock then jumps to the recording's heating start.
    assert_eq!(*rig.line.switches.borrow(), vec![(0, true), (19_000, false)]);
    // The next part finds the interlock re-armed.
    assert!(st.hardware().lamp.service(0).is_ok());
}

#[test]
fn a_recording_that_ends_early_is_retest() {
    let mut mem = buffers();
    let setup = Setup {
        end_ms: 300_000,
        ..Setup::default()
    };
    let (mut st, rig) = station(&mut mem, BLOB, setup, StationConfig::DEFAULT);
    let r = st.inspect();
    assert_retest(&r, &rig);
    assert!(matches!(r.fault, Some(Fault::RecordingShort { sample: 6 })), "{r:?}");
}

#[test]
fn a_corrupted_model_is_never_run() {
    for (what, blob) in [
        ("payload byte", {
            let mut b = BLOB.to_vec();
            let n = b.len();
            b[n / 2] ^= 0x40;
            b
        }),
        ("version", {
            let mut b = BLOB.to_vec();
            b[4] = 99;
            b
        }),
        ("truncated", BLOB[..BLOB.len() - 10].to_vec()),
        ("empty", Vec::new()),
    ] {
        let mut mem = buffers();
        let (mut st, rig) = station(&mut mem, &blob, Setup::default(), StationConfig::DEFAULT);
        assert!(st.model_fault().is_some(), "{what}");
        assert_eq!(
            *rig.leds.0.borrow(),
            vec![Indication::Retest],
            "{what}: RETEST from boot"
        );
        let r = st.inspect();
        assert_retest(&r, &rig);
        assert_eq!(r.fault, Some(Fault::Model), "{what}");
        assert_eq!(rig.captured.get(), 0, "{what}: the camera is not even read");
        assert!(rig.line.switches.borrow().is_empty(), "{what}: the lamp never lit");
    }
}

fn bare_hardware() -> Hardware<SynthCamera, SynthClock, LampRelay<LampPin>, LedLog, Dog> {
    let line = Timeline::default();
    Hardware {
        camera: SynthCamera {
            line: line.clone(),
            times: Vec::new(),
            next: 0,
            glitch: Box::new(|_| Glitch::None),
            amplitude: 0.0,
            heating_ms: 0,
            captured: Rc::default(),
        },
        clock: SynthClock {
            line: line.clone(),
            cycles: 0,
        },
        lamp: LampRelay::new(LampPin(line), 1000).unwrap(),
        leds: LedLog::default(),
        watchdog: Dog::default(),
    }
}

/// A model for the shipped model's features with class logits and a depth output of
/// `depth_channels` (1 is a depth map), each a 1×1 convolution of the features with
/// weights from a fixed pattern, so the class map has regions and the depths vary.
fn depth_model(depth_channels: usize) -> Vec<u8> {
    let shipped = tqc_shared::blob::decode(BLOB).unwrap();
    let channels = shipped.input_shape().channels as usize;
    let head = |out: usize, salt: usize, scale: f32, zero_point: i8| OwnedLayer {
        op: Op::Conv2d {
            kernel_h: 1,
            kernel_w: 1,
            stride: 1,
            padding: Padding::Same,
            out_channels: out as u16,
        },
        inputs: vec![0],
        activation: Activation::None,
        output: QuantParams { scale, zero_point },
        weights: (0..out * channels)
            .map(|i| ((((i * 37 + salt * 11) % 29) as i8 - 14) * 4) as u8)
            .collect(),
        weight_scales: (0..out).flat_map(|_| 0.02f32.to_le_bytes()).collect(),
        bias: (0..out)
            .flat_map(|o| (if o == 0 { 400i32 } else { 0 }).to_le_bytes())
            .collect(),
    };
    OwnedModel {
        name: "depth".into(),
        input: shipped.desc.input.clone(),
        classes: shipped.desc.classes.iter().map(|c| c.to_string()).collect(),
        layers: vec![head(3, 1, 0.1, 0), head(depth_channels, 2, 0.002, 0)],
        outputs: vec![1, 2],
    }
    .to_blob()
    .unwrap()
}

#[test]
fn a_depth_output_gives_each_region_its_median_depth_as_the_shared_pipeline_does() {
    let cfg = StationConfig::DEFAULT;
    let blob = depth_model(1);
    let mut mem = buffers();
    let (mut st, _) = station(&mut mem, &blob, Setup::default(), cfg);
    assert!(st.model_fault().is_none(), "{:?}", st.model_fault());
    let report = st.inspect();
    assert_eq!(report.fault, None, "{report:?}");
    let (classes, depth) = reference_outputs(&blob, &Setup::default(), &cfg);
    assert_eq!(st.classes(), &classes[..]);
    let depth = depth.unwrap();
    let model = tqc_shared::blob::decode(&blob).unwrap();
    let mut map = classes.clone();
    let mut stack = vec![0u32; PX];
    let want = tqc_shared::verdict::inspect_with_depth::<{ tqc_shared::inspection::REPORT_REGIONS }>(
        &mut map,
        Some(tqc_shared::verdict::DepthMap {
            codes: &depth,
            quant: model.output_quant(1).unwrap(),
        }),
        W,
        H,
        &mut stack,
        &cfg.verdict,
    )
    .unwrap();
    assert!(report.region_count >= 1, "the pattern gives the warm disc: {report:?}");
    assert_eq!(report.regions.as_slice(), want.regions.as_slice());
    assert!(
        report.regions.iter().all(|r| r.depth_um.is_some()),
        "every region has a depth"
    );
    // The depths inside the disc differ, so the median is a choice the test checks.
    let disc = &report.regions[0];
    let inside: std::collections::BTreeSet<i8> = (0..PX)
        .filter(|&p| {
            let (x, y) = ((p % W) as u16, (p / W) as u16);
            classes[p] == disc.class && (disc.min_x..=disc.max_x).contains(&x) && (disc.min_y..=disc.max_y).contains(&y)
        })
        .map(|p| depth[p])
        .collect();
    assert!(inside.len() >= 3, "{inside:?}");
    // A second output of two channels is not a depth map: refused at boot.
    let two = depth_model(2);
    let mut mem = buffers();
    let (st, _) = station(&mut mem, &two, Setup::default(), cfg);
    assert_eq!(st.model_fault(), Some(&tqc_station::ModelFault::Outputs { outputs: 2 }));
}

/// A model for the shipped model's features whose second layer is 15 rows tall: its
/// input's ring (15 rows of 160 × 128) is larger than the work region.
fn tall_kernel_model() -> Vec<u8> {
    let shipped = tqc_shared::blob::decode(BLOB).unwrap();
    let layer = |op, inputs: Vec<u8>, channels: usize, k_len: usize| OwnedLayer {
        op,
        inputs,
        activation: Activation::Relu,
        output: QuantParams {
            scale: 0.05,
            zero_point: -128,
        },
        weights: vec![1; channels * k_len],
        weight_scales: (0..channels).flat_map(|_| 0.01f32.to_le_bytes()).collect(),
        bias: (0..channels).flat_map(|_| 0i32.to_le_bytes()).collect(),
    };
    let conv = |kernel_h, out_channels| Op::Conv2d {
        kernel_h,
        kernel_w: 1,
        stride: 1,
        padding: Padding::Same,
        out_channels,
    };
    let model = OwnedModel {
        name: "tall".into(),
        input: shipped.desc.input.clone(),
        classes: shipped.desc.classes.iter().map(|c| c.to_string()).collect(),
        layers: vec![
            layer(conv(1, 128), vec![0], 128, 8),
            layer(conv(15, 3), vec![1], 3, 15 * 128),
        ],
        outputs: vec![2],
    };
    model.to_blob().unwrap()
}

#[test]
fn a_model_for_another_frame_size_or_an_arena_beyond_the_work_region_is_refused_at_boot() {
    let tall = tall_kernel_model();
    let mut mem = buffers();
    let mut st = Station::new(bare_hardware(), mem.memory(), &tall, StationConfig::DEFAULT);
    match st.model_fault() {
        Some(tqc_station::ModelFault::Arena(EngineError::ArenaTooSmall { needed, available })) => {
            assert_eq!(*available, work_bytes(PX));
            assert!(*needed > 15 * W * 128, "{needed}");
        }
        other => panic!("{other:?}"),
    }
    // Such a station never inspects: every part is RETEST.
    let report = st.inspect();
    assert_eq!((report.verdict, report.fault), (Verdict::Retest, Some(Fault::Model)));
    // A camera of 80×60 pixels.
    let mut other: Box<Buffers<4800, { 4800 * 8 }, { work_bytes(4800) }>> = unsafe { Box::new_zeroed().assume_init() };
    let st = Station::new(bare_hardware(), other.memory(), BLOB, StationConfig::DEFAULT);
    assert_eq!(
        st.model_fault(),
        Some(&tqc_station::ModelFault::Shape {
            height: 120,
            width: 160,
            pixels: 4800
        })
    );
    // Four feature channels of memory for an eight-channel model.
    let mut narrow: Box<Buffers<PX, { PX * 4 }, { work_bytes(PX) }>> = unsafe { Box::new_zeroed().assume_init() };
    let st = Station::new(bare_hardware(), narrow.memory(), BLOB, StationConfig::DEFAULT);
    assert!(matches!(
        st.model_fault(),
        Some(tqc_station::ModelFault::FeatureMemory { .. })
    ));
}
