//! Runs a validated [`Model`] over a caller-provided arena. No heap, no panics.
//!
//! Streaming (the device): input rows are pushed one at a time; every tensor is a ring of
//! rows (a skip connection's ring is its delay line) and the [`Schedule`] computes each
//! output row as soon as the rows it depends on are there, so a 160×120 input never
//! exists as whole maps of every layer. Output rows are handed to a sink as they are
//! produced: `sink(output, row, values)`, `output` indexing the model's outputs.
//!
//! Whole map (reference): layer after layer over whole tensors, ping-ponging through the
//! arena. All modes call the same row kernels; tests prove they agree byte for byte.

use core::ops::Range;

use crate::kernels::conv::conv_row;
use crate::kernels::depthwise::depthwise_row;
use crate::kernels::fully_connected::{accumulate, finish};
use crate::kernels::mac::{Mac, Native};
use crate::kernels::merge::{add_row, concat_row, upsample2_row};
use crate::kernels::pool::pool_row;
use crate::kernels::softmax::softmax;
use crate::kernels::{ChannelTable, KernelError, TABLE_WORDS};
use crate::model::{Kernel, MAX_LAYERS, Model};
use crate::planner::{ALIGN, Mode, Plan, Schedule, Step, plan, scratch_layout};
use crate::quant::Prepared;
use crate::tensor::Rows;

/// Where output rows go: `(output index, row, values)`.
pub type Sink<'s> = dyn FnMut(usize, usize, &[i8]) + 's;

/// Why a run did not happen or stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error("arena has {available} bytes, the model needs {needed}")]
    ArenaTooSmall { needed: usize, available: usize },
    #[error("arena is not aligned to {ALIGN} bytes")]
    ArenaMisaligned,
    #[error("input row has {found} values, the model expects {expected}")]
    InputRow { expected: usize, found: usize },
    #[error("input has {found} values, the model expects {expected}")]
    Input { expected: usize, found: usize },
    #[error("all {height} input rows were already pushed; reset the engine for the next input")]
    TooManyRows { height: usize },
    #[error("this engine was planned for {0:?} execution")]
    WrongMode(Mode),
    // The kernel's reason is in the message, not a `source`: a chain would say it twice.
    #[error("layer {layer}: {error}")]
    Kernel { layer: usize, error: KernelError },
    #[error("arena plan is inconsistent at {0} (engine bug)")]
    Plan(&'static str),
}

/// Reinterprets planner-aligned bytes (an empty slice may be misaligned; it has no data).
fn words_mut<T: bytemuck::Pod>(b: &mut [u8]) -> Result<&mut [T], EngineError> {
    if b.is_empty() {
        return Ok(&mut []);
    }
    bytemuck::try_cast_slice_mut(b).map_err(|_| EngineError::Plan("misaligned region"))
}

fn words<T: bytemuck::Pod>(b: &[u8]) -> Result<&[T], EngineError> {
    if b.is_empty() {
        return Ok(&[]);
    }
    bytemuck::try_cast_slice(b).map_err(|_| EngineError::Plan("misaligned region"))
}

/// Splits `arena` into the disjoint `ranges` (empty ranges give empty slices).
fn split_regions<'s, const N: usize>(arena: &'s mut [u8], ranges: [Range<usize>; N]) -> Option<[&'s mut [u8]; N]> {
    let mut order: [usize; N] = core::array::from_fn(|i| i);
    crate::order::sort_by_key(&mut order, |i| ranges.get(i).map_or(0, |r| r.start));
    let mut out: [Option<&'s mut [u8]>; N] = core::array::from_fn(|_| None);
    let mut rest = arena;
    let mut consumed = 0;
    for &i in order.iter() {
        let (Some(r), Some(slot)) = (ranges.get(i), out.get_mut(i)) else {
            return None;
        };
        if r.is_empty() {
            *slot = Some(&mut []);
            continue;
        }
        let skip = r.start.checked_sub(consumed)?;
        let (_, tail) = core::mem::take(&mut rest).split_at_mut_checked(skip)?;
        let (mine, tail) = tail.split_at_mut_checked(r.len())?;
        *slot = Some(mine);
        rest = tail;
        consumed = r.end;
    }
    Some(out.map(|o| o.unwrap_or_default()))
}

/// An inference engine bound to one model and one arena.
pub struct Engine<'m, 'a> {
    model: &'m Model<'m>,
    arena: &'a mut [u8],
    plan: Plan,
    schedule: Schedule,
    /// Optional time source for per-layer profiling, and the time spent per layer.
    clock: Option<fn() -> u64>,
    layer_ticks: [u64; MAX_LAYERS],
}

const OUTSIDE: EngineError = EngineError::Plan("region outside the arena");

impl<'m, 'a> Engine<'m, 'a> {
    /// Plans `model` for `mode`, checks the arena and fills the channel tables. The
    /// arena must be aligned to [`ALIGN`] bytes (see [`Arena`]).
    pub fn new(model: &'m Model<'m>, arena: &'a mut [u8], mode: Mode) -> Result<Self, EngineError> {
        let plan = plan(model, mode);
        if arena.len() < plan.total {
            return Err(EngineError::ArenaTooSmall {
                needed: plan.total,
                available: arena.len(),
            });
        }
        if !(arena.as_ptr() as usize).is_multiple_of(ALIGN) {
            return Err(EngineError::ArenaMisaligned);
        }
        let mut engine = Engine {
            model,
            arena,
            plan,
            schedule: Schedule::new(),
            clock: None,
            layer_ticks: [0; MAX_LAYERS],
        };
        for (i, info) in model.layers.iter().enumerate() {
            let region = engine.plan.table(i);
            let table: &mut [[i32; TABLE_WORDS]] = words_mut(engine.arena.get_mut(region.range()).ok_or(OUTSIDE)?)?;
            for c in 0..info.weighted_channels() {
                let q = model.channel_quant(i, c).ok_or(OUTSIDE)?;
                // |x − zp| ≤ 255 and |w| ≤ 127 bound every accumulator before the bias.
                let bound = info.dot_len() as u64 * 255 * 127 + q.bias.unsigned_abs() as u64;
                let prepared =
                    Prepared::with_bound(q.requant, bound).ok_or(EngineError::Plan("invalid requantization"))?;
                let entry = table.get_mut(c).ok_or(OUTSIDE)?;
                *entry = ChannelTable::entry(q.bias, prepared);
            }
        }
        engine.reset();
        Ok(engine)
    }

    /// Arena bytes this engine uses.
    pub fn arena_used(&self) -> usize {
        self.plan.total
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Profiles every kernel call with `clock` (any monotonic counter, e.g. SysTick);
    /// [`Engine::layer_ticks`] then gives the time spent in each layer during the last run.
    pub fn set_clock(&mut self, clock: fn() -> u64) {
        self.clock = Some(clock);
    }

    /// Clock ticks spent per layer since the last reset (zeros without a clock).
    pub fn layer_ticks(&self) -> &[u64] {
        &self.layer_ticks[..self.model.layers.len()]
    }

    /// Prepares for the next input (streaming).
    pub fn reset(&mut self) {
        self.layer_ticks = [0; MAX_LAYERS];
        self.schedule = Schedule::new();
    }

    /// True once every row of every output has gone to the sink.
    pub fn is_complete(&self) -> bool {
        self.schedule.is_complete(self.model)
    }

    /// Streams one input row (HWC, `width · channels` values) through the model; output
    /// rows that become ready are passed to the sink.
    pub fn push_row<M: Mac>(&mut self, row: &[i8], sink: &mut Sink<'_>) -> Result<(), EngineError> {
        if self.plan.mode != Mode::Streaming {
            return Err(EngineError::WrongMode(self.plan.mode));
        }
        let shape = self.model.input_shape();
        if row.len() != shape.row_len() {
            return Err(EngineError::InputRow {
                expected: shape.row_len(),
                found: row.len(),
            });
        }
        let y = self.schedule.produced(0);
        if y >= shape.height as usize {
            return Err(EngineError::TooManyRows {
                height: shape.height as usize,
            });
        }
        let slot = self.slot(0, y)?;
        // The row's length was checked against the input's above.
        let dst = bytemuck::cast_slice_mut::<u8, i8>(self.arena.get_mut(slot).ok_or(OUTSIDE)?);
        for (d, &s) in dst.iter_mut().zip(row) {
            *d = s;
        }
        self.schedule.input_row();
        self.deliver(0, y, &[], sink)?;
        self.drain::<M>(&[], sink)
    }

    /// Streams a whole input map, row by row, with the native MAC backend.
    pub fn run_streaming(&mut self, input: &[i8], sink: &mut Sink<'_>) -> Result<(), EngineError> {
        self.run_streaming_with::<Native>(input, sink)
    }

    /// [`Engine::run_streaming`] with a chosen MAC backend. In [`Mode::ResidentInput`]
    /// the layers read `input` in place.
    pub fn run_streaming_with<M: Mac>(&mut self, input: &[i8], sink: &mut Sink<'_>) -> Result<(), EngineError> {
        let shape = self.model.input_shape();
        if input.len() != shape.len() {
            return Err(EngineError::Input {
                expected: shape.len(),
                found: input.len(),
            });
        }
        self.reset();
        match self.plan.mode {
            Mode::Streaming => {
                for row in input.chunks_exact(shape.row_len().max(1)) {
                    self.push_row::<M>(row, sink)?;
                }
                Ok(())
            }
            Mode::ResidentInput => {
                for y in 0..shape.height as usize {
                    self.schedule.input_row();
                    self.deliver(0, y, input, sink)?;
                    self.drain::<M>(input, sink)?;
                }
                Ok(())
            }
            Mode::WholeMap => Err(EngineError::WrongMode(Mode::WholeMap)),
        }
    }

    /// Runs layer after layer over whole maps (the reference schedule); each output is
    /// handed over as soon as its layer has finished.
    pub fn run_whole_map<M: Mac>(&mut self, input: &[i8], sink: &mut Sink<'_>) -> Result<(), EngineError> {
        if self.plan.mode != Mode::WholeMap {
            return Err(EngineError::WrongMode(self.plan.mode));
        }
        let shape = self.model.input_shape();
        if input.len() != shape.len() {
            return Err(EngineError::Input {
                expected: shape.len(),
                found: input.len(),
            });
        }
        self.reset();
        let region = self.plan.tensor(0);
        let dst = self
            .arena
            .get_mut(region.offset..region.offset + input.len())
            .ok_or(OUTSIDE)?;
        bytemuck::cast_slice_mut::<u8, i8>(dst).copy_from_slice(input);
        for y in 0..shape.height as usize {
            self.deliver(0, y, &[], sink)?;
        }
        for (i, info) in self.model.layers.iter().enumerate() {
            if let Kernel::FullyConnected(_) = info.kernel {
                for y in 0..info.input.height as usize {
                    self.accumulate_fc::<M>(i, y, &[])?;
                }
            }
            for oy in 0..info.output.height as usize {
                self.compute_row::<M>(i, oy, &[])?;
            }
            for oy in 0..info.output.height as usize {
                self.deliver(i + 1, oy, &[], sink)?;
            }
        }
        self.schedule.complete(self.model);
        Ok(())
    }

    /// Carries out every step the schedule allows.
    fn drain<M: Mac>(&mut self, resident: &[i8], sink: &mut Sink<'_>) -> Result<(), EngineError> {
        while let Some(step) = self.schedule.next(self.model) {
            match step {
                Step::Row { layer, row } => {
                    self.compute_row::<M>(layer, row, resident)?;
                    self.deliver(layer + 1, row, resident, sink)?;
                }
                Step::Accumulate { layer, row } => self.accumulate_fc::<M>(layer, row, resident)?,
            }
        }
        Ok(())
    }

    /// Hands row `y` of tensor `t` to the sink if `t` is an output.
    fn deliver(&self, t: usize, y: usize, resident: &[i8], sink: &mut Sink<'_>) -> Result<(), EngineError> {
        let Some(k) = self.model.output_index(t) else {
            return Ok(());
        };
        let bytes = self.arena.get(self.plan.tensor(t).range()).ok_or(OUTSIDE)?;
        let row = tensor_view(&self.plan, self.model, t, bytes, resident)?
            .row_checked(y)
            .ok_or(OUTSIDE)?;
        sink(k, y, row);
        Ok(())
    }

    fn is_resident(&self, t: usize) -> bool {
        t == 0 && self.plan.mode == Mode::ResidentInput
    }

    /// Byte range of row `y` in the buffer of tensor `t`.
    fn slot(&self, t: usize, y: usize) -> Result<Range<usize>, EngineError> {
        let len = self.model.tensor_shape(t).row_len();
        let cap = self.plan.ring_rows.get(t).ok_or(OUTSIDE)?.max(&1);
        let start = self.plan.tensors.get(t).ok_or(OUTSIDE)?.offset + (y % cap) * len;
        Ok(start..start + len)
    }

    /// Adds input row `y` of fully-connected layer `i` to its accumulators.
    fn accumulate_fc<M: Mac>(&mut self, i: usize, y: usize, resident: &[i8]) -> Result<(), EngineError> {
        let start = self.clock.map(|c| c());
        let r = self.accumulate_fc_untimed::<M>(i, y, resident);
        if let (Some(clock), Some(start)) = (self.clock, start)
            && let Some(t) = self.layer_ticks.get_mut(i)
        {
            *t += clock().wrapping_sub(start);
        }
        r
    }

    fn accumulate_fc_untimed<M: Mac>(&mut self, i: usize, y: usize, resident: &[i8]) -> Result<(), EngineError> {
        let info = *self.model.layers.get(i).ok_or(OUTSIDE)?;
        let Kernel::FullyConnected(p) = info.kernel else {
            return Err(EngineError::Plan("not a fully-connected layer"));
        };
        let src = info.inputs[0] as usize;
        let weights = self.model.weights(i);
        let row_len = info.input.row_len();
        let in_place = self.is_resident(src);
        let input = if in_place { 0..0 } else { self.slot(src, y)? };
        let (acc_region, scratch_region) = (self.plan.accumulator(i).range(), self.plan.scratch_of(i).range());
        let [x, acc, scratch] = split_regions(self.arena, [input, acc_region, scratch_region]).ok_or(OUTSIDE)?;
        let x: &[i8] = if in_place {
            resident.get(y * row_len..(y + 1) * row_len).ok_or(OUTSIDE)?
        } else {
            bytemuck::cast_slice(x)
        };
        let acc: &mut [i32] = words_mut(acc)?;
        let acc = acc.get_mut(..p.out_features).ok_or(OUTSIDE)?;
        if y == 0 {
            acc.fill(0);
        }
        let cols: &mut [i16] = words_mut(scratch)?;
        accumulate::<M>(&p, weights, x, y * row_len, acc, cols).map_err(|error| EngineError::Kernel { layer: i, error })
    }

    /// Computes output row `oy` of layer `i` into its tensor's buffer.
    fn compute_row<M: Mac>(&mut self, i: usize, oy: usize, resident: &[i8]) -> Result<(), EngineError> {
        let start = self.clock.map(|c| c());
        let r = self.compute_row_untimed::<M>(i, oy, resident);
        if let (Some(clock), Some(start)) = (self.clock, start)
            && let Some(t) = self.layer_ticks.get_mut(i)
        {
            *t += clock().wrapping_sub(start);
        }
        r
    }

    fn compute_row_untimed<M: Mac>(&mut self, i: usize, oy: usize, resident: &[i8]) -> Result<(), EngineError> {
        let info = *self.model.layers.get(i).ok_or(OUTSIDE)?;
        let dest = self.slot(i + 1, oy)?;
        let ins = info.inputs();
        let t0 = *ins.first().ok_or(OUTSIDE)? as usize;
        let t1 = ins.get(1).map(|&t| t as usize);
        let range = |t: usize| {
            if self.is_resident(t) {
                0..0
            } else {
                self.plan.tensor(t).range()
            }
        };
        let r0 = range(t0);
        // A layer reading one tensor twice (x + x) borrows it once.
        let r1 = match t1 {
            Some(t) if t != t0 => range(t),
            _ => 0..0,
        };
        let (plan, model) = (self.plan, self.model);
        let [a, b, out, scratch, table, acc] = split_regions(
            self.arena,
            [
                r0,
                r1,
                dest,
                plan.scratch_of(i).range(),
                plan.table(i).range(),
                plan.accumulator(i).range(),
            ],
        )
        .ok_or(OUTSIDE)?;
        let rows = tensor_view(&plan, model, t0, a, resident)?;
        let second = match t1 {
            Some(t) if t == t0 => Some(rows),
            Some(t) => Some(tensor_view(&plan, model, t, b, resident)?),
            None => None,
        };
        let out: &mut [i8] = bytemuck::cast_slice_mut(out);
        let table = ChannelTable(words(table)?);
        let weights = model.weights(i);
        let kernel_err = |error| EngineError::Kernel { layer: i, error };
        match info.kernel {
            Kernel::Conv(p) => {
                let [g, c, _] = scratch_layout(&info.kernel, info.input.row_len());
                let (gather, rest) = scratch
                    .split_at_mut_checked(g)
                    .ok_or(EngineError::Plan("conv scratch"))?;
                let (cols, wq) = rest.split_at_mut_checked(c).ok_or(EngineError::Plan("conv scratch"))?;
                conv_row::<M, _>(
                    &p,
                    weights,
                    &table,
                    &rows,
                    oy,
                    out,
                    bytemuck::cast_slice_mut(gather),
                    words_mut(cols)?,
                    words_mut(wq)?,
                )
                .map_err(kernel_err)
            }
            Kernel::Depthwise(p) => {
                let acc: &mut [i32] = words_mut(scratch)?;
                depthwise_row::<M, _>(&p, weights, &table, &rows, oy, out, acc).map_err(kernel_err)
            }
            Kernel::Pool(p) => pool_row(&p, &rows, oy, out).map_err(kernel_err),
            Kernel::Softmax { params, depth } => {
                softmax(&params, depth, rows.row_checked(oy).ok_or(OUTSIDE)?, out).map_err(kernel_err)
            }
            Kernel::FullyConnected(p) => {
                let acc: &[i32] = words(acc)?;
                finish(&p, &table, acc.get(..p.out_features).ok_or(OUTSIDE)?, out).map_err(kernel_err)
            }
            Kernel::Add { quant, shape } => {
                add_row(&quant, shape, &rows, &second.ok_or(OUTSIDE)?, oy, out).map_err(kernel_err)
            }
            Kernel::Concat(p) => concat_row(&p, &rows, &second.ok_or(OUTSIDE)?, oy, out).map_err(kernel_err),
            Kernel::Upsample2 { input } => upsample2_row(input, &rows, oy, out).map_err(kernel_err),
        }
    }
}

/// The rows of tensor `t`: the resident input, or `bytes`, its buffer in the arena.
fn tensor_view<'s>(
    plan: &Plan,
    model: &Model<'_>,
    t: usize,
    bytes: &'s [u8],
    resident: &'s [i8],
) -> Result<Rows<'s>, EngineError> {
    let data: &[i8] = if t == 0 && plan.mode == Mode::ResidentInput {
        resident
    } else {
        bytemuck::cast_slice(bytes)
    };
    let cap = plan.ring_rows.get(t).ok_or(OUTSIDE)?;
    Rows::new(data, model.tensor_shape(t).row_len(), (*cap).max(1)).ok_or(OUTSIDE)
}

/// A statically allocatable, suitably aligned arena of `N` bytes.
#[repr(C, align(8))]
pub struct Arena<const N: usize>(pub [u8; N]);

impl<const N: usize> Arena<N> {
    pub const fn new() -> Self {
        Arena([0; N])
    }
    pub fn bytes(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

impl<const N: usize> Default for Arena<N> {
    fn default() -> Self {
        Self::new()
    }
}
