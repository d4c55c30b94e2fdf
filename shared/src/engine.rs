//! Runs a validated [`Model`] over a caller-provided arena. No heap, no panics.
//!
//! Streaming (the device): input rows are pushed one at a time; each layer keeps a ring
//! of the input rows its window needs and emits an output row as soon as the rows it
//! depends on have arrived, depth first, so a 160×120 input never exists as whole maps
//! of every layer. Output rows are handed to a sink as they are produced.
//!
//! Whole map (reference): layer after layer over whole tensors, ping-ponging through the
//! arena. Both modes call the same row kernels; tests prove they agree byte for byte.

use core::ops::Range;

use crate::kernels::conv::conv_row;
use crate::kernels::depthwise::depthwise_row;
use crate::kernels::fully_connected::{accumulate, finish};
use crate::kernels::mac::{Mac, Native};
use crate::kernels::pool::pool_row;
use crate::kernels::softmax::softmax;
use crate::kernels::{ChannelTable, KernelError, TABLE_WORDS};
use crate::model::{Kernel, MAX_LAYERS, Model};
use crate::planner::{ALIGN, Mode, Plan, Region, plan, scratch_layout};
use crate::quant::Prepared;
use crate::tensor::Rows;

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
    order.sort_unstable_by_key(|&i| ranges[i].start);
    let mut out: [Option<&'s mut [u8]>; N] = core::array::from_fn(|_| None);
    let mut rest = arena;
    let mut consumed = 0;
    for &i in order.iter() {
        let r = &ranges[i];
        if r.is_empty() {
            out[i] = Some(&mut []);
            continue;
        }
        let skip = r.start.checked_sub(consumed)?;
        let (_, tail) = core::mem::take(&mut rest).split_at_mut_checked(skip)?;
        let (mine, tail) = tail.split_at_mut_checked(r.len())?;
        out[i] = Some(mine);
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
    /// Rows that have arrived at the input of layer `i`.
    rows_in: [usize; MAX_LAYERS],
    /// Output rows layer `i` has produced.
    rows_out: [usize; MAX_LAYERS],
    /// Input rows a fully-connected layer `i` has accumulated.
    accumulated: [usize; MAX_LAYERS],
    /// Optional time source for per-layer profiling, and the time spent per layer.
    clock: Option<fn() -> u64>,
    layer_ticks: [u64; MAX_LAYERS],
}

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
            rows_in: [0; MAX_LAYERS],
            rows_out: [0; MAX_LAYERS],
            accumulated: [0; MAX_LAYERS],
            clock: None,
            layer_ticks: [0; MAX_LAYERS],
        };
        for i in 0..model.layers.len() {
            let region = engine.plan.tables[i];
            let table: &mut [[i32; TABLE_WORDS]] = words_mut(
                engine
                    .arena
                    .get_mut(region.range())
                    .ok_or(EngineError::Plan("region outside the arena"))?,
            )?;
            let channels = model.layers[i].weighted_channels();
            for c in 0..channels {
                let q = model
                    .channel_quant(i, c)
                    .ok_or(EngineError::Plan("region outside the arena"))?;
                // |x − zp| ≤ 255 and |w| ≤ 127 bound every accumulator before the bias.
                let bound = model.layers[i].dot_len() as u64 * 255 * 127 + q.bias.unsigned_abs() as u64;
                let prepared =
                    Prepared::with_bound(q.requant, bound).ok_or(EngineError::Plan("invalid requantization"))?;
                let entry = table.get_mut(c).ok_or(EngineError::Plan("region outside the arena"))?;
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
        self.rows_in = [0; MAX_LAYERS];
        self.rows_out = [0; MAX_LAYERS];
        self.accumulated = [0; MAX_LAYERS];
    }

    /// True once every output row has gone to the sink.
    pub fn is_complete(&self) -> bool {
        let n = self.model.layers.len();
        n > 0 && self.rows_out[n - 1] == self.model.output_shape().height as usize
    }

    /// Streams one input row (HWC, `width · channels` values) through the model; output
    /// rows that become ready are passed to `sink(row_index, values)`.
    pub fn push_row<M: Mac>(&mut self, row: &[i8], sink: &mut dyn FnMut(usize, &[i8])) -> Result<(), EngineError> {
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
        if self.rows_in[0] >= shape.height as usize {
            return Err(EngineError::TooManyRows {
                height: shape.height as usize,
            });
        }
        let slot = self.slot(0, self.rows_in[0])?;
        bytemuck::cast_slice_mut::<u8, i8>(
            self.arena
                .get_mut(slot)
                .ok_or(EngineError::Plan("region outside the arena"))?,
        )
        .copy_from_slice(row);
        self.rows_in[0] += 1;
        self.advance::<M>(0, sink)
    }

    /// Streams a whole input map, row by row, with the native MAC backend.
    pub fn run_streaming(&mut self, input: &[i8], sink: &mut dyn FnMut(usize, &[i8])) -> Result<(), EngineError> {
        self.run_streaming_with::<Native>(input, sink)
    }

    /// [`Engine::run_streaming`] with a chosen MAC backend.
    pub fn run_streaming_with<M: Mac>(
        &mut self,
        input: &[i8],
        sink: &mut dyn FnMut(usize, &[i8]),
    ) -> Result<(), EngineError> {
        let shape = self.model.input_shape();
        if input.len() != shape.len() {
            return Err(EngineError::Input {
                expected: shape.len(),
                found: input.len(),
            });
        }
        self.reset();
        for row in input.chunks_exact(shape.row_len()) {
            self.push_row::<M>(row, sink)?;
        }
        Ok(())
    }

    /// Runs layer after layer over whole maps (the reference schedule).
    pub fn run_whole_map<M: Mac>(
        &mut self,
        input: &[i8],
        sink: &mut dyn FnMut(usize, &[i8]),
    ) -> Result<(), EngineError> {
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
        let region = self.plan.tensors[0];
        let dst = self
            .arena
            .get_mut(region.offset..region.offset + input.len())
            .ok_or(EngineError::Plan("region outside the arena"))?;
        bytemuck::cast_slice_mut::<u8, i8>(dst).copy_from_slice(input);
        let n = self.model.layers.len();
        for i in 0..n {
            let info = self.model.layers[i];
            self.rows_in[i] = info.input.height as usize;
            if let Kernel::FullyConnected(_) = info.kernel {
                self.accumulate_fc::<M>(i)?;
                self.compute_row::<M>(i, 0)?;
                continue;
            }
            for oy in 0..info.output.height as usize {
                self.compute_row::<M>(i, oy)?;
            }
        }
        let out = self.model.output_shape();
        for oy in 0..out.height as usize {
            let range = self.output_slot(oy)?;
            let row = self
                .arena
                .get(range)
                .ok_or(EngineError::Plan("region outside the arena"))?;
            sink(oy, bytemuck::cast_slice(row));
        }
        self.rows_out[n - 1] = out.height as usize;
        Ok(())
    }

    /// Byte range of row `y` in the input buffer of layer `i`.
    fn slot(&self, i: usize, y: usize) -> Result<Range<usize>, EngineError> {
        let info = self
            .model
            .layers
            .get(i)
            .ok_or(EngineError::Plan("region outside the arena"))?;
        let len = info.input.row_len();
        let cap = self.plan.ring_rows[i].max(1);
        let start = self.plan.tensors[i].offset + (y % cap) * len;
        Ok(start..start + len)
    }

    /// Byte range of output row `y` of the model.
    fn output_slot(&self, y: usize) -> Result<Range<usize>, EngineError> {
        let out = self.model.output_shape();
        let len = out.row_len();
        let cap = match self.plan.mode {
            Mode::Streaming => 1,
            Mode::WholeMap => out.height as usize,
        };
        let start = self.plan.output.offset + (y % cap) * len;
        Ok(start..start + len)
    }

    /// Produces every output row of layer `i` whose inputs are present, passing each
    /// one on before producing the next (depth first keeps the rings small).
    fn advance<M: Mac>(&mut self, i: usize, sink: &mut dyn FnMut(usize, &[i8])) -> Result<(), EngineError> {
        let info = self.model.layers[i];
        if let Kernel::FullyConnected(_) = info.kernel {
            self.accumulate_fc::<M>(i)?;
            if self.accumulated[i] == info.input.height as usize && self.rows_out[i] == 0 {
                self.compute_row::<M>(i, 0)?;
                self.rows_out[i] = 1;
                self.deliver::<M>(i, 0, sink)?;
            }
            return Ok(());
        }
        while self.rows_out[i] < info.output.height as usize && info.last_input_row(self.rows_out[i]) < self.rows_in[i]
        {
            let oy = self.rows_out[i];
            self.compute_row::<M>(i, oy)?;
            self.rows_out[i] += 1;
            self.deliver::<M>(i, oy, sink)?;
        }
        Ok(())
    }

    fn deliver<M: Mac>(&mut self, i: usize, oy: usize, sink: &mut dyn FnMut(usize, &[i8])) -> Result<(), EngineError> {
        if i + 1 < self.model.layers.len() {
            self.rows_in[i + 1] += 1;
            self.advance::<M>(i + 1, sink)
        } else {
            let range = self.output_slot(oy)?;
            let row = self
                .arena
                .get(range)
                .ok_or(EngineError::Plan("region outside the arena"))?;
            sink(oy, bytemuck::cast_slice(row));
            Ok(())
        }
    }

    /// Adds every arrived, not yet accumulated input row of fully-connected layer `i`.
    fn accumulate_fc<M: Mac>(&mut self, i: usize) -> Result<(), EngineError> {
        let start = self.clock.map(|c| c());
        let r = self.accumulate_fc_untimed::<M>(i);
        if let (Some(clock), Some(start)) = (self.clock, start) {
            self.layer_ticks[i] += clock().wrapping_sub(start);
        }
        r
    }

    fn accumulate_fc_untimed<M: Mac>(&mut self, i: usize) -> Result<(), EngineError> {
        let info = self.model.layers[i];
        let Kernel::FullyConnected(p) = info.kernel else {
            return Err(EngineError::Plan("region outside the arena"));
        };
        let weights = self.model.weights(i);
        let row_len = info.input.row_len();
        if self.accumulated[i] == 0 && self.rows_in[i] > 0 {
            let acc = self
                .arena
                .get_mut(self.plan.accumulators[i].range())
                .ok_or(EngineError::Plan("region outside the arena"))?;
            acc.fill(0);
        }
        while self.accumulated[i] < self.rows_in[i] {
            let y = self.accumulated[i];
            let input = self.slot(i, y)?;
            let [x, acc, scratch] = split_regions(
                self.arena,
                [input, self.plan.accumulators[i].range(), self.plan.scratch[i].range()],
            )
            .ok_or(EngineError::Plan("region outside the arena"))?;
            let acc: &mut [i32] = words_mut(acc)?;
            let cols: &mut [i16] = words_mut(scratch)?;
            let acc = acc
                .get_mut(..p.out_features)
                .ok_or(EngineError::Plan("region outside the arena"))?;
            accumulate::<M>(&p, weights, bytemuck::cast_slice(x), y * row_len, acc, cols)
                .map_err(|error| EngineError::Kernel { layer: i, error })?;
            self.accumulated[i] += 1;
        }
        Ok(())
    }

    /// Computes output row `oy` of layer `i` into the next layer's input buffer (or the
    /// model output).
    fn compute_row<M: Mac>(&mut self, i: usize, oy: usize) -> Result<(), EngineError> {
        let start = self.clock.map(|c| c());
        let r = self.compute_row_untimed::<M>(i, oy);
        if let (Some(clock), Some(start)) = (self.clock, start) {
            self.layer_ticks[i] += clock().wrapping_sub(start);
        }
        r
    }

    fn compute_row_untimed<M: Mac>(&mut self, i: usize, oy: usize) -> Result<(), EngineError> {
        let info = self.model.layers[i];
        let n = self.model.layers.len();
        let dest = if i + 1 < n {
            self.slot(i + 1, oy)?
        } else {
            self.output_slot(oy)?
        };
        let input_region = self.plan.tensors[i];
        let table_region: Region = self.plan.tables[i];
        let [input, out, scratch, table, acc] = split_regions(
            self.arena,
            [
                input_region.range(),
                dest,
                self.plan.scratch[i].range(),
                table_region.range(),
                self.plan.accumulators[i].range(),
            ],
        )
        .ok_or(EngineError::Plan("region outside the arena"))?;
        let out: &mut [i8] = bytemuck::cast_slice_mut(out);
        let rows_data: &[i8] = bytemuck::cast_slice(input);
        let rows = Rows::new(rows_data, info.input.row_len(), self.plan.ring_rows[i].max(1))
            .ok_or(EngineError::Plan("region outside the arena"))?;
        let table = ChannelTable(words(table)?);
        let weights = self.model.weights(i);
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
            Kernel::Softmax { params, depth } => softmax(&params, depth, rows.row(oy), out).map_err(kernel_err),
            Kernel::FullyConnected(p) => {
                let acc: &[i32] = words(acc)?;
                finish(
                    &p,
                    &table,
                    acc.get(..p.out_features)
                        .ok_or(EngineError::Plan("region outside the arena"))?,
                    out,
                )
                .map_err(kernel_err)
            }
        }
    }
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
