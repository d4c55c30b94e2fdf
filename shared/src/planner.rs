//! Arena planning: which bytes of the caller's arena hold which buffer, and when.
//!
//! Every buffer has a lifetime in layer steps. Buffers whose lifetimes overlap must not
//! share bytes; the others may. Placement is TFLM's greedy scheme: largest first, each at
//! the lowest offset that clears every already placed buffer it is alive with.
//!
//! Two execution modes:
//! - [`Mode::Streaming`] (the device): each layer keeps a ring of the few input rows its
//!   window needs; rings, channel tables and fully-connected accumulators live for the
//!   whole run, while each layer's scratch lives only during its own kernel calls, so all
//!   scratch shares one region.
//! - [`Mode::WholeMap`] (reference): tensor `i` lives from the layer that writes it to the
//!   layer that reads it, so consecutive maps ping-pong through the arena.

use core::ops::Range;

use crate::model::{Kernel, MAX_LAYERS, Model};

/// Every buffer is aligned (and padded) to this many bytes.
pub const ALIGN: usize = 8;
/// Bytes per output channel of a channel table: bias, multiplier, left and right shift.
pub const CHANNEL_ENTRY_BYTES: usize = 4 * crate::kernels::TABLE_WORDS;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Streaming,
    WholeMap,
}

/// A byte range of the arena.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Region {
    pub offset: usize,
    pub len: usize,
}

impl Region {
    pub fn range(&self) -> Range<usize> {
        self.offset..self.offset + self.len
    }
}

/// Where each buffer lives. Index `i` of `tensors` is the input of layer `i` (a ring of
/// rows when streaming, the whole map otherwise); `output` is the model output (one row
/// when streaming, the whole map otherwise).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub mode: Mode,
    pub total: usize,
    pub tensors: [Region; MAX_LAYERS],
    pub ring_rows: [usize; MAX_LAYERS],
    pub output: Region,
    pub tables: [Region; MAX_LAYERS],
    pub accumulators: [Region; MAX_LAYERS],
    pub scratch: [Region; MAX_LAYERS],
}

/// Scratch of one kernel call, as byte lengths of consecutive, word-aligned parts:
/// convolutions `[int8 gather, q15 columns, q15 weights]`, depthwise `[i32 accumulators]`,
/// fully connected `[q15 row]`.
pub fn scratch_layout(kernel: &Kernel, input_row_len: usize) -> [usize; 3] {
    match kernel {
        Kernel::Conv(p) => {
            let (g, c, w) = p.scratch_len();
            [align(g), align(2 * c), align(2 * w)]
        }
        Kernel::Depthwise(p) => [align(4 * p.scratch_len()), 0, 0],
        Kernel::FullyConnected(_) => [align(2 * input_row_len), 0, 0],
        Kernel::Pool(_) | Kernel::Softmax { .. } => [0, 0, 0],
    }
}

const fn align(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

#[derive(Clone, Copy)]
struct Request {
    len: usize,
    first: usize,
    last: usize,
    slot: Slot,
}

#[derive(Clone, Copy)]
enum Slot {
    Tensor(usize),
    Output,
    Table(usize),
    Accumulator(usize),
    Scratch(usize),
}

const MAX_REQUESTS: usize = 4 * MAX_LAYERS + 1;

/// Plans the arena of `model` in `mode`. Never fails for a validated model.
pub fn plan(model: &Model<'_>, mode: Mode) -> Plan {
    let n = model.layers.len();
    let mut requests: heapless::Vec<Request, MAX_REQUESTS> = heapless::Vec::new();
    let mut ring_rows = [0usize; MAX_LAYERS];
    // Capacities are MAX_LAYERS-bounded like the model, so pushes cannot overflow.
    let mut push = |r: Request| {
        let _ = requests.push(r);
    };
    for (i, layer) in model.layers.iter().enumerate() {
        let row = layer.input.row_len();
        let (rows, first, last) = match mode {
            Mode::Streaming => (layer.window_rows(), 0, n),
            // Tensor i is written by layer i − 1 (step i − 1) and read by layer i.
            Mode::WholeMap => (layer.input.height as usize, i.saturating_sub(1), i),
        };
        ring_rows[i] = rows;
        push(Request {
            len: align(rows * row),
            first,
            last,
            slot: Slot::Tensor(i),
        });
        let channels = layer.weighted_channels();
        if channels > 0 {
            push(Request {
                len: align(channels * CHANNEL_ENTRY_BYTES),
                first: 0,
                last: n,
                slot: Slot::Table(i),
            });
        }
        if let Kernel::FullyConnected(p) = layer.kernel {
            let (first, last) = if mode == Mode::Streaming { (0, n) } else { (i, i) };
            push(Request {
                len: align(4 * p.out_features),
                first,
                last,
                slot: Slot::Accumulator(i),
            });
        }
        let scratch: usize = scratch_layout(&layer.kernel, row).iter().sum();
        if scratch > 0 {
            push(Request {
                len: scratch,
                first: i,
                last: i,
                slot: Slot::Scratch(i),
            });
        }
    }
    let out = model.output_shape();
    let out_len = match mode {
        Mode::Streaming => out.row_len(),
        Mode::WholeMap => out.len(),
    };
    let (first, last) = match mode {
        Mode::Streaming => (0, n),
        Mode::WholeMap => (n - 1, n),
    };
    push(Request {
        len: align(out_len),
        first,
        last,
        slot: Slot::Output,
    });

    // Largest first; ties keep request order so the plan is deterministic.
    let mut order: heapless::Vec<usize, MAX_REQUESTS> = (0..requests.len()).collect();
    order.sort_unstable_by(|&a, &b| requests[b].len.cmp(&requests[a].len).then(a.cmp(&b)));
    let mut placed: heapless::Vec<(usize, Region), MAX_REQUESTS> = heapless::Vec::new();
    let mut plan = Plan {
        mode,
        total: 0,
        tensors: [Region::default(); MAX_LAYERS],
        ring_rows,
        output: Region::default(),
        tables: [Region::default(); MAX_LAYERS],
        accumulators: [Region::default(); MAX_LAYERS],
        scratch: [Region::default(); MAX_LAYERS],
    };
    for &r in order.iter() {
        let req = requests[r];
        let mut offset = 0;
        // Bump past every live conflicting buffer until a gap fits; each pass moves the
        // offset forward, so this ends within `placed.len() + 1` passes.
        loop {
            let mut moved = false;
            for &(o, region) in placed.iter() {
                let other = requests[o];
                let alive_together = req.first <= other.last && other.first <= req.last;
                let overlap = offset < region.offset + region.len && region.offset < offset + req.len;
                if alive_together && overlap && req.len > 0 && region.len > 0 {
                    offset = region.offset + region.len;
                    moved = true;
                }
            }
            if !moved {
                break;
            }
        }
        let region = Region { offset, len: req.len };
        let _ = placed.push((r, region));
        plan.total = plan.total.max(offset + req.len);
        match req.slot {
            Slot::Tensor(i) => plan.tensors[i] = region,
            Slot::Output => plan.output = region,
            Slot::Table(i) => plan.tables[i] = region,
            Slot::Accumulator(i) => plan.accumulators[i] = region,
            Slot::Scratch(i) => plan.scratch[i] = region,
        }
    }
    plan
}
