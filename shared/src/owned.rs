//! Models with owned data (host tools only: needs `alloc`, behind the `std` feature), from
//! which a [`ModelDesc`] and a sealed blob are made — by the trainer's quantizer and by
//! the tests' model generators alike.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use crate::blob;
use crate::model::{InputSpec, Layer, ModelDesc, Op, QuantParams};
use crate::quant::Activation;

/// A layer with owned weights.
#[derive(Clone, Debug)]
pub struct OwnedLayer {
    pub op: Op,
    /// Tensors read (0 the input, `i + 1` the output of layer `i`).
    pub inputs: Vec<u8>,
    pub activation: Activation,
    pub output: QuantParams,
    pub weights: Vec<u8>,
    pub weight_scales: Vec<u8>,
    pub bias: Vec<u8>,
}

/// A model with owned data, from which a [`ModelDesc`] and a blob are made.
#[derive(Clone, Debug)]
pub struct OwnedModel {
    pub name: String,
    pub input: InputSpec,
    pub classes: Vec<String>,
    pub layers: Vec<OwnedLayer>,
    /// Output tensors, the class logits first.
    pub outputs: Vec<u8>,
}

impl OwnedModel {
    pub fn desc(&self) -> ModelDesc<'_> {
        ModelDesc {
            name: &self.name,
            input: self.input.clone(),
            classes: self.classes.iter().map(String::as_str).collect(),
            layers: self
                .layers
                .iter()
                .map(|l| Layer {
                    op: l.op,
                    inputs: l.inputs.iter().copied().collect(),
                    activation: l.activation,
                    output: l.output,
                    weights: &l.weights,
                    weight_scales: &l.weight_scales,
                    bias: &l.bias,
                })
                .collect(),
            outputs: self.outputs.iter().copied().collect(),
            arena_bytes: 0,
        }
    }

    /// The sealed, encoded blob.
    pub fn to_blob(&self) -> Result<Vec<u8>, blob::BlobError> {
        let mut desc = self.desc();
        blob::seal(&mut desc)?;
        let size = blob::HEADER_LEN
            + 1024
            + self
                .layers
                .iter()
                .map(|l| l.weights.len() + l.weight_scales.len() + l.bias.len() + 64)
                .sum::<usize>();
        let mut out = vec![0u8; size];
        let n = blob::encode(&desc, &mut out)?;
        out.truncate(n);
        Ok(out)
    }
}
