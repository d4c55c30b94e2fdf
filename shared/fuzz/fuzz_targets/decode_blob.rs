//! Fuzzes the model-blob decoder: any bytes must decode to a typed error or to a model
//! that then runs to completion on the engine, never a panic or an out-of-bounds access;
//! streamed and with the input resident, a graph gives the same bytes for every output.
//! Seed corpus: the payloads of the kernel-check vectors (graphs included).
//! Run: `cargo +nightly fuzz run decode_blob` from `shared/` (see README).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tqc_shared::blob;
use tqc_shared::engine::Engine;
use tqc_shared::planner::Mode;

fuzz_target!(|data: &[u8]| {
    // Raw bytes, and the same bytes behind a valid header so the fuzzer reaches the
    // structural validation past the CRC.
    let mut sealed = blob::header_for(data).to_vec();
    sealed.extend_from_slice(data);
    for bytes in [data, sealed.as_slice()] {
        let Ok(model) = blob::decode(bytes) else { continue };
        // Keep runs small: the fuzzer should explore the decoder, not big convolutions.
        if model.input_shape().len() > 1 << 16 || model.desc.arena_bytes > 1 << 20 {
            continue;
        }
        let run = |mode: Mode| {
            let mut arena = vec![0u64; model.desc.arena_bytes as usize / 8 + 1];
            let bytes: &mut [u8] = unsafe {
                // SAFETY: a u64 buffer viewed as its bytes (8-aligned, initialised).
                core::slice::from_raw_parts_mut(arena.as_mut_ptr() as *mut u8, arena.len() * 8)
            };
            let mut engine = Engine::new(&model, bytes, mode).expect("a decoded model fits its own arena");
            let input: Vec<i8> = (0..model.input_shape().len()).map(|i| (i * 37) as i8).collect();
            let mut out = Vec::new();
            engine
                .run_streaming(&input, &mut |k, y, row| out.push((k, y, row.to_vec())))
                .expect("a decoded model runs");
            assert!(engine.is_complete());
            out
        };
        assert_eq!(run(Mode::Streaming), run(Mode::ResidentInput));
    }
});
