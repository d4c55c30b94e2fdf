//! The inspection state machine.
//!
//! ```text
//! Idle ─trigger─► PreHeat (N frames, lamp off: the cold reference)
//!      ─► Heating (lamp on for the programmed time; frames recorded)
//!      ─► Recording (lamp off; frames until the model's feature schedule is complete)
//!      ─► Inference (int8 engine over the static arena, argmax per pixel; a depth
//!         output's codes kept beside the arena)
//!      ─► Verdict (defect regions, each with its median depth) ─► LEDs ─► Idle
//! ```
//!
//! Features are computed on the fly, frame by frame, with the shared extractor: the
//! sequence is never held in RAM. Every fault on the way (camera beyond its budget, a hole
//! in the frame stream, too little heating, saturation, the lamp interlock, an invalid
//! model) ends the part at RETEST with the lamp off — never PASS. The watchdog is fed
//! only when something advanced: a frame accepted, an output row computed, a verdict.

use tqc_drivers::station::Indication;
use tqc_shared::blob::{self, BlobError};
use tqc_shared::engine::{Engine, EngineError};
use tqc_shared::features::{FeatureError, FeatureExtractor};
use tqc_shared::inspection::{Acquisition, Fault, Report, Stage};
use tqc_shared::kernels::argmax;
use tqc_shared::model::Model;
use tqc_shared::planner::Mode;
use tqc_shared::verdict::{DepthMap, Verdict, inspect_with_depth};

use crate::config::StationConfig;
use crate::fmt::{Disp, error, info, warning};
use crate::hw::{Camera, CameraError, Clock, Hardware, Indicator, Lamp, LampFault, Watchdog};
use crate::memory::{Acquiring, Memory};

/// Why the model cannot run on this station (found at boot; the station then answers
/// every part with RETEST).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelFault {
    /// The blob itself: CRC, format version, malformed description.
    Blob(BlobError),
    /// The model has no feature schedule: it is not an inspection model.
    NotInspection,
    /// The model's input or output is not one class per camera pixel.
    Shape { height: u16, width: u16, pixels: usize },
    /// A second output that is not one depth per camera pixel, or more than two outputs.
    Outputs { outputs: usize },
    /// The feature image needs more bytes than the station has.
    FeatureMemory { needed: usize, available: usize },
    /// The engine refuses the arena (too small or misaligned).
    Arena(EngineError),
}

impl core::fmt::Display for ModelFault {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ModelFault::Blob(e) => write!(f, "blob: {e}"),
            ModelFault::NotInspection => f.write_str("the model has no feature schedule"),
            ModelFault::Shape { height, width, pixels } => write!(
                f,
                "the model maps {height}×{width} to a class map of another size, the camera has {pixels} pixels"
            ),
            ModelFault::Outputs { outputs } => write!(
                f,
                "the model has {outputs} outputs: the station reads the class logits and at most one depth map of the camera's size"
            ),
            ModelFault::FeatureMemory { needed, available } => {
                write!(f, "feature image needs {needed} bytes, the station has {available}")
            }
            ModelFault::Arena(e) => write!(f, "arena: {e}"),
        }
    }
}

/// One inspection station: its hardware, its static memory and its model.
pub struct Station<'a, C, K, L, I, W> {
    hw: Hardware<C, K, L, I, W>,
    mem: Memory<'a>,
    model: Result<Model<'a>, ModelFault>,
    model_crc: u32,
    cfg: StationConfig,
    parts: u32,
}

/// Checks everything about `blob` that could stop an inspection half-way; the model and
/// the arena bytes it takes of the work region.
fn validate<'a>(blob_bytes: &'a [u8], mem: &mut Memory<'_>) -> Result<(Model<'a>, usize), ModelFault> {
    let model = blob::decode(blob_bytes).map_err(ModelFault::Blob)?;
    let spec = model.desc.input.features.as_ref().ok_or(ModelFault::NotInspection)?;
    let input = model.input_shape();
    let output = model.output_shape();
    let pixels = mem.pixels();
    let plane = input.height as usize * input.width as usize;
    if plane != pixels || (output.height, output.width) != (input.height, input.width) || output.channels < 2 {
        return Err(ModelFault::Shape {
            height: input.height,
            width: input.width,
            pixels,
        });
    }
    let outputs = model.outputs().len();
    if outputs > 2 || (outputs == 2 && model.depth_output().is_none()) {
        return Err(ModelFault::Outputs { outputs });
    }
    let needed = pixels * spec.channels();
    if needed > mem.features.len() {
        return Err(ModelFault::FeatureMemory {
            needed,
            available: mem.features.len(),
        });
    }
    // The feature image is resident: the first layers read it in place, the arena holds
    // only the rings and delay lines after it.
    let with_depth = model.depth_output().is_some();
    let (arena, _) = Memory::inference(mem.arena(), pixels, with_depth).ok_or(ModelFault::Shape {
        height: input.height,
        width: input.width,
        pixels,
    })?;
    let arena = Engine::new(&model, arena, Mode::ResidentInput)
        .map_err(ModelFault::Arena)?
        .arena_used();
    Ok((model, arena))
}

impl<'a, C, K, L, I, W> Station<'a, C, K, L, I, W>
where
    C: Camera,
    K: Clock,
    L: Lamp,
    I: Indicator,
    W: Watchdog,
{
    /// Boots the station: validates the model (CRC, version, shapes, memory, arena). An
    /// invalid model is never run: the RETEST LED lights and every part gets RETEST.
    pub fn new(mut hw: Hardware<C, K, L, I, W>, mut mem: Memory<'a>, blob_bytes: &'a [u8], cfg: StationConfig) -> Self {
        let _ = hw.lamp.off();
        let model = validate(blob_bytes, &mut mem);
        let model_crc = match &model {
            Ok((m, arena)) => {
                info!(
                    "model ok: {} layers, {} feature channels, arena {} of the {} B work region",
                    m.layers.len(),
                    m.input_shape().channels,
                    arena,
                    mem.work_len()
                );
                hw.leds.show(Indication::Off);
                blob_bytes
                    .get(12..16)
                    .and_then(|b| b.try_into().ok())
                    .map_or(0, u32::from_le_bytes)
            }
            Err(e) => {
                error!("model invalid, the station answers RETEST: {}", Disp(e));
                hw.leds.show(Indication::Retest);
                0
            }
        };
        Station {
            hw,
            mem,
            model: model.map(|(m, _)| m),
            model_crc,
            cfg,
            parts: 0,
        }
    }

    pub fn model_fault(&self) -> Option<&ModelFault> {
        self.model.as_ref().err()
    }

    pub fn config(&self) -> &StationConfig {
        &self.cfg
    }

    /// The class map of the last inspection that reached inference (row-major).
    pub fn classes(&self) -> &[u8] {
        self.mem.classes
    }

    /// The depth codes of the last inspection that reached inference (row-major, on
    /// the depth output's grid), for a model with a depth output.
    pub fn depth_codes(&self) -> Option<&[i8]> {
        self.model.as_ref().ok()?.depth_output()?;
        self.mem.depth_codes()
    }

    pub fn hardware(&mut self) -> &mut Hardware<C, K, L, I, W> {
        &mut self.hw
    }

    /// Gives the hardware back.
    pub fn destroy(self) -> Hardware<C, K, L, I, W> {
        self.hw
    }

    /// Inspects one part (the trigger has fired): the whole cycle, ending with the LEDs
    /// showing the verdict and the lamp off.
    pub fn inspect(&mut self) -> Report {
        self.parts += 1;
        info!("part {}: inspection starts", self.parts);
        self.hw.leds.show(Indication::Busy);
        let mut report = Report::retest(Fault::Model);
        report.model_crc = self.model_crc;
        let result = match &self.model {
            Ok(model) => run(&mut self.hw, &mut self.mem, model, &self.cfg, &mut report),
            Err(_) => Err(Fault::Model),
        };
        // Whatever happened, the lamp ends off.
        if self.hw.lamp.off().is_err() {
            error!("lamp relay cannot be driven");
        }
        match result {
            Ok(()) => report.fault = None,
            Err(fault) => {
                report.fault = Some(fault);
                report.verdict = Verdict::Retest;
            }
        }
        self.hw.leds.show(match report.verdict {
            Verdict::Pass => Indication::Pass,
            Verdict::Fail => Indication::Fail,
            Verdict::Retest => Indication::Retest,
        });
        self.hw.watchdog.feed();
        report.counters.watchdog_feeds += 1;
        if let Some(f) = &report.fault {
            warning!("part {}: RETEST: {}", self.parts, Disp(f));
        }
        info!(
            "part {}: {} ({} regions; {} frames, camera errors {}, longest gap {} ms)",
            self.parts,
            report.verdict,
            report.region_count,
            report.acquisition.frames,
            report.counters.camera_errors,
            report.counters.longest_gap_ms
        );
        for (stage, cycles) in Stage::ALL.iter().zip(report.stage_cycles) {
            info!("  stage {}: {} cycles", stage.name(), cycles);
        }
        // The lamp interlock stays tripped only for the part that tripped it.
        self.hw.lamp.rearm();
        report
    }
}

/// Cycles spent in one stage.
struct Stopwatch<'s, K: Clock> {
    clock: &'s mut K,
}

impl<K: Clock> Stopwatch<'_, K> {
    fn time<T>(&mut self, into: &mut u64, f: impl FnOnce() -> T) -> T {
        let start = self.clock.cycles();
        let out = f();
        *into += self.clock.cycles().wrapping_sub(start);
        out
    }
}

fn feature_fault(e: FeatureError) -> Fault {
    match e {
        FeatureError::Time { t_ms, .. } => Fault::FrameOrder {
            t_ms: t_ms.clamp(i32::MIN as i64, i32::MAX as i64) as i32,
        },
        FeatureError::TooShort { sample, .. } => Fault::RecordingShort {
            sample: sample.min(u8::MAX as usize) as u8,
        },
        // Buffers and schedule were validated at boot.
        _ => Fault::Model,
    }
}

fn lamp_fault(e: LampFault) -> Fault {
    match e {
        LampFault::Interlock => Fault::LampInterlock,
        LampFault::Pin => Fault::LampRelay,
    }
}

/// Gets the next good frame: `Some(time)`, or `None` when a recorded sequence ended.
/// Lost frames count against the budget; a hole in time is a fault. `tick` runs at every
/// return of the camera, a frame or not (the lamp's interlock and its programmed time are
/// enforced there, so lost frames cannot keep it on).
fn next_frame<C: Camera, K: Clock>(
    camera: &mut C,
    clock: &mut K,
    frame: &mut [u16],
    last_ms: &mut Option<i64>,
    cfg: &StationConfig,
    report: &mut Report,
    tick: &mut impl FnMut(i64) -> Result<(), Fault>,
) -> Result<Option<i64>, Fault> {
    loop {
        let start = clock.cycles();
        let got = camera.capture(frame);
        report.stage_cycles[Stage::Camera as usize] += clock.cycles().wrapping_sub(start);
        let now = clock.now_ms();
        // The camera's counters first, so the report has them whatever ends the part.
        let gap = match (got, *last_ms) {
            (Ok(()), Some(prev)) => Some((prev, (now - prev).clamp(0, u32::MAX as i64) as u32)),
            _ => None,
        };
        if let Some((_, gap)) = gap {
            report.counters.longest_gap_ms = report.counters.longest_gap_ms.max(gap);
        }
        if got == Err(CameraError::Lost) {
            report.counters.camera_errors = report.counters.camera_errors.saturating_add(1);
        }
        tick(now)?;
        match got {
            Ok(()) => {
                if let Some((prev, gap)) = gap
                    && gap > cfg.max_frame_gap_ms
                {
                    return Err(Fault::FramesMissing {
                        after_ms: prev.clamp(i32::MIN as i64, i32::MAX as i64) as i32,
                        gap_ms: gap,
                        limit_ms: cfg.max_frame_gap_ms,
                    });
                }
                *last_ms = Some(now);
                return Ok(Some(now));
            }
            Err(CameraError::Lost) => {
                warning!("frame lost at {} ms ({} so far)", now, report.counters.camera_errors);
                if report.counters.camera_errors > cfg.camera_error_budget {
                    return Err(Fault::Camera {
                        errors: report.counters.camera_errors,
                        budget: cfg.camera_error_budget,
                    });
                }
            }
            Err(CameraError::Failed) => {
                error!("camera failed at {} ms", now);
                return Err(Fault::Camera {
                    errors: report.counters.camera_errors.saturating_add(1),
                    budget: cfg.camera_error_budget,
                });
            }
            Err(CameraError::Ended) => return Ok(None),
        }
    }
}

/// Feeds a good frame to the features (timed) and the watchdog: progress.
fn accept_frame<C: Camera, K: Clock, L: Lamp, I: Indicator, W: Watchdog>(
    hw: &mut Hardware<C, K, L, I, W>,
    fx: &mut FeatureExtractor<'_>,
    t_ms: i64,
    frame: &[u16],
    report: &mut Report,
) -> Result<(), Fault> {
    Stopwatch { clock: &mut hw.clock }
        .time(&mut report.stage_cycles[Stage::Features as usize], || {
            fx.push_frame(t_ms, frame)
        })
        .map_err(feature_fault)?;
    hw.watchdog.feed();
    report.counters.watchdog_feeds += 1;
    Ok(())
}

/// Pre-heat, heating and recording: every frame into the features, until the schedule is
/// complete; the lamp ends off.
fn acquire<C: Camera, K: Clock, L: Lamp, I: Indicator, W: Watchdog>(
    hw: &mut Hardware<C, K, L, I, W>,
    fx: &mut FeatureExtractor<'_>,
    frame: &mut [u16],
    cfg: &StationConfig,
    deadline_ms: i64,
    report: &mut Report,
) -> Result<(), Fault> {
    let mut last_ms = None;

    // Pre-heat: the cold reference. The extractor only needs these before t = 0, in
    // order; their exact times are irrelevant (the lamp time is not known yet).
    info!("pre-heat: {} frames", cfg.preheat_frames);
    for k in 0..cfg.preheat_frames {
        let got = next_frame(
            &mut hw.camera,
            &mut hw.clock,
            frame,
            &mut last_ms,
            cfg,
            report,
            &mut |_| Ok(()),
        )?;
        if got.is_none() {
            return Err(Fault::RecordingShort { sample: 0 });
        }
        let t = -((cfg.preheat_frames - k) as i64);
        accept_frame(hw, fx, t, frame, report)?;
    }

    // Heating and recording.
    hw.lamp.on(hw.clock.now_ms()).map_err(lamp_fault)?;
    let t_on = hw.clock.now_ms();
    let mut lamp_on = true;
    info!("lamp on at {} ms for {} ms", t_on, cfg.heating_ms);
    let mut heating_checked = false;
    loop {
        let lamp = &mut hw.lamp;
        let mut tick = |now: i64| -> Result<(), Fault> {
            if lamp_on {
                lamp.service(now).map_err(lamp_fault)?;
                if now - t_on >= cfg.heating_ms as i64 {
                    lamp.off().map_err(lamp_fault)?;
                    lamp_on = false;
                    info!("lamp off at t = {} ms", now - t_on);
                }
            }
            Ok(())
        };
        let Some(now) = next_frame(
            &mut hw.camera,
            &mut hw.clock,
            frame,
            &mut last_ms,
            cfg,
            report,
            &mut tick,
        )?
        else {
            break;
        };
        let t = now - t_on;
        accept_frame(hw, fx, t, frame, report)?;
        if !heating_checked && let Some(rise) = fx.median_rise_ck {
            heating_checked = true;
            info!("heating rise (median) {} cK", rise);
            cfg.limits.check_heating(rise)?;
        }
        if fx.is_complete() || t > deadline_ms {
            break;
        }
    }
    hw.lamp.off().map_err(lamp_fault)?;
    Stopwatch { clock: &mut hw.clock }
        .time(&mut report.stage_cycles[Stage::Features as usize], || fx.finish())
        .map_err(feature_fault)?;
    Ok(())
}

/// One inspection with a validated model.
fn run<C: Camera, K: Clock, L: Lamp, I: Indicator, W: Watchdog>(
    hw: &mut Hardware<C, K, L, I, W>,
    mem: &mut Memory<'_>,
    model: &Model<'_>,
    cfg: &StationConfig,
    report: &mut Report,
) -> Result<(), Fault> {
    let spec = model.desc.input.features.as_ref().ok_or(Fault::Model)?;
    let input = model.input_shape();
    let (width, height) = (input.width as usize, input.height as usize);
    let pixels = mem.pixels();
    let channels = spec.channels();
    let last_sample = spec.window(channels - 1).1;
    let deadline_ms = last_sample + cfg.record_margin_ms as i64;

    let (work, reference, features, classes) = mem.parts();
    let features = features.get_mut(..pixels * channels).ok_or(Fault::Model)?;
    {
        // The work region holds the frame and the running sums until the features are done.
        let Acquiring { frame, cold, window } = Memory::acquiring(work, pixels).ok_or(Fault::Model)?;
        let mut fx = FeatureExtractor::new(spec, model.desc.input.quant, width, cold, window, reference, features)
            .map_err(feature_fault)?;
        // The counters go into the report whether the acquisition ends well or not.
        let acquired = acquire(hw, &mut fx, frame, cfg, deadline_ms, report);
        report.acquisition = Acquisition::of(&fx, pixels);
        acquired?;
    }
    let acquisition = report.acquisition;
    cfg.limits.check(&acquisition)?;
    info!(
        "features done: {} frames, {} saturated readings",
        acquisition.frames, acquisition.saturated
    );

    // Inference: one output row at a time, straight into the class map (and the
    // depth codes, at the end of the work region).
    let class_count = model.output_shape().channels as usize;
    let depth_k = model.depth_output();
    let features: &[i8] = features;
    let watchdog = &mut hw.watchdog;
    let feeds = &mut report.counters.watchdog_feeds;
    let mut classes_written = 0usize;
    let mut depths_written = 0usize;
    let (arena, mut depth_codes) = Memory::inference(&mut *work, pixels, depth_k.is_some()).ok_or(Fault::Model)?;
    let inferred = Stopwatch { clock: &mut hw.clock }.time(&mut report.stage_cycles[Stage::Inference as usize], || {
        let mut engine = Engine::new(model, arena, Mode::ResidentInput)?;
        engine.run_streaming(features, &mut |k, y, row| {
            if k == 0 {
                for (x, logits) in row.chunks_exact(class_count.max(1)).enumerate() {
                    if let Some(c) = classes.get_mut(y * width + x) {
                        *c = argmax(logits).unwrap_or(0) as u8;
                        classes_written += 1;
                    }
                }
            } else if Some(k) == depth_k
                && let Some(dst) = depth_codes
                    .as_deref_mut()
                    .and_then(|d| d.get_mut(y * width..(y + 1) * width))
                && dst.len() == row.len()
            {
                dst.copy_from_slice(row);
                depths_written += row.len();
            }
            watchdog.feed();
            *feeds += 1;
        })
    });
    if let Err(e) = inferred {
        error!("inference: {}", Disp(&e));
        return Err(Fault::Inference);
    }
    if classes_written != pixels {
        error!("inference wrote {} of {} classes", classes_written, pixels);
        return Err(Fault::Inference);
    }
    if depth_k.is_some() && depths_written != pixels {
        error!("inference wrote {} of {} depths", depths_written, pixels);
        return Err(Fault::Inference);
    }

    // Verdict: the arena is done with; it lends the region search its stack.
    let (stack, depth_codes) = Memory::verdict(work, pixels, depth_k.is_some()).ok_or(Fault::Model)?;
    let depth = match (depth_k.and_then(|k| model.output_quant(k)), depth_codes) {
        (Some(quant), Some(codes)) => Some(DepthMap { codes, quant }),
        _ => None,
    };
    let findings = Stopwatch { clock: &mut hw.clock }.time(&mut report.stage_cycles[Stage::Verdict as usize], || {
        inspect_with_depth::<{ tqc_shared::inspection::REPORT_REGIONS }>(
            classes,
            depth,
            width,
            height,
            stack,
            &cfg.verdict,
        )
    });
    let findings = findings.map_err(|e| {
        error!("verdict: {}", Disp(&e));
        Fault::Inference
    })?;
    report.fault = None;
    report.set_findings(&findings);
    Ok(())
}
