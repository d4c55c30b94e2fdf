//! Transfer learning from a shipped model: burn-import generated (at build time, from
//! `onnx_models/thermonet.onnx` and `onnx_models/thermonet2.onnx`) a burn network of each
//! shipped architecture; the weights are filled at run time from the ONNX file the user
//! names, and the usual training loop continues from there (ThermoNet 2 with its depth
//! head, so the depth keeps being trained). Batch norm is already folded into those
//! convolutions, so the fine-tuned network has none: the learning rate should stay small.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use crate::cnn::Segmenter;
use crate::export::fold::FloatNet;

/// The network burn-import generated from `onnx_models/thermonet.onnx`.
#[cfg(shipped_thermonet)]
#[allow(clippy::all, unused, missing_docs)]
pub mod thermonet {
    include!(concat!(env!("OUT_DIR"), "/shipped/thermonet.rs"));
}

/// The network burn-import generated from `onnx_models/thermonet2.onnx`.
#[cfg(shipped_thermonet2)]
#[allow(clippy::all, unused, missing_docs)]
pub mod thermonet2 {
    include!(concat!(env!("OUT_DIR"), "/shipped/thermonet2.rs"));
}

/// The four-layer ThermoNet as burn-import generated it.
#[cfg(shipped_thermonet)]
pub use thermonet::Model as ShippedNet;
/// ThermoNet 2 (encoder–decoder, logits and depth) as burn-import generated it.
#[cfg(shipped_thermonet2)]
pub use thermonet2::Model as ShippedNet2;

/// A network burn-import generated from a shipped ONNX file: built empty, then filled by
/// [`load`].
pub trait Generated<B: Backend>: Segmenter<B> {
    /// The shipped file it was generated from (for messages).
    const FILE: &'static str;
    fn empty(device: &B::Device) -> Self;
}

#[derive(Debug, thiserror::Error)]
pub enum FinetuneError {
    #[error(
        "the ONNX file has {found} weight tensors {found_shapes:?}, the network built from the shipped model expects {expected_shapes:?}"
    )]
    Architecture {
        found: usize,
        found_shapes: Vec<Vec<usize>>,
        expected_shapes: Vec<Vec<usize>>,
    },
}

/// Shapes of the float parameters, in visiting order (weight, bias per convolution).
struct Shapes(Vec<Vec<usize>>);

impl<B: Backend> ModuleVisitor<B> for Shapes {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.0.push(param.val().dims().to_vec());
    }
}

/// Replaces every float parameter, in order, with the next tensor of the list.
struct Fill {
    tensors: std::vec::IntoIter<(Vec<usize>, Vec<f32>)>,
}

impl<B: Backend> ModuleMapper<B> for Fill {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        match self.tensors.next() {
            // Shapes were checked against the module before mapping.
            Some((dims, values)) => param.map(|old| {
                let grad = old.is_require_grad();
                Tensor::<B, D>::from_data(TensorData::new(values, dims), &old.device()).set_require_grad(grad)
            }),
            None => param,
        }
    }
}

/// Float parameters, in order.
struct Values(Vec<(Vec<usize>, Vec<f32>)>);

impl<B: Backend> ModuleVisitor<B> for Values {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let t = param.val();
        self.0.push((t.dims().to_vec(), t.into_data().iter::<f32>().collect()));
    }
}

/// L1 of the 4-D (convolution) weights.
struct L1<B: Backend>(Option<Tensor<B, 1>>);

impl<B: Backend> ModuleVisitor<B> for L1<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if D == 4 {
            let s = param.val().abs().sum();
            self.0 = Some(match self.0.take() {
                Some(a) => a + s,
                None => s,
            });
        }
    }
}

/// The generated network `M` with the weights of `net` (an ONNX file read by
/// [`FloatNet::from_onnx`]).
pub fn load<B: Backend, M: Generated<B>>(net: &FloatNet, device: &B::Device) -> Result<M, FinetuneError> {
    let model = M::empty(device);
    let mut shapes = Shapes(Vec::new());
    model.visit(&mut shapes);
    let tensors: Vec<(Vec<usize>, Vec<f32>)> = net
        .convs()
        .flat_map(|l| {
            [
                (
                    vec![l.out_channels, l.in_channels, l.kernel, l.kernel],
                    l.weight.clone(),
                ),
                (vec![l.out_channels], l.bias.clone()),
            ]
        })
        .collect();
    let found: Vec<Vec<usize>> = tensors.iter().map(|t| t.0.clone()).collect();
    if found != shapes.0 {
        return Err(FinetuneError::Architecture {
            found: found.len(),
            found_shapes: found,
            expected_shapes: shapes.0,
        });
    }
    Ok(model.map(&mut Fill {
        tensors: tensors.into_iter(),
    }))
}

/// The float graph `template` (the ONNX file the generated network was loaded from) with
/// the convolution weights of the (fine-tuned) generated network, in graph order — the
/// order burn-import declares them in and [`load`] fills them.
pub fn to_float_net<B: Backend, M: Module<B>>(model: &M, template: &FloatNet) -> FloatNet {
    let mut v = Values(Vec::new());
    model.visit(&mut v);
    let mut net = template.clone();
    let mut tensors = v.0.into_iter();
    for l in &mut net.layers {
        if let crate::export::fold::FloatOp::Conv(c) = &mut l.op
            && let (Some((_, w)), Some((_, b))) = (tensors.next(), tensors.next())
        {
            c.weight = w;
            c.bias = b;
        }
    }
    net
}

fn l1_of<B: Backend, M: Module<B>>(model: &M) -> Option<Tensor<B, 1>> {
    let mut l1 = L1(None);
    model.visit(&mut l1);
    l1.0
}

// The generated forward returns the logits, their softmax and (ThermoNet 2) the depth.
#[cfg(shipped_thermonet)]
impl<B: Backend> Segmenter<B> for ShippedNet<B> {
    fn segment(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.forward(x).0
    }

    fn l1(&self) -> Option<Tensor<B, 1>> {
        l1_of(self)
    }
}

#[cfg(shipped_thermonet)]
impl<B: Backend> Generated<B> for ShippedNet<B> {
    const FILE: &'static str = "onnx_models/thermonet.onnx";
    fn empty(device: &B::Device) -> Self {
        Self::new(device)
    }
}

#[cfg(shipped_thermonet2)]
impl<B: Backend> Segmenter<B> for ShippedNet2<B> {
    fn segment(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.forward(x).0
    }

    fn segment_depth(&self, x: Tensor<B, 4>, _seed: Option<u64>) -> (Tensor<B, 4>, Option<Tensor<B, 4>>) {
        let (logits, _, depth) = self.forward(x);
        (logits, Some(depth))
    }

    fn l1(&self) -> Option<Tensor<B, 1>> {
        l1_of(self)
    }
}

#[cfg(shipped_thermonet2)]
impl<B: Backend> Generated<B> for ShippedNet2<B> {
    const FILE: &'static str = "onnx_models/thermonet2.onnx";
    fn empty(device: &B::Device) -> Self {
        Self::new(device)
    }
}
