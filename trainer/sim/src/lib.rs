//! The thermography simulator: physics ([`solver`] on a [`grid`], stepped by
//! [`schedule`]), the scene a specimen file describes and its ground truth ([`scene`]),
//! the camera that records it ([`camera`]), whole recordings written to a folder
//! ([`simulate`]) and datasets of many varied plates ([`dataset`]).

pub mod camera;
pub mod dataset;
pub mod grid;
pub mod scene;
pub mod schedule;
pub mod seeds;
pub mod simulate;
pub mod solver;

#[cfg(test)]
mod analytic;

use std::path::PathBuf;

pub use simulate::{WallClock, simulate_to_dir};

/// Why a simulation or a dataset could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(transparent)]
    Solver(#[from] solver::SolverError),
    #[error(transparent)]
    Write(#[from] tqc_data::io::WriteError),
    #[error(transparent)]
    Specimen(#[from] tqc_data::specimen::SpecimenError),
    #[error(transparent)]
    Index(#[from] tqc_data::index::IndexError),
    #[error("cannot create {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("plate {plate}")]
    Plate {
        plate: usize,
        #[source]
        source: Box<SimError>,
    },
}
