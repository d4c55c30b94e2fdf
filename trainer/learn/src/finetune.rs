//! Transfer learning from a shipped model: burn-import generated (at build time, from
//! `onnx_models/thermonet.onnx`) a burn network of the shipped architecture; its weights
//! are filled at run time from the ONNX file the user names, and the usual training loop
//! continues from there. Batch norm is already folded into those convolutions, so the
//! fine-tuned network has none: the learning rate should stay small.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use crate::cnn::Segmenter;
use crate::export::fold::FloatNet;

/// The network burn-import generated from the shipped ONNX file.
#[cfg(shipped_model)]
#[allow(clippy::all, unused, missing_docs)]
pub mod shipped {
    include!(concat!(env!("OUT_DIR"), "/shipped/thermonet.rs"));
}

#[cfg(shipped_model)]
pub use shipped::Model as ShippedNet;

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

/// The generated network with the weights of `net` (an ONNX file read by
/// [`FloatNet::from_onnx`]).
#[cfg(shipped_model)]
pub fn load<B: Backend>(net: &FloatNet, device: &B::Device) -> Result<ShippedNet<B>, FinetuneError> {
    let model = ShippedNet::<B>::new(device);
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
#[cfg(shipped_model)]
pub fn to_float_net<B: Backend>(model: &ShippedNet<B>, template: &FloatNet) -> FloatNet {
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

#[cfg(shipped_model)]
impl<B: Backend> Segmenter<B> for ShippedNet<B> {
    fn segment(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.forward(x).0
    }

    fn l1(&self) -> Option<Tensor<B, 1>> {
        let mut l1 = L1(None);
        self.visit(&mut l1);
        l1.0
    }
}
