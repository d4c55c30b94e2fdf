//! Features of a recording through the shared, device-identical extractor: frames are
//! converted to Lepton centikelvin and fed in time order exactly as the device sees them.

use tqc_shared::features::{FeatureError, FeatureExtractor, FeatureSpec, kelvin_to_centikelvin, seconds_to_ms};
use tqc_shared::inspection::Acquisition;
use tqc_shared::model::QuantParams;

use tqc_data::sequence::Sequence;

/// The input quantization of the features the trainer's models take: deviations from the
/// plate median −2..2 (ratios 0..3) in 1/64 steps.
pub const FEATURE_QUANT: QuantParams = QuantParams {
    scale: 1.0 / 64.0,
    zero_point: 0,
};

/// The int8 feature image (HWC) of `seq`, and what the acquisition looked like (frames
/// used, saturated readings, heating rise) for the device's RETEST limits.
pub fn feature_image(
    seq: &Sequence,
    spec: &FeatureSpec,
    quant: QuantParams,
) -> Result<(Vec<i8>, Acquisition), FeatureError> {
    let px = seq.pixels();
    let (mut cold, mut window, mut reference) = (vec![0u32; px], vec![0i32; px], vec![0u16; px]);
    let mut image = vec![0i8; px * spec.channels()];
    let mut fx = FeatureExtractor::new(
        spec,
        quant,
        seq.width,
        &mut cold,
        &mut window,
        &mut reference,
        &mut image,
    )?;
    let mut frame = vec![0u16; px];
    for k in 0..seq.frames {
        for (d, &v) in frame.iter_mut().zip(seq.frame(k)) {
            *d = kelvin_to_centikelvin(v);
        }
        fx.push_frame(seconds_to_ms(seq.times[k]), &frame)?;
        if fx.is_complete() {
            break;
        }
    }
    fx.finish()?;
    let acquisition = Acquisition::of(&fx, px);
    Ok((image, acquisition))
}

/// The int8 HWC image `image` of `channels` channels as float CHW (the layout burn and
/// ONNX take), dequantized with `quant`.
pub fn dequantize_chw(image: &[i8], channels: usize, quant: QuantParams) -> Vec<f32> {
    let px = image.len() / channels.max(1);
    let mut chw = vec![0.0f32; channels * px];
    for p in 0..px {
        for k in 0..channels {
            chw[k * px + p] = quant.scale * (image[p * channels + k] as i32 - quant.zero_point as i32) as f32;
        }
    }
    chw
}
