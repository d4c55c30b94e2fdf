//! Arena planning: which bytes of the caller's arena hold which buffer, and when; and the
//! streaming schedule both the planner and the engine follow.
//!
//! Every buffer has a lifetime in steps (step 0 takes the input, layer `i` runs at step
//! `i + 1`). Buffers whose lifetimes overlap must not share bytes; the others may.
//! Placement is TFLM's greedy scheme: largest first, each at the lowest offset that clears
//! every already placed buffer it is alive with.
//!
//! Execution modes:
//! - [`Mode::Streaming`] (the device): input rows arrive one at a time and every tensor is
//!   a ring of rows. The [`Schedule`] decides which layer computes which row next; the
//!   planner runs the same schedule on row counts alone and sizes each ring to the most
//!   rows it ever has to hold — the window of its slowest reader plus, for a skip
//!   connection, the rows its reader lags behind while the path beneath it catches up (a
//!   delay line). Rings, channel tables and fully-connected accumulators live for the whole
//!   run; each layer's scratch lives only during its own kernel calls, so all scratch
//!   shares one region.
//! - [`Mode::ResidentInput`]: the same, but the caller's whole input map stays in place
//!   and the layers read it directly (on the device the feature image is resident anyway),
//!   so the input needs no ring, and a skip from the input no delay line.
//! - [`Mode::WholeMap`] (reference): tensor `t` is a whole map and lives from the step that
//!   writes it to the last step that reads it (an output until it has been handed over,
//!   right after it is written), so maps ping-pong through the arena.

use core::ops::Range;

use crate::model::{Kernel, MAX_LAYERS, MAX_TENSORS, Model};

/// Every buffer is aligned (and padded) to this many bytes.
pub const ALIGN: usize = 8;
/// Bytes per output channel of a channel table: bias, multiplier, left and right shift.
pub const CHANNEL_ENTRY_BYTES: usize = 4 * crate::kernels::TABLE_WORDS;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Streaming,
    ResidentInput,
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

/// Where each buffer lives. `tensors[t]` holds `ring_rows[t]` rows of tensor `t` (a
/// ring when streaming, the whole map otherwise; empty for a resident input).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub mode: Mode,
    pub total: usize,
    pub tensors: [Region; MAX_TENSORS],
    pub ring_rows: [usize; MAX_TENSORS],
    pub tables: [Region; MAX_LAYERS],
    pub accumulators: [Region; MAX_LAYERS],
    pub scratch: [Region; MAX_LAYERS],
}

/// Regions by index; an index past the plan (never for a validated model) is an empty
/// region, which the kernels then refuse as too short, with a typed error.
impl Plan {
    pub fn tensor(&self, t: usize) -> Region {
        self.tensors.get(t).copied().unwrap_or_default()
    }
    pub fn table(&self, i: usize) -> Region {
        self.tables.get(i).copied().unwrap_or_default()
    }
    pub fn accumulator(&self, i: usize) -> Region {
        self.accumulators.get(i).copied().unwrap_or_default()
    }
    pub fn scratch_of(&self, i: usize) -> Region {
        self.scratch.get(i).copied().unwrap_or_default()
    }
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
        _ => [0, 0, 0],
    }
}

const fn align(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

/// One step of the streaming schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Layer `layer` computes its output row `row`.
    Row { layer: usize, row: usize },
    /// Fully-connected layer `layer` adds its input row `row` to its accumulators.
    Accumulate { layer: usize, row: usize },
}

/// The streaming schedule: in passes over the layers in blob order (a topological
/// order), every layer whose next output row is wanted (see [`Schedule::demanded`]) and
/// has all its input rows computes that one row; passes repeat until no layer can move.
/// One row per layer and pass sends rows down the graph in waves, depth first, which
/// keeps rings short.
#[derive(Clone, Debug)]
pub struct Schedule {
    produced: [usize; MAX_TENSORS],
    accumulated: [usize; MAX_LAYERS],
    cursor: usize,
    progressed: bool,
}

impl Default for Schedule {
    fn default() -> Self {
        Self::new()
    }
}

impl Schedule {
    pub const fn new() -> Self {
        Schedule {
            produced: [0; MAX_TENSORS],
            accumulated: [0; MAX_LAYERS],
            cursor: 0,
            progressed: false,
        }
    }

    /// Rows of tensor `t` written so far.
    pub fn produced(&self, t: usize) -> usize {
        self.produced.get(t).copied().unwrap_or(0)
    }

    /// One more input row has arrived.
    pub fn input_row(&mut self) {
        self.produced[0] += 1;
    }

    /// Marks every tensor complete (after a whole-map run).
    pub fn complete(&mut self, model: &Model<'_>) {
        for (t, p) in self.produced.iter_mut().enumerate().take(model.tensor_count()) {
            *p = model.tensor_shape(t).height as usize;
        }
    }

    /// True once every output tensor has all its rows.
    pub fn is_complete(&self, model: &Model<'_>) -> bool {
        model
            .outputs()
            .iter()
            .all(|&t| self.produced(t as usize) == model.tensor_shape(t as usize).height as usize)
    }

    /// The next step, already counted as done (the caller carries it out before asking
    /// again); `None` when no layer can move until more input arrives.
    pub fn next(&mut self, model: &Model<'_>) -> Option<Step> {
        let n = model.layers.len();
        loop {
            while self.cursor < n {
                let i = self.cursor;
                self.cursor += 1;
                if let Some(step) = self.ready(model, i) {
                    let count = match step {
                        Step::Row { layer, .. } => self.produced.get_mut(layer + 1),
                        Step::Accumulate { layer, .. } => self.accumulated.get_mut(layer),
                    };
                    if let Some(c) = count {
                        *c += 1;
                    }
                    self.progressed = true;
                    return Some(step);
                }
            }
            self.cursor = 0;
            if !self.progressed {
                return None;
            }
            self.progressed = false;
        }
    }

    fn ready(&self, model: &Model<'_>, i: usize) -> Option<Step> {
        let info = model.layers.get(i)?;
        let done = self.produced(i + 1);
        if let Kernel::FullyConnected(_) = info.kernel {
            let arrived = self.produced(*info.inputs().first()? as usize);
            let accumulated = *self.accumulated.get(i)?;
            if accumulated < arrived {
                return Some(Step::Accumulate {
                    layer: i,
                    row: accumulated,
                });
            }
            return (accumulated == info.input.height as usize && done == 0).then_some(Step::Row { layer: i, row: 0 });
        }
        if done >= info.output.height as usize {
            return None;
        }
        // Inputs first: the cheaper test, and the one that fails most often.
        let need = info.last_input_row(done);
        let inputs_ready = info.inputs().iter().all(|&t| need < self.produced(t as usize));
        (inputs_ready && self.demanded(model, i + 1)).then_some(Step::Row { layer: i, row: done })
    }

    /// Whether the next row of tensor `t` is wanted now: by the caller (an output), or by
    /// a reader that cannot go on without it. Computing rows only on demand keeps a
    /// fast producer from running ahead of a slow reader (a ×2 upsampling reads half a
    /// row per row it writes), so a ring holds only its reader's window and any lag that
    /// the graph itself imposes.
    fn demanded(&self, model: &Model<'_>, t: usize) -> bool {
        if model.output_index(t).is_some() {
            return true;
        }
        let produced = self.produced(t);
        model.layers.iter().enumerate().any(|(i, info)| {
            if !info.inputs().iter().any(|&x| x as usize == t) {
                return false;
            }
            if let Kernel::FullyConnected(_) = info.kernel {
                let accumulated = self.accumulated.get(i).copied().unwrap_or(0);
                return accumulated >= produced && accumulated < info.input.height as usize;
            }
            let done = self.produced(i + 1);
            done < info.output.height as usize && info.last_input_row(done) >= produced
        })
    }

    /// The oldest row of tensor `t` that a reader (or, for an output, the caller) will
    /// still look at.
    fn oldest_needed(&self, model: &Model<'_>, t: usize) -> usize {
        let produced = self.produced(t);
        let mut oldest = if model.output_index(t).is_some() {
            produced.saturating_sub(1)
        } else {
            produced
        };
        for (i, info) in model.layers.iter().enumerate() {
            if !info.inputs().iter().any(|&x| x as usize == t) {
                continue;
            }
            let done = self.produced(i + 1);
            let first = match info.kernel {
                Kernel::FullyConnected(_) => self.accumulated.get(i).copied().unwrap_or(produced),
                _ if done >= info.output.height as usize => produced,
                _ => info.first_input_row(done),
            };
            oldest = oldest.min(first);
        }
        oldest
    }

    /// Rows tensor `t` must hold right now: from the oldest still needed to the newest.
    fn held(&self, model: &Model<'_>, t: usize) -> usize {
        self.produced(t).saturating_sub(self.oldest_needed(model, t))
    }
}

/// Ring capacity of every tensor: the schedule run on row counts alone, noting after each
/// write how many rows the written tensor holds.
fn ring_rows(model: &Model<'_>, mode: Mode) -> [usize; MAX_TENSORS] {
    let mut rows = [1usize; MAX_TENSORS];
    if mode == Mode::WholeMap {
        for (t, r) in rows.iter_mut().enumerate().take(model.tensor_count()) {
            *r = model.tensor_shape(t).height as usize;
        }
        return rows;
    }
    let mut s = Schedule::new();
    for _ in 0..model.input_shape().height {
        s.input_row();
        rows[0] = rows[0].max(s.held(model, 0));
        while let Some(step) = s.next(model) {
            if let Step::Row { layer, .. } = step
                && let Some(r) = rows.get_mut(layer + 1)
            {
                *r = (*r).max(s.held(model, layer + 1));
            }
        }
    }
    if mode == Mode::ResidentInput {
        rows[0] = model.input_shape().height as usize;
    }
    rows
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
    Table(usize),
    Accumulator(usize),
    Scratch(usize),
}

const MAX_REQUESTS: usize = MAX_TENSORS + 3 * MAX_LAYERS;

/// Plans the arena of `model` in `mode`. Never fails for a validated model.
pub fn plan(model: &Model<'_>, mode: Mode) -> Plan {
    let n = model.layers.len();
    let mut requests: heapless::Vec<Request, MAX_REQUESTS> = heapless::Vec::new();
    let ring_rows = ring_rows(model, mode);
    // Capacities are bounded like the model's, so pushes cannot overflow.
    let mut push = |r: Request| {
        let _ = requests.push(r);
    };
    let whole = mode == Mode::WholeMap;
    for (t, &rows) in ring_rows.iter().enumerate().take(model.tensor_count()) {
        let len = if t == 0 && mode == Mode::ResidentInput {
            0
        } else {
            align(rows * model.tensor_shape(t).row_len())
        };
        let (first, last) = if whole {
            let readers = model.layers.iter().enumerate();
            let last = readers
                .filter(|(_, l)| l.inputs().iter().any(|&x| x as usize == t))
                .map(|(i, _)| i + 1)
                .max()
                .unwrap_or(t);
            (t, last.max(t))
        } else {
            (0, n)
        };
        push(Request {
            len,
            first,
            last,
            slot: Slot::Tensor(t),
        });
    }
    for (i, layer) in model.layers.iter().enumerate() {
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
            let (first, last) = if whole { (i + 1, i + 1) } else { (0, n) };
            push(Request {
                len: align(4 * p.out_features),
                first,
                last,
                slot: Slot::Accumulator(i),
            });
        }
        let scratch: usize = scratch_layout(&layer.kernel, layer.input.row_len()).iter().sum();
        if scratch > 0 {
            push(Request {
                len: scratch,
                first: i + 1,
                last: i + 1,
                slot: Slot::Scratch(i),
            });
        }
    }

    // Largest first; ties keep request order so the plan is deterministic.
    let mut order: heapless::Vec<usize, MAX_REQUESTS> = heapless::Vec::new();
    for r in 0..requests.len() {
        // As many as `requests` holds: the same capacity.
        let _ = order.push(r);
    }
    crate::order::sort_by_key(&mut order, |r| core::cmp::Reverse(requests.get(r).map_or(0, |q| q.len)));
    let mut placed: heapless::Vec<(usize, Region), MAX_REQUESTS> = heapless::Vec::new();
    let mut plan = Plan {
        mode,
        total: 0,
        tensors: [Region::default(); MAX_TENSORS],
        ring_rows,
        tables: [Region::default(); MAX_LAYERS],
        accumulators: [Region::default(); MAX_LAYERS],
        scratch: [Region::default(); MAX_LAYERS],
    };
    for &r in order.iter() {
        let Some(&req) = requests.get(r) else { continue };
        let mut offset = 0;
        // Bump past every live conflicting buffer until a gap fits; each pass moves the
        // offset forward, so this ends within `placed.len() + 1` passes.
        loop {
            let mut moved = false;
            for &(o, region) in placed.iter() {
                let Some(other) = requests.get(o) else { continue };
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
        // Slots come from a validated model: always within the plan's arrays.
        let slot = match req.slot {
            Slot::Tensor(t) => plan.tensors.get_mut(t),
            Slot::Table(i) => plan.tables.get_mut(i),
            Slot::Accumulator(i) => plan.accumulators.get_mut(i),
            Slot::Scratch(i) => plan.scratch.get_mut(i),
        };
        if let Some(slot) = slot {
            *slot = region;
        }
    }
    plan
}
