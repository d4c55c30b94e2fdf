//! Kernel benchmark on the emulated core: runs the reference networks (`bench-0.tqm`,
//! `bench-1.tqm`, … in QEMU's working directory, written by `cargo xtask bench`) on a
//! deterministic pseudo-random input — streamed row by row with the DSP path and with the
//! portable path, then held whole (resident, as the station holds its feature image) with
//! the DSP path — and prints per layer: what it reads, MACs, instructions (SysTick ticks ×
//! 40 under `-icount shift=0`) and MACs per instruction, and the arena each run needs.
#![no_std]
#![no_main]

use core::ptr::addr_of_mut;

use cortex_m_rt::entry;
use tqc_qemu::clock::{self, INSTRUCTIONS_PER_TICK};
use tqc_qemu::host::HostFile;
use tqc_qemu::{exit, println};
use tqc_shared::blob;
use tqc_shared::engine::{Arena, Engine};
use tqc_shared::kernels::mac::{Dsp, Mac, Portable};
use tqc_shared::model::Model;
use tqc_shared::planner::Mode;

const BLOB_BYTES: usize = 128 * 1024;
static mut BLOB: [u8; BLOB_BYTES] = [0; BLOB_BYTES];
/// Room for the encoder–decoder streamed with the input's delay line too (≈ 102 KiB); the
/// device holds its input resident, which needs less (each run prints its arena).
static mut ARENA: Arena<{ 128 * 1024 }> = Arena::new();
/// A whole 120×160×8 input map.
const INPUT_BYTES: usize = 120 * 160 * 8;
static mut INPUT: [i8; INPUT_BYTES] = [0; INPUT_BYTES];

fn run<M: Mac>(backend: &str, mode: Mode, model: &Model<'_>, arena: &mut [u8], input: &[i8]) -> bool {
    let mut engine = match Engine::new(model, arena, mode) {
        Ok(e) => e,
        Err(e) => {
            println!("bench: {}", e);
            return false;
        }
    };
    engine.set_clock(clock::ticks);
    let shape = model.input_shape();
    let mut outputs = 0usize;
    let start = clock::ticks();
    let ran = match mode {
        Mode::ResidentInput => engine.run_streaming_with::<M>(input, &mut |_, _, r| outputs += r.len()),
        _ => input
            .chunks_exact(shape.row_len())
            .try_for_each(|row| engine.push_row::<M>(row, &mut |_, _, r| outputs += r.len())),
    };
    if let Err(e) = ran {
        println!("bench: {}", e);
        return false;
    }
    let total = (clock::ticks() - start) * INSTRUCTIONS_PER_TICK;
    println!(
        "backend {}: arena {} bytes, {} output values",
        backend,
        engine.arena_used(),
        outputs
    );
    println!(
        "{:>5} {:<10} {:>7} {:>14} {:>10} {:>14} {:>10}",
        "layer", "kind", "reads", "output", "MACs", "instructions", "MAC/instr"
    );
    let (mut macs_total, mut instr_layers) = (0u64, 0u64);
    for (i, (info, &ticks)) in model.layers.iter().zip(engine.layer_ticks()).enumerate() {
        let instr = ticks * INSTRUCTIONS_PER_TICK;
        let macs = info.macs();
        macs_total += macs;
        instr_layers += instr;
        let o = info.output;
        let mut shape_buf = [0u8; 20];
        let shape_str = fmt_shape(&mut shape_buf, &[o.height, o.width, o.channels], b'x');
        let mut reads_buf = [0u8; 20];
        let ins = info.inputs();
        let reads = fmt_shape(
            &mut reads_buf,
            &[ins[0] as u16, ins.get(1).map_or(u16::MAX, |&t| t as u16)][..ins.len()],
            b',',
        );
        if macs > 0 {
            let milli = macs * 1000 / instr.max(1);
            println!(
                "{:>5} {:<10} {:>7} {:>14} {:>10} {:>14} {:>6}.{:03}",
                i,
                info.kind(),
                reads,
                shape_str,
                macs,
                instr,
                milli / 1000,
                milli % 1000
            );
        } else {
            println!(
                "{:>5} {:<10} {:>7} {:>14} {:>10} {:>14} {:>10}",
                i,
                info.kind(),
                reads,
                shape_str,
                "-",
                instr,
                "-"
            );
        }
    }
    let milli = macs_total * 1000 / instr_layers.max(1);
    println!(
        "{:>5} {:<10} {:>7} {:>14} {:>10} {:>14} {:>6}.{:03}",
        "all",
        "layers",
        "",
        "",
        macs_total,
        instr_layers,
        milli / 1000,
        milli % 1000
    );
    println!(
        "backend {}: {} instructions for the whole run ({} us at 480 MHz, 1 instr/cycle)",
        backend,
        total,
        total / 480
    );
    true
}

/// `values` joined by `sep` (at most three of five digits).
fn fmt_shape<'b>(buf: &'b mut [u8; 20], values: &[u16], sep: u8) -> &'b str {
    let mut n = 0;
    for (k, &v) in values.iter().take(3).enumerate() {
        if k > 0 {
            buf[n] = sep;
            n += 1;
        }
        let mut digits = [0u8; 5];
        let mut d = 0;
        let mut x = v;
        loop {
            digits[d] = b'0' + (x % 10) as u8;
            d += 1;
            x /= 10;
            if x == 0 {
                break;
            }
        }
        for i in (0..d).rev() {
            buf[n] = digits[i];
            n += 1;
        }
    }
    core::str::from_utf8(&buf[..n]).unwrap_or("?")
}

#[entry]
fn main() -> ! {
    let Some(p) = cortex_m::Peripherals::take() else {
        exit(false)
    };
    clock::start(p.SYST);
    // SAFETY: single-threaded; these statics are only borrowed here.
    let (blob_buf, arena, input) = unsafe {
        (
            &mut *addr_of_mut!(BLOB),
            &mut *addr_of_mut!(ARENA),
            &mut *addr_of_mut!(INPUT),
        )
    };
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for v in input.iter_mut() {
        // xorshift: the input is made before any count starts.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *v = (state >> 56) as i8;
    }
    let names = [c"bench-0.tqm", c"bench-1.tqm", c"bench-2.tqm", c"bench-3.tqm"];
    let mut ran = 0;
    for name in names {
        let Ok(mut file) = HostFile::open(name) else {
            break;
        };
        let len = file.len().unwrap_or(0);
        if len > BLOB_BYTES || file.read_exact(&mut blob_buf[..len]).is_err() {
            println!(
                "bench: cannot read the {} byte model {}",
                len,
                name.to_str().unwrap_or("?")
            );
            exit(false)
        }
        let model = match blob::decode(&blob_buf[..len]) {
            Ok(m) => m,
            Err(e) => {
                println!(
                    "bench: {} is not a valid model blob: {}",
                    name.to_str().unwrap_or("?"),
                    e
                );
                exit(false)
            }
        };
        let Some(input) = input.get(..model.input_shape().len()) else {
            println!(
                "bench: {} takes a larger input than {} bytes",
                name.to_str().unwrap_or("?"),
                INPUT_BYTES
            );
            exit(false)
        };
        println!(
            "\nmodel {}: {} layers, outputs {}",
            model.desc.name,
            model.layers.len(),
            model.outputs().len()
        );
        let ok = run::<Dsp>("dsp", Mode::Streaming, &model, arena.bytes(), input)
            && run::<Portable>("portable", Mode::Streaming, &model, arena.bytes(), input)
            && run::<Dsp>("dsp, input resident", Mode::ResidentInput, &model, arena.bytes(), input);
        if !ok {
            exit(false)
        }
        ran += 1;
    }
    if ran == 0 {
        println!("bench: no bench-0.tqm in QEMU's working directory");
    }
    exit(ran > 0)
}
