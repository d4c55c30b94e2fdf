//! The files ThermoQC's host tools hand to one another, as types that both the writer and
//! the reader use: specimens ([`specimen`]), recording folders ([`sequence`] reads the
//! frames, [`recording`] the simulator's `meta.json`), the dataset index ([`index`]), the
//! host twin's verdict file ([`verdict`]), the per-pixel classes ([`Class`]), and the one
//! way files are written ([`io`]: through a `.partial` sibling renamed when complete).

pub mod class;
pub mod index;
pub mod io;
pub mod recording;
pub mod sequence;
pub mod specimen;
pub mod verdict;

pub use class::Class;
pub use index::{DatasetIndex, PlateEntry, Split};
pub use recording::RecordingMeta;
pub use sequence::{ReadOptions, Sequence, SequenceError};
pub use specimen::Specimen;
pub use verdict::VerdictFile;
