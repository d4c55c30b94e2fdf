//! The network: ThermoNet, the trait the training loop trains, and its weights on disk
//! with the configuration beside them.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, PaddingConfig2d};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData, activation};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Classes of the per-pixel map.
pub const CLASSES: usize = tqc_data::Class::COUNT;

#[derive(Module, Debug)]
pub struct ThermoNet<B: Backend> {
    pub(crate) conv1: Conv2d<B>,
    pub(crate) bn1: Option<BatchNorm<B>>,
    pub(crate) conv2: Conv2d<B>,
    pub(crate) bn2: Option<BatchNorm<B>>,
    pub(crate) conv3: Conv2d<B>,
    pub(crate) bn3: Option<BatchNorm<B>>,
    pub(crate) dropout: Dropout,
    pub(crate) head: Conv2d<B>,
}

impl<B: Backend> ThermoNet<B> {
    /// `batch_norm` adds a batch norm after each hidden convolution (folded at export).
    pub fn new(channels: usize, width: usize, dropout: f64, batch_norm: bool, device: &B::Device) -> Self {
        let bn = || batch_norm.then(|| BatchNormConfig::new(width).init(device));
        let conv = |i: usize, o: usize, k: usize| {
            Conv2dConfig::new([i, o], [k, k])
                .with_padding(PaddingConfig2d::Same)
                .init(device)
        };
        ThermoNet {
            conv1: conv(channels, width, 3),
            bn1: bn(),
            conv2: conv(width, width, 3),
            bn2: bn(),
            conv3: conv(width, width, 3),
            bn3: bn(),
            dropout: DropoutConfig::new(dropout).init(),
            head: conv(width, CLASSES, 1),
        }
    }

    /// `[batch, K, H, W]` features to `[batch, 3, H, W]` logits (no dropout).
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.forward_seeded(x, None)
    }

    /// The forward pass of training: dropout before the head, its mask drawn from `seed`
    /// when the backend records gradients (`None`: no dropout).
    pub fn forward_seeded(&self, x: Tensor<B, 4>, seed: Option<u64>) -> Tensor<B, 4> {
        let norm = |bn: &Option<BatchNorm<B>>, x: Tensor<B, 4>| match bn {
            Some(bn) => bn.forward(x),
            None => x,
        };
        let conv = |c: &Conv2d<B>, x| conv_same(x, c.weight.val(), c.bias.as_ref().map(|b| b.val()));
        let x = activation::relu(norm(&self.bn1, conv(&self.conv1, x)));
        let x = activation::relu(norm(&self.bn2, conv(&self.conv2, x)));
        let x = activation::relu(norm(&self.bn3, conv(&self.conv3, x)));
        conv(&self.head, self.drop(x, seed))
    }

    /// Dropout with a mask of its own seeded stream (see [`drop_seeded`]).
    pub fn drop(&self, x: Tensor<B, 4>, seed: Option<u64>) -> Tensor<B, 4> {
        drop_seeded(x, self.dropout.prob, seed)
    }

    /// The trained layers in order, for folding and export: the three 3×3 convolutions
    /// with their batch norms, then the head.
    pub fn layers(&self) -> ([HiddenLayer<'_, B>; 3], &Conv2d<B>) {
        (
            [
                (&self.conv1, self.bn1.as_ref()),
                (&self.conv2, self.bn2.as_ref()),
                (&self.conv3, self.bn3.as_ref()),
            ],
            &self.head,
        )
    }
}

/// Dropout with a mask of its own seeded stream rather than the backend's generator:
/// the plates of a step run on several threads, and a shared generator would hand them
/// masks in whatever order the threads reach it, so a run would not repeat. Only when
/// the backend records gradients and `seed` is given.
pub fn drop_seeded<B: Backend>(x: Tensor<B, 4>, prob: f64, seed: Option<u64>) -> Tensor<B, 4> {
    let Some(seed) = seed.filter(|_| prob > 0.0 && B::ad_enabled(&x.device())) else {
        return x;
    };
    let keep = 1.0 - prob;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mask: Vec<f32> = (0..x.shape().num_elements())
        .map(|_| {
            if rng.random::<f64>() < keep {
                (1.0 / keep) as f32
            } else {
                0.0
            }
        })
        .collect();
    let mask = Tensor::<B, 4>::from_data(TensorData::new(mask, x.dims()), &x.device());
    x * mask
}

/// A stride-1 convolution with "same" zero padding (odd square kernel, one group) as one
/// matrix product over the k² shifted copies of the input (im2col): `x` `[n, c, h, w]`,
/// `weight` `[o, c, k, k]`, `bias` `[o]`, result `[n, o, h, w]`.
///
/// Why not burn's `conv2d`: burn derives the weight gradient as a convolution of the
/// input by the output gradient, whose kernel is a whole 160×120 map; burn-flex runs that
/// (one input channel per plate) on its direct small-channel loop, which took most of a
/// training step. Here every product of the forward and backward pass is a matrix
/// multiplication on the backend's blocked SIMD kernels, and every copy is of a
/// two-dimensional view (rows of maps), which burn-flex copies tiled: each map is
/// flattened and padded by `p·w + p` zeros at both ends, so a shift by (dy, dx) is a
/// contiguous window of it; the pixels where a horizontal shift wraps into the next row
/// are masked to zero.
pub fn conv_same<B: Backend>(x: Tensor<B, 4>, weight: Tensor<B, 4>, bias: Option<Tensor<B, 1>>) -> Tensor<B, 4> {
    conv_same_at(x, weight, bias, None)
}

/// [`conv_same`] computed only at the output pixels `pick` (flat `y·w + x` indices of an
/// `oh`×`ow` grid, row-major), when given: a strided convolution.
pub(crate) fn conv_same_at<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    pick: Option<(Tensor<B, 1, burn::tensor::Int>, usize, usize)>,
) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    let [o, _, k, _] = weight.dims();
    let hw = h * w;
    let columns = if k == 1 {
        x.reshape([n, c, hw])
    } else {
        let p = k / 2;
        let device = x.device();
        let flat = x.reshape([n * c, hw]).pad(
            [(0, 0), (p * w + p, p * w + p)],
            burn::tensor::ops::PadMode::Constant(0.0),
        );
        // Per horizontal offset, 1 where the shifted pixel is still in the row.
        let masks: Vec<Option<Tensor<B, 2>>> = (0..k)
            .map(|kx| {
                (kx != p).then(|| {
                    let mask: Vec<f32> = (0..hw)
                        .map(|j| {
                            let sx = (j % w + kx) as isize - p as isize;
                            f32::from(u8::from(sx >= 0 && sx < w as isize))
                        })
                        .collect();
                    Tensor::<B, 2>::from_data(burn::tensor::TensorData::new(mask, [1, hw]), &device)
                })
            })
            .collect();
        let shifts: Vec<Tensor<B, 2>> = (0..k * k)
            .map(|i| {
                let (ky, kx) = (i / k, i % k);
                let start = ky * w + kx;
                let window = flat.clone().slice([0..n * c, start..start + hw]);
                match &masks[kx] {
                    Some(m) => window * m.clone(),
                    None => window,
                }
            })
            .collect();
        // [n·c, k², h·w]: channel-major like the OIHW weight rows.
        Tensor::stack::<3>(shifts, 1).reshape([n, c * k * k, hw])
    };
    let (columns, (h, w)) = match pick {
        Some((pick, oh, ow)) => (columns.select(2, pick), (oh, ow)),
        None => (columns, (h, w)),
    };
    let rows = weight.reshape([1, o, c * k * k]);
    let rows = if n == 1 { rows } else { rows.expand([n, o, c * k * k]) };
    let y = rows.matmul(columns).reshape([n, o, h, w]);
    match bias {
        Some(b) => y + b.reshape([1, o, 1, 1]),
        None => y,
    }
}

/// A hidden convolution and its batch norm, if any.
pub type HiddenLayer<'a, B> = (&'a Conv2d<B>, Option<&'a BatchNorm<B>>);

/// A per-pixel classifier the training loop can train: the ThermoNet, or a network
/// burn-import generated from a shipped ONNX file (fine-tuning).
pub trait Segmenter<B: Backend>: Module<B> + Clone {
    /// `[batch, K, H, W]` features to `[batch, classes, H, W]` logits.
    fn segment(&self, x: Tensor<B, 4>) -> Tensor<B, 4>;
    /// The same in a training step: random layers (dropout) draw from `seed`.
    fn segment_train(&self, x: Tensor<B, 4>, seed: u64) -> Tensor<B, 4> {
        let _ = seed;
        self.segment(x)
    }
    /// The logits and, for a network with a depth head, the depth `[batch, 1, H, W]` in
    /// mm; random layers draw from `seed` when given.
    fn segment_depth(&self, x: Tensor<B, 4>, seed: Option<u64>) -> (Tensor<B, 4>, Option<Tensor<B, 4>>) {
        let logits = match seed {
            Some(seed) => self.segment_train(x, seed),
            None => self.segment(x),
        };
        (logits, None)
    }
    /// Sum of |w| over the convolution weights (the L1 penalty), if any.
    fn l1(&self) -> Option<Tensor<B, 1>>;
}

impl<B: Backend> Segmenter<B> for ThermoNet<B> {
    fn segment(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.forward(x)
    }

    fn segment_train(&self, x: Tensor<B, 4>, seed: u64) -> Tensor<B, 4> {
        self.forward_seeded(x, Some(seed))
    }

    fn l1(&self) -> Option<Tensor<B, 1>> {
        let (convs, head) = self.layers();
        convs
            .iter()
            .map(|(c, _)| c.weight.val())
            .chain(std::iter::once(head.weight.val()))
            .map(|w| w.abs().sum())
            .reduce(|a, b| a + b)
    }
}

/// Recorder of trained weights (full precision, named MessagePack).
pub type Recorder = burn::record::NamedMpkFileRecorder<burn::record::FullPrecisionSettings>;

/// The shape of a [`ThermoNet`], saved as `<weights>.json` beside the weights so that
/// loading needs nothing else.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ThermoNetConfig {
    /// Feature channels of the input.
    pub channels: usize,
    /// Feature maps per hidden layer.
    pub width: usize,
    /// Batch norm after each hidden convolution.
    pub batch_norm: bool,
}

impl ThermoNetConfig {
    /// A fresh network of this shape, with `dropout` before the head in training.
    pub fn init<B: Backend>(&self, dropout: f64, device: &B::Device) -> ThermoNet<B> {
        ThermoNet::new(self.channels, self.width, dropout, self.batch_norm, device)
    }
}

/// Why saved weights cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("weights {path}")]
    Record {
        path: std::path::PathBuf,
        #[source]
        source: burn::record::RecorderError,
    },
    #[error("cannot read the network configuration {path}")]
    ConfigRead {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a configuration of this network: {reason}")]
    ConfigParse { path: std::path::PathBuf, reason: String },
    #[error(transparent)]
    ConfigWrite(#[from] tqc_data::io::WriteError),
}

/// Where the configuration of weights saved at `path` lives.
pub fn config_path(path: &std::path::Path) -> std::path::PathBuf {
    path.with_extension("json")
}

/// Writes the weights to `path` (`.mpk` is added) and the configuration beside them
/// (`.json`).
pub fn save<B: Backend>(model: &ThermoNet<B>, path: &std::path::Path) -> Result<(), WeightsError> {
    let config = ThermoNetConfig {
        channels: model.conv1.weight.dims()[1],
        width: model.conv1.weight.dims()[0],
        batch_norm: model.bn1.is_some(),
    };
    save_with(model, &config, path)
}

/// Reads weights written by [`save`], shaped by the configuration beside them.
pub fn load<B: Backend>(path: &std::path::Path, device: &B::Device) -> Result<ThermoNet<B>, WeightsError> {
    let config: ThermoNetConfig = read_config(path)?;
    load_into(config.init(0.0, device), path, device)
}

/// [`save`] for a [`ThermoNet2`](super::ThermoNet2).
pub fn save_thermonet2<B: Backend>(model: &super::ThermoNet2<B>, path: &std::path::Path) -> Result<(), WeightsError> {
    save_with(model, &model.config(), path)
}

/// [`load`] for a [`ThermoNet2`](super::ThermoNet2).
pub fn load_thermonet2<B: Backend>(
    path: &std::path::Path,
    device: &B::Device,
) -> Result<super::ThermoNet2<B>, WeightsError> {
    let config: super::ThermoNet2Config = read_config(path)?;
    load_into(config.init(0.0, device), path, device)
}

fn save_with<B: Backend, M: Module<B>, C: serde::Serialize>(
    model: &M,
    config: &C,
    path: &std::path::Path,
) -> Result<(), WeightsError> {
    tqc_data::io::write_json(&config_path(path), config)?;
    model
        .clone()
        .save_file(path.to_path_buf(), &Recorder::new())
        .map_err(|source| WeightsError::Record {
            path: path.to_path_buf(),
            source,
        })
}

fn read_config<C: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<C, WeightsError> {
    let cpath = config_path(path);
    let text = std::fs::read_to_string(&cpath).map_err(|source| WeightsError::ConfigRead {
        path: cpath.clone(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| WeightsError::ConfigParse {
        path: cpath,
        reason: e.to_string(),
    })
}

fn load_into<B: Backend, M: Module<B>>(
    model: M,
    path: &std::path::Path,
    device: &B::Device,
) -> Result<M, WeightsError> {
    model
        .load_file(path.to_path_buf(), &Recorder::new(), device)
        .map_err(|source| WeightsError::Record {
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::tensor::{Distribution, Tensor};

    type B = NdArray<f32>;

    /// `conv_same` (and its strided form) is burn's `conv2d` padded as TFLite pads "same"
    /// (stride 2: the odd padding pixel after): outputs, and the gradients of input,
    /// weight and bias, for 3×3, 5×5 and 1×1 kernels, one and several plates, on odd and
    /// even map sizes (edges are where a padding mistake would show).
    #[test]
    fn matrix_convolution_equals_burns_convolution_and_its_gradients() {
        use burn::backend::Autodiff;
        use burn::tensor::module::conv2d;
        use burn::tensor::ops::ConvOptions;
        type A = Autodiff<B>;
        let device = Default::default();
        let _turn = crate::cnn::seeded_turn();
        <A as Backend>::seed(&device, 5);
        for (n, c, o, k, s, h, w) in [
            (1, 8, 12, 3, 1usize, 7usize, 9usize),
            (3, 5, 4, 3, 1, 6, 5),
            (2, 12, 3, 1, 1, 4, 7),
            (1, 1, 2, 5, 1, 6, 6),
            (1, 3, 4, 3, 2, 8, 10),
            (2, 2, 3, 3, 2, 7, 9),
            (1, 4, 2, 3, 2, 6, 5),
        ] {
            let (oh, ow) = (h.div_ceil(s), w.div_ceil(s));
            let x0 = Tensor::<A, 4>::random([n, c, h, w], Distribution::Normal(0.0, 1.0), &device);
            let w0 = Tensor::<A, 4>::random([o, c, k, k], Distribution::Normal(0.0, 1.0), &device);
            let b0 = Tensor::<A, 1>::random([o], Distribution::Normal(0.0, 1.0), &device);
            // A weighting of the outputs, so the gradients are not all-ones sums.
            let g = Tensor::<A, 4>::random([n, o, oh, ow], Distribution::Normal(0.0, 1.0), &device);
            let run = |mine: bool| {
                let (x, wt, b) = (
                    x0.clone().require_grad(),
                    w0.clone().require_grad(),
                    b0.clone().require_grad(),
                );
                let y = if mine {
                    super::super::strided_conv_same(x.clone(), wt.clone(), Some(b.clone()), s)
                } else {
                    let (pt, pb) = crate::export::fold::same_padding(h, k, s);
                    let (pl, pr) = crate::export::fold::same_padding(w, k, s);
                    let padded = x.clone().pad(
                        [(0, 0), (0, 0), (pt, pb), (pl, pr)],
                        burn::tensor::ops::PadMode::Constant(0.0),
                    );
                    conv2d(
                        padded,
                        wt.clone(),
                        Some(b.clone()),
                        ConvOptions::new([s, s], [0, 0], [1, 1], 1),
                    )
                };
                assert_eq!(y.dims(), [n, o, oh, ow]);
                let grads = (y.clone() * g.clone()).sum().backward();
                let v = |t: Tensor<B, 4>| t.into_data().iter::<f32>().collect::<Vec<_>>();
                (
                    v(y.inner()),
                    v(x.grad(&grads).unwrap()),
                    v(wt.grad(&grads).unwrap()),
                    b.grad(&grads).unwrap().into_data().iter::<f32>().collect::<Vec<_>>(),
                )
            };
            let (mine, burn) = (run(true), run(false));
            for (what, a, b) in [
                ("output", &mine.0, &burn.0),
                ("input gradient", &mine.1, &burn.1),
                ("weight gradient", &mine.2, &burn.2),
                ("bias gradient", &mine.3, &burn.3),
            ] {
                assert_eq!(a.len(), b.len(), "{what}");
                for (i, (p, q)) in a.iter().zip(b).enumerate() {
                    assert!(
                        (p - q).abs() <= 1e-4 * (1.0 + q.abs()),
                        "{what} [{i}] of n{n} c{c} o{o} k{k} s{s} {h}×{w}: {p} vs {q}"
                    );
                }
            }
        }
    }

    #[test]
    fn weights_load_with_the_shape_saved_beside_them() {
        let _turn = crate::cnn::seeded_turn();
        let dir = tempfile::tempdir().unwrap();
        let device = Default::default();
        let net = ThermoNetConfig {
            channels: 5,
            width: 7,
            batch_norm: true,
        }
        .init::<B>(0.0, &device);
        let path = dir.path().join("model");
        // Parameters are initialized lazily, at first use: use them before saving.
        let x = Tensor::<B, 4>::random([1, 5, 6, 4], Distribution::Normal(0.0, 1.0), &device);
        let before = net.forward(x.clone()).into_data().to_vec::<f32>().unwrap();
        save(&net, &path).unwrap();
        let config: ThermoNetConfig =
            serde_json::from_str(&std::fs::read_to_string(config_path(&path)).unwrap()).unwrap();
        assert_eq!((config.channels, config.width, config.batch_norm), (5, 7, true));
        // No shape arguments: the configuration says what to build.
        let back = load::<B>(&path, &device).unwrap();
        assert_eq!(
            net.conv1.weight.val().into_data().to_vec::<f32>().unwrap(),
            back.conv1.weight.val().into_data().to_vec::<f32>().unwrap(),
            "conv1"
        );
        assert_eq!(
            net.head.weight.val().into_data().to_vec::<f32>().unwrap(),
            back.head.weight.val().into_data().to_vec::<f32>().unwrap(),
            "head"
        );
        assert_eq!(before, back.forward(x).into_data().to_vec::<f32>().unwrap());
        // Without its configuration the weights are refused, the file named.
        std::fs::remove_file(config_path(&path)).unwrap();
        let e = load::<B>(&path, &device).unwrap_err().to_string();
        assert!(e.contains("model.json"), "{e}");
    }
}
