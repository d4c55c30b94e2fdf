//! On-target kernel check: replays the host's kernel test vectors
//! (`kernel-vectors.bin` in QEMU's working directory, written by `cargo xtask test`) on
//! the emulated core, through the DSP path and the portable path (and the DSP path over a
//! resident input), and exits with failure if any differs from the host's output — every
//! output of a graph, one after the other — by a single LSB.
#![no_std]
#![no_main]

use core::ptr::addr_of_mut;

use cortex_m_rt::entry;
use tqc_qemu::host::HostFile;
use tqc_qemu::{exit, println};
use tqc_shared::blob;
use tqc_shared::engine::{Arena, Engine};
use tqc_shared::kernels::mac::{Dsp, Mac, Portable};
use tqc_shared::planner::Mode;
use tqc_shared::vectors::{Case, OutputLayout};

const RECORD_BYTES: usize = 96 * 1024;
const OUTPUT_BYTES: usize = 32 * 1024;
static mut RECORD: [u8; RECORD_BYTES] = [0; RECORD_BYTES];
static mut OUTPUT: [i8; OUTPUT_BYTES] = [0; OUTPUT_BYTES];
static mut ARENA: Arena<{ 64 * 1024 }> = Arena::new();

/// Runs `case` with backend `M`; `Ok(None)` when the output matches, else the first
/// differing byte.
fn check<M: Mac>(
    case: &Case<'_>,
    mode: Mode,
    arena: &mut [u8],
    out: &mut [i8],
) -> Result<Option<(usize, i8, i8)>, &'static str> {
    let model = blob::decode(case.blob).map_err(|e| {
        println!("  {}: {}", case.name, e);
        "blob rejected"
    })?;
    let mut engine = Engine::new(&model, arena, mode).map_err(|e| {
        println!("  {}: {}", case.name, e);
        "engine refused the model"
    })?;
    let input: &[i8] = bytemuck_i8(case.input);
    let expected: &[i8] = bytemuck_i8(case.expected);
    if expected.len() > out.len() {
        return Err("output larger than the check buffer");
    }
    let layout = OutputLayout::of(&model);
    if layout.total() != expected.len() {
        return Err("expected output has the wrong length");
    }
    let out = &mut out[..expected.len()];
    out.fill(0);
    let mut overflow = false;
    engine
        .run_streaming_with::<M>(
            input,
            &mut |k, y, row| match layout.row(k, y).and_then(|r| out.get_mut(r)) {
                Some(dst) if dst.len() == row.len() => dst.copy_from_slice(row),
                _ => overflow = true,
            },
        )
        .map_err(|e| {
            println!("  {}: {}", case.name, e);
            "engine error"
        })?;
    if overflow || !engine.is_complete() {
        return Err("output rows missing or out of range");
    }
    Ok(out
        .iter()
        .zip(expected)
        .position(|(a, b)| a != b)
        .map(|i| (i, out[i], expected[i])))
}

fn bytemuck_i8(x: &[u8]) -> &[i8] {
    // SAFETY: u8 and i8 have the same size, alignment and validity.
    unsafe { core::slice::from_raw_parts(x.as_ptr() as *const i8, x.len()) }
}

#[entry]
fn main() -> ! {
    // SAFETY: single-threaded; these statics are only ever borrowed here.
    let (record, output, arena) = unsafe {
        (
            &mut *addr_of_mut!(RECORD),
            &mut *addr_of_mut!(OUTPUT),
            &mut *addr_of_mut!(ARENA),
        )
    };
    let Ok(mut file) = HostFile::open(c"kernel-vectors.bin") else {
        println!("kernel-check: cannot open kernel-vectors.bin in QEMU's working directory");
        exit(false)
    };
    let total = file.len().unwrap_or(0);
    let (mut at, mut passed, mut failed) = (0usize, 0u32, 0u32);
    while at < total {
        let mut len = [0u8; 4];
        if file.read_exact(&mut len).is_err() {
            println!("kernel-check: truncated record header at byte {}", at);
            exit(false)
        }
        let len = u32::from_le_bytes(len) as usize;
        if len > RECORD_BYTES || file.read_exact(&mut record[..len]).is_err() {
            println!("kernel-check: bad record of {} bytes at byte {}", len, at);
            exit(false)
        }
        at += 4 + len;
        let Ok(case) = Case::decode(&record[..len]) else {
            println!("kernel-check: undecodable case at byte {}", at);
            exit(false)
        };
        // Both MAC paths streaming row by row, and the DSP path over a resident input
        // (how the station runs a model on its feature image).
        for (backend, result) in [
            ("dsp", check::<Dsp>(&case, Mode::Streaming, arena.bytes(), output)),
            (
                "portable",
                check::<Portable>(&case, Mode::Streaming, arena.bytes(), output),
            ),
            (
                "dsp, resident input",
                check::<Dsp>(&case, Mode::ResidentInput, arena.bytes(), output),
            ),
        ] {
            match result {
                Ok(None) => passed += 1,
                Ok(Some((i, got, want))) => {
                    failed += 1;
                    println!(
                        "FAIL {} [{}]: byte {} is {}, host says {}",
                        case.name, backend, i, got, want
                    );
                }
                Err(why) => {
                    failed += 1;
                    println!("FAIL {} [{}]: {}", case.name, backend, why);
                }
            }
        }
        println!("case {}: {} output bytes checked", case.name, case.expected.len());
    }
    println!("kernel-check: {} passed, {} failed", passed, failed);
    exit(failed == 0 && passed > 0)
}
