//! The state machine over random fault schedules, with mock hardware: a camera whose
//! every call is a good frame (possibly late, possibly partly saturated), a lost frame, a
//! hang (a long wait, then lost) or a failure, and which may end early; a lamp relay pin
//! that may refuse to switch on or off; an interlock shorter or longer than the heating;
//! lamps that may not heat. A small camera (16 × 12) and a one-layer model keep each
//! inspection cheap, so thousands of schedules run.
//!
//! A straightforward reference walks the calls the station actually made and lists the
//! problems it was given. Checked:
//! - PASS or FAIL only when that list is empty; RETEST only when it is not, with a fault
//!   from the list;
//! - the lamp goes off at the first camera return after its programmed time or its
//!   interlock (unless the relay itself refused);
//! - the watchdog is fed once per frame accepted, output row and verdict, and never
//!   while the camera gives nothing;
//! - the report's counters are those of the calls made.

use std::cell::RefCell;
use std::rc::Rc;

use proptest::prelude::*;
use tqc_drivers::station::Lamp as LampRelay;
use tqc_shared::features::FeatureSpec;
use tqc_shared::inspection::{AcquisitionLimits, Fault};
use tqc_shared::model::{InputSpec, Op, QuantParams};
use tqc_shared::owned::{OwnedLayer, OwnedModel};
use tqc_shared::quant::Activation;
use tqc_shared::tensor::{Padding, Shape};
use tqc_shared::verdict::{Verdict, VerdictConfig};
use tqc_station::{
    Buffers, Camera, CameraError, Clock, Hardware, Indication, Indicator, Station, StationConfig, Watchdog, work_bytes,
};

const W: usize = 16;
const H: usize = 12;
const PX: usize = W * H;
const CHANNELS: usize = 4;
const PERIOD_MS: i64 = 100;
const HEATING_MS: u32 = 2_000;
type Mem = Buffers<PX, { PX * CHANNELS }, { work_bytes(PX) }>;

const CFG: StationConfig = StationConfig {
    preheat_frames: 3,
    heating_ms: HEATING_MS,
    max_frame_gap_ms: 250,
    camera_error_budget: 2,
    record_margin_ms: 500,
    limits: AcquisitionLimits::DEFAULT,
    verdict: VerdictConfig::DEFAULT,
};

/// Features at 1, 2, 3 and 4 s (±10 %), then one 1×1 convolution to three classes.
fn model() -> Vec<u8> {
    let spec = FeatureSpec {
        times_ms: heapless::Vec::from_slice(&[1_000, 2_000, 3_000, 4_000]).unwrap(),
        window_permille: 100,
        amplitude_window_px: 5,
    };
    let q = |scale| QuantParams { scale, zero_point: 0 };
    let weights: Vec<i8> = vec![40, -30, 10, 5, -20, 50, -10, 0, 10, 10, 60, -40];
    OwnedModel {
        name: "fault-schedule".into(),
        input: InputSpec {
            shape: Shape::new(H as u16, W as u16, CHANNELS as u16),
            quant: q(1.0 / 32.0),
            features: Some(spec),
        },
        classes: vec!["sound".into(), "subsurface".into(), "surface".into()],
        layers: vec![OwnedLayer {
            op: Op::Conv2d {
                kernel_h: 1,
                kernel_w: 1,
                stride: 1,
                padding: Padding::Same,
                out_channels: 3,
            },
            inputs: vec![0],
            activation: Activation::None,
            output: q(0.05),
            weights: weights.iter().map(|&w| w as u8).collect(),
            weight_scales: (0..3).flat_map(|_| 0.01f32.to_le_bytes()).collect(),
            bias: [0i32, -100, -200].iter().flat_map(|b| b.to_le_bytes()).collect(),
        }],
        outputs: vec![1],
    }
    .to_blob()
    .unwrap()
}

/// One call of the camera.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Call {
    /// A frame, `late_ms` after its period, with `saturated` readings at 65535.
    Frame {
        late_ms: i64,
        saturated: usize,
    },
    Lost,
    /// The camera blocks for `ms`, then gives nothing.
    Hang {
        ms: i64,
    },
    Failed,
}

#[derive(Clone, Debug)]
struct Schedule {
    calls: Vec<Call>,
    /// Rise (cK) after 1 s of heating; 0: the lamps do not heat.
    amplitude: f64,
    /// A warm disc (a defect) in the part.
    defect: bool,
    /// The relay's hard limit.
    interlock_ms: u32,
    /// The pin refuses the n-th switch on (0-based), or the n-th switch off.
    pin_fails_on: Option<usize>,
    pin_fails_off: Option<usize>,
}

/// Everything the mocks saw, on one time line.
#[derive(Default)]
struct Log {
    now_ms: i64,
    /// Lamp pin level, and the time heat started.
    lamp: bool,
    heated_ms: i64,
    lamp_since: Option<i64>,
    /// (time, on) of every switch the pin made; switches it refused.
    switches: Vec<(i64, bool)>,
    refused: Vec<Refusal>,
    /// The camera was asked for a frame past the end of the schedule.
    ended: bool,
    ons: usize,
    offs: usize,
    /// Calls the camera answered: (time, call).
    answered: Vec<(i64, Call)>,
    /// Per watchdog feed: how many calls had been answered, and the last one.
    feeds: Vec<(usize, Option<Call>)>,
}

struct Refusal {
    on: bool,
    lamp_was_on: bool,
}

type Shared = Rc<RefCell<Log>>;

struct MockCamera {
    log: Shared,
    calls: Vec<Call>,
    next: usize,
    amplitude: f64,
    defect: bool,
}

impl Camera for MockCamera {
    fn capture(&mut self, frame: &mut [u16]) -> Result<(), CameraError> {
        let Some(&call) = self.calls.get(self.next) else {
            self.log.borrow_mut().ended = true;
            return Err(CameraError::Ended);
        };
        self.next += 1;
        let mut log = self.log.borrow_mut();
        let took = match call {
            Call::Frame { late_ms, .. } => PERIOD_MS + late_ms,
            Call::Hang { ms } => ms,
            Call::Lost | Call::Failed => PERIOD_MS,
        };
        // Heat accumulates while the pin is high.
        if log.lamp {
            log.heated_ms += took;
        }
        log.now_ms += took;
        let now = log.now_ms;
        log.answered.push((now, call));
        match call {
            Call::Frame { saturated, .. } => {
                let rise = self.amplitude * (log.heated_ms as f64 / 1000.0).sqrt();
                for (i, px) in frame.iter_mut().enumerate() {
                    let (x, y) = (i % W, i / W);
                    let disc = (x as i64 - 10).pow(2) + (y as i64 - 6).pow(2) < 6;
                    let defect = if self.defect && disc { 1.3 } else { 1.0 };
                    let texture = ((x * 7 + y * 13) % 5) as f64;
                    *px = (29_315.0 + texture + rise * defect).round() as u16;
                }
                for px in frame.iter_mut().take(saturated) {
                    *px = u16::MAX;
                }
                Ok(())
            }
            Call::Lost | Call::Hang { .. } => Err(CameraError::Lost),
            Call::Failed => Err(CameraError::Failed),
        }
    }
}

struct MockClock(Shared, u64);

impl Clock for MockClock {
    fn now_ms(&mut self) -> i64 {
        self.0.borrow().now_ms
    }
    fn cycles(&mut self) -> u64 {
        self.1 += 1;
        self.1
    }
}

#[derive(Debug)]
struct Refused;

impl embedded_hal::digital::Error for Refused {
    fn kind(&self) -> embedded_hal::digital::ErrorKind {
        embedded_hal::digital::ErrorKind::Other
    }
}

struct Pin {
    log: Shared,
    fails_on: Option<usize>,
    fails_off: Option<usize>,
}

impl embedded_hal::digital::ErrorType for Pin {
    type Error = Refused;
}

impl embedded_hal::digital::OutputPin for Pin {
    fn set_high(&mut self) -> Result<(), Refused> {
        let mut log = self.log.borrow_mut();
        let n = log.ons;
        log.ons += 1;
        let now = log.now_ms;
        if self.fails_on == Some(n) {
            let lamp_was_on = log.lamp;
            log.refused.push(Refusal { on: true, lamp_was_on });
            return Err(Refused);
        }
        if !log.lamp {
            log.switches.push((now, true));
            log.lamp_since = Some(now);
        }
        log.lamp = true;
        Ok(())
    }
    fn set_low(&mut self) -> Result<(), Refused> {
        let mut log = self.log.borrow_mut();
        // The relay's constructor drives the pin low once before any part.
        let n = log.offs;
        log.offs += 1;
        let now = log.now_ms;
        if self.fails_off.map(|k| k + 1) == Some(n) {
            let lamp_was_on = log.lamp;
            log.refused.push(Refusal { on: false, lamp_was_on });
            return Err(Refused);
        }
        if log.lamp {
            log.switches.push((now, false));
        }
        log.lamp = false;
        Ok(())
    }
}

struct Leds(Shared, Vec<Indication>);

impl Indicator for Leds {
    fn show(&mut self, what: Indication) {
        let _ = &self.0;
        self.1.push(what);
    }
}

struct Dog(Shared);

impl Watchdog for Dog {
    fn feed(&mut self) {
        let mut log = self.0.borrow_mut();
        let answered = log.answered.len();
        let last = log.answered.last().map(|&(_, c)| c);
        log.feeds.push((answered, last));
    }
}

type Kind = std::mem::Discriminant<Fault>;

/// What the reference finds wrong in the calls the station made: the problems that
/// must end the part at RETEST, and the wider set of faults it may name (a relay that
/// refused to switch off a lamp already off is a reason to stop, not a must; the
/// station accepts either every frame answered or all but the last, so a saturation
/// within one frame of the limit may go either way).
fn problems(s: &Schedule, log: &Log) -> (Vec<Kind>, Vec<Kind>) {
    use std::mem::discriminant as d;
    let (mut must, mut may) = (Vec::new(), Vec::new());
    // A must is also a may (added at the end).
    let mut both = |f: Fault| must.push(d(&f));
    let lost = log
        .answered
        .iter()
        .filter(|(_, c)| matches!(c, Call::Lost | Call::Hang { .. }))
        .count();
    if lost > CFG.camera_error_budget as usize || log.answered.iter().any(|(_, c)| *c == Call::Failed) {
        both(Fault::Camera { errors: 0, budget: 0 });
    }
    let frames: Vec<(i64, usize)> = log
        .answered
        .iter()
        .filter_map(|&(t, c)| match c {
            Call::Frame { saturated, .. } => Some((t, saturated)),
            _ => None,
        })
        .collect();
    if frames.windows(2).any(|w| w[1].0 - w[0].0 > CFG.max_frame_gap_ms as i64) {
        both(Fault::FramesMissing {
            after_ms: 0,
            gap_ms: 0,
            limit_ms: 0,
        });
    }
    // A recording that ends inside the last window (3.6–4.4 s) closes it with the frames
    // it has, as the shared features do on the host; one that ends before is short.
    let t_on = log.switches.first().map(|&(t, _)| t);
    let last_window_reached = t_on.is_some_and(|t_on| frames.last().is_some_and(|&(t, _)| t - t_on >= 3_600));
    if log.ended && !last_window_reached {
        both(Fault::RecordingShort { sample: 0 });
    } else if log.ended {
        may.push(d(&Fault::RecordingShort { sample: 0 }));
    }
    if log.refused.iter().any(|r| r.lamp_was_on || r.on) {
        both(Fault::LampRelay);
    }
    // The lamp is serviced at every camera return: the first one at or after the
    // heating time or the interlock switches it off, and trips the interlock if that
    // return comes at or after the interlock's limit (a camera that hung meanwhile).
    let due = HEATING_MS.min(s.interlock_ms) as i64;
    if let Some(t_on) = t_on
        && let Some(&(t, _)) = log.answered.iter().find(|&&(t, _)| t - t_on >= due)
        && t - t_on >= s.interlock_ms as i64
    {
        both(Fault::LampInterlock);
    }
    if s.amplitude == 0.0 {
        both(Fault::NoHeating {
            median_rise_ck: 0,
            min_rise_ck: 0,
        });
    }
    let over = |frames: &[(i64, usize)]| {
        let saturated: usize = frames.iter().map(|&(_, n)| n).sum();
        !frames.is_empty()
            && (saturated * 1000).div_ceil(frames.len() * PX) > CFG.limits.max_saturated_permille as usize
    };
    let all_but_last = &frames[..frames.len().saturating_sub(1)];
    if over(&frames) && over(all_but_last) {
        both(Fault::Saturated {
            permille: 0,
            limit_permille: 0,
        });
    } else if over(&frames) || over(all_but_last) {
        may.push(d(&Fault::Saturated {
            permille: 0,
            limit_permille: 0,
        }));
    }
    if !log.refused.is_empty() {
        may.push(d(&Fault::LampRelay));
    }
    may.extend_from_slice(&must);
    (must, may)
}

/// A call: a good frame, or with probability `rate` one of the faults.
fn call(rate: f64) -> impl Strategy<Value = Call> {
    let fault = prop_oneof![
        2 => (1i64..400).prop_map(|late_ms| Call::Frame { late_ms, saturated: 0 }),
        1 => (1usize..PX / 4).prop_map(|saturated| Call::Frame { late_ms: 0, saturated }),
        3 => Just(Call::Lost),
        1 => (200i64..5_000).prop_map(|ms| Call::Hang { ms }),
        1 => Just(Call::Failed),
    ];
    (prop::bool::weighted(rate), fault).prop_map(|(faulty, fault)| {
        if faulty {
            fault
        } else {
            Call::Frame {
                late_ms: 0,
                saturated: 0,
            }
        }
    })
}

fn schedule() -> impl Strategy<Value = Schedule> {
    // A third of the parts with a clean camera, the rest with faults at 1–10 % of calls.
    let calls = prop_oneof![1 => Just(0.0), 2 => 0.01f64..0.1]
        // A full part is 3 pre-heat frames and 37 to 45 to reach the last window.
        .prop_flat_map(|rate| prop::collection::vec(call(rate), 35..60));
    (
        calls,
        prop_oneof![8 => Just(300.0), 1 => Just(0.0)],
        prop::bool::ANY,
        prop_oneof![4 => Just(60_000u32), 1 => 500u32..4_000],
        prop_oneof![12 => Just(None), 1 => (0usize..2).prop_map(Some)],
        prop_oneof![12 => Just(None), 1 => (0usize..3).prop_map(Some)],
    )
        .prop_map(
            |(calls, amplitude, defect, interlock_ms, pin_fails_on, pin_fails_off)| Schedule {
                calls,
                amplitude,
                defect,
                interlock_ms,
                pin_fails_on,
                pin_fails_off,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn never_a_decision_on_a_bad_acquisition(s in schedule()) {
        let blob = model();
        let log: Shared = Rc::default();
        let hw = Hardware {
            camera: MockCamera { log: log.clone(), calls: s.calls.clone(), next: 0, amplitude: s.amplitude, defect: s.defect },
            clock: MockClock(log.clone(), 0),
            lamp: LampRelay::new(Pin { log: log.clone(), fails_on: s.pin_fails_on, fails_off: s.pin_fails_off }, s.interlock_ms)
                .unwrap(),
            leds: Leds(log.clone(), Vec::new()),
            watchdog: Dog(log.clone()),
        };
        // SAFETY: integer arrays only, for which zeros are valid.
        let mut mem: Box<Mem> = unsafe { Box::new_zeroed().assume_init() };
        let mut station = Station::new(hw, mem.memory(), &blob, CFG);
        prop_assert!(station.model_fault().is_none(), "{:?}", station.model_fault());
        let report = station.inspect();
        let leds = std::mem::take(&mut station.hardware().leds.1);
        drop(station);
        let log = log.borrow();

        // Decisions only on a clean acquisition; RETEST with a fault that was injected.
        let (must, may) = problems(&s, &log);
        match report.verdict {
            Verdict::Pass | Verdict::Fail => {
                prop_assert!(must.is_empty(), "{:?} on a schedule with problems {:?}", report.verdict, must);
                prop_assert_eq!(report.fault, None);
            }
            Verdict::Retest => {
                let fault = report.fault.expect("RETEST names its fault");
                prop_assert!(
                    may.contains(&std::mem::discriminant(&fault)),
                    "RETEST for {:?}, injected {:?}", fault, may
                );
            }
        }
        let want = match report.verdict {
            Verdict::Pass => Indication::Pass,
            Verdict::Fail => Indication::Fail,
            Verdict::Retest => Indication::Retest,
        };
        prop_assert_eq!(leds.last(), Some(&want));

        // The lamp: off at the first camera return at or after min(heating, interlock)
        // from switching on, or earlier; never left on, unless the relay refused.
        if !log.refused.iter().any(|r| !r.on) {
            prop_assert!(!log.lamp, "the lamp is left on");
            let limit = (HEATING_MS.min(s.interlock_ms)) as i64;
            for pair in log.switches.chunks(2) {
                let (on, off) = (pair[0].0, pair.get(1).map(|p| p.0));
                let due = log.answered.iter().map(|&(t, _)| t).find(|&t| t - on >= limit);
                if let (Some(off), Some(due)) = (off, due) {
                    prop_assert!(off <= due, "lamp on at {on} ms, off at {off} ms, due at {due} ms");
                }
            }
        }

        // The watchdog: fed per frame accepted, per output row and for the verdict; during
        // the acquisition only right after a frame.
        let decided = report.verdict != Verdict::Retest;
        let rows = if decided { H } else { 0 };
        prop_assert_eq!(log.feeds.len(), report.acquisition.frames as usize + rows + 1);
        prop_assert_eq!(report.counters.watchdog_feeds as usize, log.feeds.len());
        for &(_, last) in log.feeds.iter().take(report.acquisition.frames as usize) {
            prop_assert!(matches!(last, Some(Call::Frame { .. })), "fed after {last:?}");
        }

        // Counters: the calls made.
        let lost = log.answered.iter().filter(|(_, c)| matches!(c, Call::Lost | Call::Hang { .. })).count();
        prop_assert_eq!(report.counters.camera_errors as usize, lost);
        let frame_times: Vec<i64> = log.answered.iter().filter(|(_, c)| matches!(c, Call::Frame { .. })).map(|&(t, _)| t).collect();
        let longest = frame_times.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
        prop_assert_eq!(report.counters.longest_gap_ms as i64, longest);
        // Every frame answered was accepted, except perhaps the last when it ended the
        // part (a hole before it, the lamp at its return); all of them for a decision.
        let accepted = report.acquisition.frames as usize;
        prop_assert!(accepted == frame_times.len() || (!decided && accepted + 1 == frame_times.len()),
            "{} frames accepted of {}", accepted, frame_times.len());
    }
}
