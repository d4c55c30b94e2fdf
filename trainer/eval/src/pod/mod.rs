//! Qualification the way NDT does it: hit/miss probability of detection against defect
//! size ([`fit`]), false calls with intervals, and a study of many plates ([`study`]).

pub mod fit;
pub mod study;

pub use fit::{FitError, HitMiss, PodFit, clopper_pearson, fit, poisson_rate_interval};
pub use study::{PlateOutcome, PodReport, summarize};
