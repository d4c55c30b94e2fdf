//! The thermography simulator: physics ([`solver`] on a [`grid`], stepped by
//! [`schedule`]), the scene a specimen file describes ([`scene`]) and the camera that
//! records it ([`camera`]).

pub mod camera;
pub mod grid;
pub mod scene;
pub mod schedule;
pub mod solver;

#[cfg(test)]
mod analytic;
