//! What one input scale for all feature channels costs. The extractor quantizes every
//! channel with the model input's single scale; a channel that spreads less than the
//! widest one uses fewer of the 256 codes. This study gives each channel a grid of its own
//! (a power-of-two step sized to the channel's spread on the training plates), counts the
//! codes each grid uses (over all plates and per plate), and trains the same network on
//! both inputs with the same recipe and seed: the difference of the held-out scores is
//! what a per-channel input scale would give.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::cnn::{EpochReport, Sample, TrainConfig, TrainError, best_epoch, predict, train_thermonet2, validate};

/// Finest step a channel gets: the ratios are Q12 fixed point, so a finer grid only
/// repeats codes.
pub const FINEST_STEP: f32 = 1.0 / 4096.0;
/// Headroom over the training plates' 99.9th percentile: unseen parts spread wider.
pub const HEADROOM: f32 = 2.0;

/// One channel on both grids.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChannelGrid {
    pub channel: usize,
    /// 99.9th percentile of |feature| on the training plates (deviation from the plate
    /// median: a ratio − 1).
    pub p999_abs: f32,
    /// Step of the shared grid and the codes the channel uses on it (training plates).
    pub shared_step: f32,
    pub shared_codes: usize,
    /// The median over the training plates of the codes it uses on one plate.
    pub shared_codes_per_plate: usize,
    /// Its own step and the codes it uses on that grid (all plates, median per plate).
    pub own_step: f32,
    pub own_codes: usize,
    pub own_codes_per_plate: usize,
}

/// Channel `k` of a plate's CHW features (empty past the last channel).
fn channel(s: &Sample, k: usize) -> &[f32] {
    let px = s.height * s.width;
    s.features.get(k * px..(k + 1) * px).unwrap_or(&[])
}

/// 99.9th percentile of |value| of channel `k` over `samples`.
fn p999_abs(samples: &[Sample], k: usize) -> f32 {
    let mut v: Vec<f32> = samples
        .iter()
        .flat_map(|s| channel(s, k).iter().map(|x| x.abs()))
        .collect();
    if v.is_empty() {
        return 0.0;
    }
    let i = ((v.len() - 1) as f64 * 0.999).round() as usize;
    let (_, p, _) = v.select_nth_unstable_by(i, f32::total_cmp);
    *p
}

/// The distinct codes channel `k` takes over `samples` on a grid of `step`.
fn codes(samples: &[Sample], k: usize, step: f32) -> usize {
    samples
        .iter()
        .flat_map(|s| {
            channel(s, k)
                .iter()
                .map(move |x| (x / step).round().clamp(-128.0, 127.0) as i32)
        })
        .collect::<BTreeSet<_>>()
        .len()
}

/// The median over `samples` of the codes channel `k` takes on one plate.
fn codes_per_plate(samples: &[Sample], k: usize, step: f32) -> usize {
    let mut n: Vec<usize> = samples
        .iter()
        .map(|s| codes(std::slice::from_ref(s), k, step))
        .collect();
    n.sort_unstable();
    n.get(n.len() / 2).copied().unwrap_or(0)
}

/// A grid per channel for plates computed on the shared grid of `shared_step`: the
/// power-of-two step whose 127 codes cover [`HEADROOM`] × the channel's 99.9th
/// percentile, never coarser than the shared step nor finer than [`FINEST_STEP`].
pub fn channel_steps(shared: &[Sample], shared_step: f32) -> Vec<f32> {
    let c = shared.first().map_or(0, |s| s.channels);
    (0..c)
        .map(|k| {
            // At least one shared step: a channel that rounds to zero still spreads that far.
            let spread = HEADROOM * p999_abs(shared, k).max(shared_step);
            let step = 2f32.powf((spread / 127.0).log2().ceil());
            step.clamp(FINEST_STEP, shared_step.max(FINEST_STEP))
        })
        .collect()
}

/// The channels on both grids: `shared` computed on the shared grid, `own` on the
/// channels' own (`steps`).
pub fn grids(shared: &[Sample], own: &[Sample], shared_step: f32, steps: &[f32]) -> Vec<ChannelGrid> {
    steps
        .iter()
        .enumerate()
        .map(|(k, &own_step)| ChannelGrid {
            channel: k,
            p999_abs: p999_abs(shared, k),
            shared_step,
            shared_codes: codes(shared, k, shared_step),
            shared_codes_per_plate: codes_per_plate(shared, k, shared_step),
            own_step,
            own_codes: codes(own, k, own_step),
            own_codes_per_plate: codes_per_plate(own, k, own_step),
        })
        .collect()
}

/// A network trained on one kind of input: its kept validation epoch and its float class
/// maps scored on the held-out plates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trained {
    pub input: String,
    pub best: EpochReport,
    pub held_out_iou: [f64; crate::cnn::CLASSES],
    pub held_out_found: f64,
    pub held_out_false_fail: f64,
    pub held_out_plates: usize,
    pub wall_time_s: f64,
}

/// ThermoNet 2 trained by `cfg` on `(train, validation)` and scored on `held`.
pub fn train_and_score(
    input: &str,
    (train, validation, held): (&[Sample], &[Sample], &[Sample]),
    cfg: &TrainConfig,
    quant: tqc_shared::model::QuantParams,
    on_epoch: impl FnMut(&EpochReport),
) -> Result<Trained, TrainError> {
    type B = crate::pipeline::Backend;
    type Inner = crate::pipeline::Inner;
    let device = Default::default();
    let started = std::time::Instant::now();
    let (model, reports) = train_thermonet2::<B>(train, validation, cfg, quant, &device, on_epoch)?;
    let best = best_epoch(&reports).cloned().ok_or(TrainError::NoTrainingPlates)?;
    let maps: Vec<Vec<u8>> = held
        .iter()
        .map(|s| predict::<Inner, _>(&model, &[s], &device))
        .collect();
    let v = validate(held, &maps);
    Ok(Trained {
        input: input.into(),
        best,
        held_out_iou: v.iou,
        held_out_found: v.found,
        held_out_false_fail: v.false_fail,
        held_out_plates: held.len(),
        wall_time_s: started.elapsed().as_secs_f64(),
    })
}

/// The whole study, as `trainer input-scale` writes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputScaleStudy {
    pub data: String,
    pub channels: Vec<ChannelGrid>,
    pub config: TrainConfig,
    pub runs: Vec<Trained>,
}

/// The study on a dataset folder: the schedule of `trainer train` for `features`
/// (channels, amplitude window), both inputs of every split, then one training per input
/// (`on_epoch` tells each epoch, with the input's name); with `cfg.epochs` 0 the codes
/// only.
pub fn study(
    data: &std::path::Path,
    features: (usize, u16),
    held_split: tqc_data::Split,
    cfg: &TrainConfig,
    mut on_epoch: impl FnMut(&str, &EpochReport),
    mut on_stage: impl FnMut(&str),
) -> Result<InputScaleStudy, crate::pipeline::PipelineError> {
    use crate::pipeline::{FEATURE_QUANT, PipelineError, dataset_schedule, load_plates};
    use rayon::prelude::*;
    use tqc_data::index::{DatasetIndex, Split};
    let spec = dataset_schedule(data, features.0, features.1)?;
    let index = DatasetIndex::read(data)?;
    let dirs = [Split::Train, Split::Validation, held_split].map(|s| index.dirs(data, s));
    if dirs.iter().any(Vec::is_empty) {
        return Err(PipelineError::Model(format!(
            "{}: the study needs plates in the train, validation and {held_split} splits",
            data.display()
        )));
    }
    on_stage("features on the shared grid");
    let shared: Vec<Vec<Sample>> = dirs.iter().map(|d| load_plates(d, &spec)).collect::<Result<_, _>>()?;
    let steps = channel_steps(&shared[0], FEATURE_QUANT.scale);
    on_stage("features on per-channel grids");
    let own: Vec<Vec<Sample>> = dirs
        .iter()
        .map(|d| {
            d.par_iter()
                .map(|dir| {
                    crate::cnn::load_sample_rescaled(dir, &spec, &steps).map_err(|source| PipelineError::Plate {
                        dir: dir.clone(),
                        source,
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .collect::<Result<_, _>>()?;
    let channels = grids(&shared[0], &own[0], FEATURE_QUANT.scale, &steps);
    let mut runs = Vec::new();
    let inputs = if cfg.epochs == 0 {
        Vec::new()
    } else {
        vec![("shared scale", &shared), ("per-channel scale", &own)]
    };
    for (name, plates) in inputs {
        on_stage(name);
        let run = train_and_score(name, (&plates[0], &plates[1], &plates[2]), cfg, FEATURE_QUANT, |r| {
            on_epoch(name, r)
        })?;
        runs.push(run);
    }
    Ok(InputScaleStudy {
        data: data.display().to_string(),
        channels,
        config: *cfg,
        runs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plate(values: Vec<f32>, channels: usize) -> Sample {
        let px = values.len() / channels;
        Sample {
            channels,
            height: 1,
            width: px,
            features: values,
            labels: vec![0; px],
            image: Vec::new(),
            depth_mm: Vec::new(),
            grid: None,
        }
    }

    #[test]
    fn a_narrow_channel_gets_a_finer_grid_and_uses_more_codes() {
        let shared = 1.0 / 64.0;
        // Channel 0 spans ±1.5 (wide), channel 1 ±0.04 (a few shared codes).
        let n = 2000;
        let wide: Vec<f32> = (0..n).map(|i| 3.0 * (i as f32 / n as f32) - 1.5).collect();
        let narrow: Vec<f32> = (0..n).map(|i| 0.08 * (i as f32 / n as f32) - 0.04).collect();
        let on = |v: &[f32], step: f32| v.iter().map(|x| (x / step).round() * step).collect::<Vec<_>>();
        let s_shared = plate([on(&wide, shared), on(&narrow, shared)].concat(), 2);
        let steps = channel_steps(std::slice::from_ref(&s_shared), shared);
        assert_eq!(steps[0], shared, "a wide channel keeps the shared grid");
        // 2 × 0.04 / 127 → the power of two above it: 2⁻¹⁰.
        assert_eq!(steps[1], 1.0 / 1024.0);
        let s_own = plate([on(&wide, steps[0]), on(&narrow, steps[1])].concat(), 2);
        let g = grids(
            std::slice::from_ref(&s_shared),
            std::slice::from_ref(&s_own),
            shared,
            &steps,
        );
        assert_eq!(g[1].shared_codes, 7, "{g:?}"); // −3 … 3
        assert!(g[1].own_codes > 60, "{g:?}");
        assert_eq!(g[0].shared_codes, g[0].own_codes);
        // A channel that rounds to zero is still given one shared step of spread.
        let flat = plate(vec![0.0; 100], 1);
        // 2 × one shared step / 127 → 2⁻¹¹.
        assert_eq!(channel_steps(&[flat], shared)[0], 1.0 / 2048.0);
    }
}
