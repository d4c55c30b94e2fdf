//! One module per subcommand: its arguments (one struct, with the `--help` text) and what
//! it prints and draws. The work itself is in the library crates.

pub mod baseline;
pub mod bench;
pub mod crossval;
pub mod dataset;
pub mod depth;
pub mod evaluate;
pub mod infer;
pub mod input_scale;
pub mod inspect;
pub mod model_card;
pub mod pod;
pub mod simulate;
pub mod train;

use anyhow::Result;
use tqc_data::ReadOptions;
use tqc_learn::cnn::{Architecture, Augment, OptimizerKind, TrainConfig};
use tqc_learn::pipeline::Qat;

/// The feature schedule a fresh network is trained on (`train`, `input-scale`).
#[derive(clap::Args)]
pub struct FeatureArgs {
    /// Feature channels (log-spaced sample times).
    #[arg(long, default_value_t = 8)]
    pub channels: usize,
    /// Side (pixels, odd, 3..=81) of the window whose mean rise the amplitude channel
    /// is relative to — a few defect diameters, so the lamp's smooth non-uniformity
    /// cancels and spots stand out; 0 uses the image median instead.
    #[arg(long, default_value_t = 31)]
    pub amplitude_window: u16,
}

impl FeatureArgs {
    /// (channels, amplitude window), as the pipeline takes them.
    pub fn schedule(&self) -> (usize, u16) {
        (self.channels, self.amplitude_window)
    }
}

/// Options of a training run (`train` and `finetune`).
#[derive(clap::Args)]
pub struct RunArgs {
    /// Epochs (at most: early stopping may end sooner). For finetune, 0 goes straight to
    /// the quantization-aware fine-tuning (with --qat-epochs), or, with --qat-epochs 0,
    /// only calibrates the unchanged float network on DATA's training plates and exports
    /// it again (after a change of the calibration rule).
    #[arg(long, default_value_t = 40)]
    pub epochs: usize,
    /// Quantization-aware fine-tuning after the float epochs: this many more epochs with
    /// the forward pass rounded as the int8 engine rounds (weights per channel, every
    /// activation on its calibrated grid, concatenations and upsamplings on their shared
    /// grid; either architecture, both heads), early-stopped on the int8-simulated
    /// validation score; the blob keeps the activation ranges it trained with (0:
    /// post-training quantization only). Writes qat-metrics.csv.
    #[arg(long, default_value_t = 0)]
    pub qat_epochs: usize,
    /// Peak learning rate of the quantization-aware epochs (default: a tenth of the
    /// learning rate), cosine-decayed without warm-up.
    #[arg(long)]
    pub qat_learning_rate: Option<f64>,
    /// Peak learning rate (default: 3e-3 for train, 1e-3 for finetune).
    #[arg(long)]
    pub learning_rate: Option<f64>,
    #[arg(long, default_value_t = 2)]
    pub warmup_epochs: usize,
    #[arg(long, value_enum, default_value = "adamw")]
    pub optimizer: OptimizerKind,
    /// L2 weight decay (decoupled for AdamW).
    #[arg(long, default_value_t = 1e-4)]
    pub weight_decay: f32,
    /// L1 penalty on the convolution weights.
    #[arg(long, default_value_t = 0.0)]
    pub l1: f32,
    /// Dropout before the 1×1 head (train, and the quantization-aware epochs of either;
    /// the network finetune generates has none).
    #[arg(long, default_value_t = 0.1)]
    pub dropout: f64,
    /// Batch norm after each hidden convolution (folded at export). Off by default: its
    /// statistics are per plate (each plate of a step has its own pass) and part from the
    /// running ones.
    #[arg(long)]
    pub batch_norm: bool,
    /// Epochs without a better validation score before stopping (0: never stop early).
    #[arg(long, default_value_t = 10)]
    pub patience: usize,
    /// Train without augmentation (flips, gain, lamp tilt, noise).
    #[arg(long)]
    pub no_augment: bool,
    /// Plates per optimizer step, each on its own core: two plates run 1.5× faster per
    /// plate-epoch than one on two cores, but give half the optimizer steps per epoch (at
    /// the same rate, 80 epochs of two plates learned less than 80 of one: README,
    /// Training cost), so one is the default.
    #[arg(long, default_value_t = 1)]
    pub batch_size: usize,
    /// Loss weights of sound, subsurface, surface pixels.
    #[arg(long, value_delimiter = ',', default_value = "1,30,30")]
    pub class_weights: Vec<f32>,
    /// The network: `thermonet` (four full-resolution convolutions, classes),
    /// `thermonet2` (the encoder–decoder: a 63-pixel view, classes and depth),
    /// `thermonet2-refined` (with 3×3 refinements at 1/4 and 1/2 of the frame) or
    /// `thermonet2-sharp` (narrower, with a 3×3 class head at full resolution).
    #[arg(long, value_enum, default_value_t = Architecture::Thermonet)]
    pub architecture: Architecture,
    /// Weight of the depth loss (pseudo-Huber, mm, over the in-depth pixels) against the
    /// class loss; only a network with a depth head (thermonet2) uses it.
    #[arg(long, default_value_t = 0.2)]
    pub depth_weight: f32,
    /// Logit margin a pixel's best defect class needs over sound to be called a defect,
    /// folded into the exported class head's sound bias (the station's argmax then
    /// applies it): fewer false calls for some detection — `trainer pod` shows the
    /// trade (its CNN threshold is this margin). Folded after any quantization-aware
    /// epochs, which train the plain argmax. 0: the plain argmax.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub decision_margin: f32,
}

impl RunArgs {
    pub fn qat(&self, cfg: &TrainConfig) -> Option<Qat> {
        (self.qat_epochs > 0).then(|| Qat {
            epochs: self.qat_epochs,
            learning_rate: self.qat_learning_rate.unwrap_or(cfg.learning_rate / 10.0),
        })
    }

    pub fn config(&self, default_rate: f64, width: usize, seed: u64) -> Result<TrainConfig> {
        let class_weights: [f32; 3] = self
            .class_weights
            .clone()
            .try_into()
            .map_err(|v: Vec<f32>| anyhow::anyhow!("--class-weights takes 3 values, got {}", v.len()))?;
        Ok(TrainConfig {
            epochs: self.epochs,
            learning_rate: self.learning_rate.unwrap_or(default_rate),
            warmup_epochs: self.warmup_epochs,
            optimizer: self.optimizer,
            weight_decay: self.weight_decay,
            l1: self.l1,
            dropout: self.dropout,
            batch_norm: self.batch_norm,
            width,
            seed,
            class_weights,
            patience: (self.patience > 0).then_some(self.patience),
            augment: if self.no_augment {
                Augment::NONE
            } else {
                Augment::DEFAULT
            },
            batch_size: self.batch_size,
            architecture: self.architecture,
            depth_weight: self.depth_weight,
        })
    }
}

/// How to read a recording that has no times.npy, or holds raw counts.
#[derive(clap::Args)]
pub struct ReadArgs {
    /// Frame rate, when the recording has no times.npy.
    #[arg(long)]
    pub frame_rate: Option<f64>,
    /// Frames before the heating starts (with --frame-rate).
    #[arg(long, default_value_t = 0)]
    pub preheat_frames: usize,
    /// Raw counts to kelvin: kelvin = scale · counts + offset (a Lepton in TLinear: 0.01).
    #[arg(long)]
    pub counts_scale: Option<f64>,
    #[arg(long, default_value_t = 0.0)]
    pub counts_offset: f64,
}

impl ReadArgs {
    pub fn options(&self) -> ReadOptions {
        ReadOptions {
            frame_rate_hz: self.frame_rate,
            preheat_frames: self.preheat_frames,
            counts_to_kelvin: self.counts_scale.map(|s| (s, self.counts_offset)),
        }
    }
}
