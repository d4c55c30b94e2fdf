//! K-fold cross-validation of a training recipe: with a few dozen plates, one validation
//! split of seven says little (the shipped run's surface IoU was 0.70 on its validation
//! plates and 0.01 on its test plates). Every plate is validated exactly once, by a model
//! that never saw it; the spread over folds says how much a single split can be trusted.

use burn::tensor::backend::AutodiffBackend;

use crate::cnn::{CLASSES, EpochReport, Sample, TrainConfig, TrainError, best_epoch, train};

/// The best epoch of one fold.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FoldResult {
    pub fold: usize,
    /// Indices (into the pooled plates) of the plates this fold validated on.
    pub validation: Vec<usize>,
    pub epochs_run: usize,
    pub best: EpochReport,
}

/// Mean and (population) standard deviation over folds of each class's best-epoch IoU.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    pub mean_iou: [f64; CLASSES],
    pub std_iou: [f64; CLASSES],
}

/// `crossval.json`: the folds of a cross-validation and what they say together. Fields in
/// alphabetical order, as the file lists them.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CrossvalFile {
    pub config: crate::cnn::TrainConfig,
    /// The dataset folder.
    pub data: String,
    pub features: tqc_shared::features::FeatureSpec,
    pub folds: Vec<FoldResult>,
    pub summary: Summary,
}

/// Plate `i` goes to fold `i % folds`: deterministic, and each fold gets a share of every
/// part of the pooled list (the dataset's train and validation plates in index order).
pub fn fold_of(plate: usize, folds: usize) -> usize {
    plate % folds
}

/// Trains `folds` models on the pooled plates, each validated on its own fold, with the
/// same configuration (and seed) as a single run.
pub fn cross_validate<B: AutodiffBackend>(
    plates: &[Sample],
    folds: usize,
    cfg: &TrainConfig,
    quant: tqc_shared::model::QuantParams,
    device: &B::Device,
    mut on_epoch: impl FnMut(usize, &EpochReport),
) -> Result<Vec<FoldResult>, TrainError> {
    if folds < 2 {
        return Err(TrainError::Config("cross-validation needs at least 2 folds"));
    }
    if folds > plates.len() {
        return Err(TrainError::Config(
            "more folds than plates: a fold would validate on nothing",
        ));
    }
    let mut results = Vec::with_capacity(folds);
    for fold in 0..folds {
        let (mut fit, mut check, mut validation) = (Vec::new(), Vec::new(), Vec::new());
        for (i, plate) in plates.iter().enumerate() {
            if fold_of(i, folds) == fold {
                check.push(plate.clone());
                validation.push(i);
            } else {
                fit.push(plate.clone());
            }
        }
        let (_, reports) = train::<B>(&fit, &check, cfg, quant, device, |r| on_epoch(fold, r))?;
        let best = best_epoch(&reports)
            .cloned()
            .ok_or(TrainError::Config("no epoch ran"))?;
        results.push(FoldResult {
            fold,
            validation,
            epochs_run: reports.len(),
            best,
        });
    }
    Ok(results)
}

pub fn summarize(results: &[FoldResult]) -> Summary {
    let n = results.len().max(1) as f64;
    let mut mean_iou = [0.0; CLASSES];
    let mut std_iou = [0.0; CLASSES];
    for c in 0..CLASSES {
        mean_iou[c] = results.iter().map(|r| r.best.iou[c]).sum::<f64>() / n;
        let var = results
            .iter()
            .map(|r| (r.best.iou[c] - mean_iou[c]).powi(2))
            .sum::<f64>()
            / n;
        std_iou[c] = var.sqrt();
    }
    Summary { mean_iou, std_iou }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(iou: [f64; CLASSES]) -> FoldResult {
        FoldResult {
            fold: 0,
            validation: vec![],
            epochs_run: 1,
            best: EpochReport {
                epoch: 1,
                learning_rate: 0.0,
                train_loss: 0.0,
                validation_loss: 0.0,
                iou,
                found: 0.0,
                false_fail: 0.0,
                depth_mae_mm: None,
                score: 0.0,
            },
        }
    }

    #[test]
    fn summary_is_the_mean_and_spread_over_folds() {
        let s = summarize(&[result([1.0, 0.2, 0.0]), result([0.5, 0.4, 0.0])]);
        for (got, want) in s.mean_iou.iter().zip([0.75, 0.3, 0.0]) {
            assert!((got - want).abs() < 1e-12, "mean {:?}", s.mean_iou);
        }
        assert!((s.std_iou[0] - 0.25).abs() < 1e-12 && (s.std_iou[1] - 0.1).abs() < 1e-12);
        assert_eq!(s.std_iou[2], 0.0);
    }

    #[test]
    fn every_plate_lands_in_exactly_one_fold_and_folds_are_balanced() {
        for folds in 2..7 {
            let mut sizes = vec![0; folds];
            for plate in 0..41 {
                sizes[fold_of(plate, folds)] += 1;
            }
            assert_eq!(sizes.iter().sum::<usize>(), 41);
            let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            assert!(hi - lo <= 1, "{folds} folds: sizes {sizes:?}");
        }
    }
}
