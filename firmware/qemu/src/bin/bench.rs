//! Kernel benchmark on the emulated core: runs the reference network
//! (`bench-model.tqm` in QEMU's working directory, written by `cargo xtask bench`) on a
//! deterministic pseudo-random 120×160×8 input streamed row by row, once with the DSP
//! path and once with the portable path, and prints per layer: MACs, instructions
//! (SysTick ticks × 40 under `-icount shift=0`) and MACs per instruction.
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
static mut ARENA: Arena<{ 96 * 1024 }> = Arena::new();
static mut ROW: [i8; 4096] = [0; 4096];

fn run<M: Mac>(backend: &str, model: &Model<'_>, arena: &mut [u8], row: &mut [i8]) -> bool {
    let mut engine = match Engine::new(model, arena, Mode::Streaming) {
        Ok(e) => e,
        Err(e) => {
            println!("bench: {}", e);
            return false;
        }
    };
    engine.set_clock(clock::ticks);
    let shape = model.input_shape();
    let row = &mut row[..shape.row_len()];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut outputs = 0usize;
    let start = clock::ticks();
    for _ in 0..shape.height {
        for v in row.iter_mut() {
            // xorshift: input generation stays outside the per-layer counts.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *v = (state >> 56) as i8;
        }
        if let Err(e) = engine.push_row::<M>(row, &mut |_, _, r| outputs += r.len()) {
            println!("bench: {}", e);
            return false;
        }
    }
    let total = (clock::ticks() - start) * INSTRUCTIONS_PER_TICK;
    println!(
        "backend {}: arena {} bytes, {} output values",
        backend,
        engine.arena_used(),
        outputs
    );
    println!(
        "{:>5} {:<10} {:>14} {:>10} {:>14} {:>10}",
        "layer", "kind", "output", "MACs", "instructions", "MAC/instr"
    );
    let (mut macs_total, mut instr_layers) = (0u64, 0u64);
    for (i, (info, &ticks)) in model.layers.iter().zip(engine.layer_ticks()).enumerate() {
        let instr = ticks * INSTRUCTIONS_PER_TICK;
        let macs = info.macs();
        macs_total += macs;
        instr_layers += instr;
        let o = info.output;
        let mut shape_buf = [0u8; 20];
        let shape_str = fmt_shape(&mut shape_buf, o.height, o.width, o.channels);
        if macs > 0 {
            let milli = macs * 1000 / instr.max(1);
            println!(
                "{:>5} {:<10} {:>14} {:>10} {:>14} {:>6}.{:03}",
                i,
                info.kind(),
                shape_str,
                macs,
                instr,
                milli / 1000,
                milli % 1000
            );
        } else {
            println!(
                "{:>5} {:<10} {:>14} {:>10} {:>14} {:>10}",
                i,
                info.kind(),
                shape_str,
                "-",
                instr,
                "-"
            );
        }
    }
    let milli = macs_total * 1000 / instr_layers.max(1);
    println!(
        "{:>5} {:<10} {:>14} {:>10} {:>14} {:>6}.{:03}",
        "all",
        "layers",
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

fn fmt_shape(buf: &mut [u8; 20], h: u16, w: u16, c: u16) -> &str {
    let mut n = 0;
    for (k, v) in [h, w, c].into_iter().enumerate() {
        if k > 0 {
            buf[n] = b'x';
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
    let (blob_buf, arena, row) = unsafe {
        (
            &mut *addr_of_mut!(BLOB),
            &mut *addr_of_mut!(ARENA),
            &mut *addr_of_mut!(ROW),
        )
    };
    let Ok(mut file) = HostFile::open(c"bench-model.tqm") else {
        println!("bench: cannot open bench-model.tqm in QEMU's working directory");
        exit(false)
    };
    let len = file.len().unwrap_or(0);
    if len > BLOB_BYTES || file.read_exact(&mut blob_buf[..len]).is_err() {
        println!("bench: cannot read the {} byte model", len);
        exit(false)
    }
    let model = match blob::decode(&blob_buf[..len]) {
        Ok(m) => m,
        Err(e) => {
            println!("bench: bench-model.tqm is not a valid model blob: {}", e);
            exit(false)
        }
    };
    let ok = run::<Dsp>("dsp", &model, arena.bytes(), row) && run::<Portable>("portable", &model, arena.bytes(), row);
    exit(ok)
}
