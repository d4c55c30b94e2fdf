//! Features of a recording through the shared, device-identical extractor: frames are
//! converted to Lepton centikelvin and fed in time order exactly as the device sees them.

use tqc_shared::features::{FeatureError, FeatureExtractor, FeatureSpec, kelvin_to_centikelvin};
use tqc_shared::model::QuantParams;

use crate::sequence::Sequence;

/// The int8 feature image (HWC) of `seq`, and the count of saturated pixel readings.
pub fn feature_image(seq: &Sequence, spec: &FeatureSpec, quant: QuantParams) -> Result<(Vec<i8>, u32), FeatureError> {
    let px = seq.pixels();
    let (mut cold, mut window, mut reference) = (vec![0u32; px], vec![0i32; px], vec![0u16; px]);
    let mut image = vec![0i8; px * spec.channels()];
    let mut fx = FeatureExtractor::new(spec, quant, &mut cold, &mut window, &mut reference, &mut image)?;
    let mut frame = vec![0u16; px];
    for k in 0..seq.frames {
        for (d, &v) in frame.iter_mut().zip(seq.frame(k)) {
            *d = kelvin_to_centikelvin(v);
        }
        fx.push_frame((seq.times[k] * 1000.0).round() as i64, &frame)?;
        if fx.is_complete() {
            break;
        }
    }
    fx.finish()?;
    let saturated = fx.saturated;
    Ok((image, saturated))
}
