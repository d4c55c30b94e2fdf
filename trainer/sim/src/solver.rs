//! 3-D transient heat conduction in an anisotropic plate: finite volumes, one column of
//! nodes per camera pixel.
//!
//! Scheme (operator splitting per time step):
//! - through the thickness, θ-scheme per column (Crank–Nicolson, θ = ½, second order;
//!   backward Euler, θ = 1, for the first steps after a change of heating, which damps
//!   Crank–Nicolson's oscillation at discontinuities), solved exactly with the Thomas
//!   algorithm: unconditionally stable on the graded grid;
//! - in the plane, explicit, sub-stepped below its stability limit (in-plane diffusion is
//!   slow against a pixel, so few sub-steps are needed; conductive parts get more).
//!
//! Temperatures are rises θ = T − T_ambient, which keeps everything linear: losses at both
//! faces are `h·θ` (convection plus radiation linearized at ambient).
//!
//! Defects: a flat-bottom hole ends its column at the hole-bottom node (adiabatic), and
//! in-plane exchange between columns happens only over the depth both columns share, so
//! no heat crosses a hole wall. A delamination adds the resistance of its air gap to the
//! one through-thickness link it cuts. An inclusion gives the links between two nodes of
//! a column its own conductivity and heat capacity (through the thickness and in the
//! plane; lateral exchange across its rim takes the harmonic mean, the series
//! conductance of the two halves). Surface defects change a column's absorbed flux and
//! emissivity.

use rayon::prelude::*;

use super::grid::ZGrid;

/// Longest column the solver handles (stack scratch per column).
pub const MAX_NODES: usize = 160;

/// Thermal conductivity of still air, for delamination gaps.
pub const K_AIR: f64 = 0.026;

/// One lateral cell (camera pixel) of the plate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Column {
    /// Last material node: the rear face, or a hole bottom.
    pub last: usize,
    /// A delamination: the link (between nodes `j` and `j + 1`) it cuts and the thermal
    /// resistance of its gap (m²K/W).
    pub gap: Option<(usize, f64)>,
    /// A layer of foreign material between two nodes.
    pub layer: Option<Layer>,
    /// Fraction of the nominal lamp flux absorbed here (absorptivity × lamp profile).
    pub absorbed: f64,
    /// Loss coefficient of the inspected face (W/m²K).
    pub h_front: f64,
}

/// Foreign material filling the links from node `top` to node `bottom` of a column.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Layer {
    pub top: usize,
    pub bottom: usize,
    pub k: f64,
    pub rho_c: f64,
}

/// The material of one link (node `j` to `j + 1`): (k_z, k_xy, ρc).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Link {
    k_z: f64,
    k_xy: f64,
    rho_c: f64,
}

impl Column {
    fn link(&self, j: usize, th: &Thermal) -> Link {
        match self.layer {
            Some(l) if l.top <= j && j < l.bottom => Link {
                k_z: l.k,
                k_xy: l.k,
                rho_c: l.rho_c,
            },
            _ => Link {
                k_z: th.k_z,
                k_xy: th.k_xy,
                rho_c: th.rho_c,
            },
        }
    }

    /// Heat capacity per unit area of node `j`'s control volume (J/m²K): its upper half
    /// lies in link `j − 1`, its lower half in link `j`.
    fn capacity(&self, j: usize, grid: &ZGrid, th: &Thermal) -> f64 {
        let (top, bottom) = grid.control_volume(j, self.last);
        if self.layer.is_none() {
            return th.rho_c * (bottom - top);
        }
        let z = grid.z[j];
        let upper = if j > 0 {
            self.link(j - 1, th).rho_c * (z - top)
        } else {
            0.0
        };
        upper + self.link(j, th).rho_c * (bottom - z)
    }
}

/// Material constants.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Thermal {
    /// Volumetric heat capacity ρ·c (J/m³K).
    pub rho_c: f64,
    pub k_z: f64,
    pub k_xy: f64,
    /// Loss coefficient of the rear face (W/m²K); hole bottoms are adiabatic.
    pub h_rear: f64,
}

pub struct Solver {
    nx: usize,
    ny: usize,
    dx: f64,
    dy: f64,
    grid: ZGrid,
    columns: Vec<Column>,
    thermal: Thermal,
    /// θ per node, column-contiguous: index `(y·nx + x)·nz + j`.
    theta: Vec<f64>,
    next: Vec<f64>,
    /// Node updates performed so far (for the cells-per-second figure).
    pub cell_updates: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SolverError {
    #[error("grid has {0} nodes through the thickness, more than {MAX_NODES}")]
    TooManyNodes(usize),
    #[error("{0} columns given for a {1} × {2} grid")]
    Columns(usize, usize, usize),
    #[error("column {0} ends at node {1}, beyond the grid")]
    ColumnEnd(usize, usize),
    #[error("column {0} has a layer from node {1} to {2}, outside its nodes")]
    Layer(usize, usize, usize),
}

impl Solver {
    pub fn new(
        nx: usize,
        ny: usize,
        dx: f64,
        dy: f64,
        grid: ZGrid,
        columns: Vec<Column>,
        thermal: Thermal,
    ) -> Result<Self, SolverError> {
        let nz = grid.nodes();
        if nz > MAX_NODES {
            return Err(SolverError::TooManyNodes(nz));
        }
        if columns.len() != nx * ny {
            return Err(SolverError::Columns(columns.len(), nx, ny));
        }
        if let Some((i, c)) = columns.iter().enumerate().find(|(_, c)| c.last >= nz || c.last == 0) {
            return Err(SolverError::ColumnEnd(i, c.last));
        }
        for (i, c) in columns.iter().enumerate() {
            if let Some(l) = c.layer
                && (l.top >= l.bottom || l.bottom > c.last)
            {
                return Err(SolverError::Layer(i, l.top, l.bottom));
            }
        }
        Ok(Solver {
            nx,
            ny,
            dx,
            dy,
            grid,
            columns,
            thermal,
            theta: vec![0.0; nx * ny * nz],
            next: vec![0.0; nx * ny * nz],
            cell_updates: 0,
        })
    }

    pub fn grid(&self) -> &ZGrid {
        &self.grid
    }

    /// Surface temperature rises, row-major `y·nx + x`.
    pub fn surface_into(&self, out: &mut [f64]) {
        let nz = self.grid.nodes();
        for (o, col) in out.iter_mut().zip(self.theta.chunks_exact(nz)) {
            *o = col[0];
        }
    }

    /// Rise of node `j` of column `(x, y)`.
    pub fn theta(&self, x: usize, y: usize, j: usize) -> f64 {
        self.theta[(y * self.nx + x) * self.grid.nodes() + j]
    }

    /// Heat stored per unit area in column `(x, y)` (J/m²), for energy checks.
    pub fn stored_energy(&self, x: usize, y: usize) -> f64 {
        let nz = self.grid.nodes();
        let c = &self.columns[y * self.nx + x];
        let col = &self.theta[(y * self.nx + x) * nz..(y * self.nx + x + 1) * nz];
        (0..=c.last)
            .map(|j| c.capacity(j, &self.grid, &self.thermal) * col[j])
            .sum()
    }

    /// Advances by `dt` seconds under a nominal front flux `flux` (W/m², constant over
    /// the step), with implicitness `w` through the thickness (½ Crank–Nicolson, 1
    /// backward Euler).
    pub fn step(&mut self, dt: f64, w: f64, flux: f64) {
        let nz = self.grid.nodes();
        let grid = &self.grid;
        let th = self.thermal;
        self.theta
            .par_chunks_mut(nz)
            .zip(self.columns.par_iter())
            .for_each(|(col, c)| {
                step_column(col, c, grid, &th, dt, w, flux);
            });
        self.cell_updates += (self.nx * self.ny * nz) as u64;
        self.lateral(dt);
    }

    /// In-plane conduction over `dt`, explicit, sub-stepped for stability.
    fn lateral(&mut self, dt: f64) {
        if self.nx * self.ny == 1 || self.thermal.k_xy == 0.0 {
            return;
        }
        // The stability limit is set by the most diffusive material present.
        let alpha = self
            .columns
            .iter()
            .filter_map(|c| c.layer)
            .map(|l| l.k / l.rho_c)
            .fold(self.thermal.k_xy / self.thermal.rho_c, f64::max);
        let mut rate = 0.0;
        if self.nx > 1 {
            rate += 2.0 * alpha / (self.dx * self.dx);
        }
        if self.ny > 1 {
            rate += 2.0 * alpha / (self.dy * self.dy);
        }
        let substeps = ((dt * rate / 0.9).ceil() as usize).max(1);
        let h = dt / substeps as f64;
        let (nx, ny, nz) = (self.nx, self.ny, self.grid.nodes());
        let (gx, gy) = (1.0 / (self.dx * self.dx), 1.0 / (self.dy * self.dy));
        let th = self.thermal;
        for _ in 0..substeps {
            let theta = &self.theta;
            let columns = &self.columns;
            let grid = &self.grid;
            self.next.par_chunks_mut(nx * nz).enumerate().for_each(|(y, row)| {
                for x in 0..nx {
                    let p = y * nx + x;
                    let cp = columns[p];
                    let out = &mut row[x * nz..(x + 1) * nz];
                    let here = &theta[p * nz..(p + 1) * nz];
                    out.copy_from_slice(here);
                    let mut neighbours = [(usize::MAX, 0.0); 4];
                    if x > 0 {
                        neighbours[0] = (p - 1, gx);
                    }
                    if x + 1 < nx {
                        neighbours[1] = (p + 1, gx);
                    }
                    if y > 0 {
                        neighbours[2] = (p - nx, gy);
                    }
                    if y + 1 < ny {
                        neighbours[3] = (p + nx, gy);
                    }
                    for j in 0..=cp.last {
                        let (top, bottom) = grid.control_volume(j, cp.last);
                        let cap = cp.capacity(j, grid, &th);
                        let mut flow = 0.0;
                        for &(q, g) in &neighbours {
                            if q == usize::MAX {
                                continue;
                            }
                            let cq = columns[q];
                            if j > cq.last {
                                continue;
                            }
                            // Exchange over the depth both control volumes share.
                            let (_, bq) = grid.control_volume(j, cq.last);
                            let kh = if cp.layer.is_none() && cq.layer.is_none() {
                                th.k_xy * (bottom.min(bq) - top)
                            } else {
                                // Upper and lower halves apart, each the series
                                // conductance of the two columns' materials.
                                let z = grid.z[j];
                                let series = |a: f64, b: f64| 2.0 * a * b / (a + b);
                                let upper = if j > 0 {
                                    series(cp.link(j - 1, &th).k_xy, cq.link(j - 1, &th).k_xy) * (z - top)
                                } else {
                                    0.0
                                };
                                upper + series(cp.link(j, &th).k_xy, cq.link(j, &th).k_xy) * (bottom.min(bq) - z)
                            };
                            flow += g * kh * (theta[q * nz + j] - here[j]);
                        }
                        out[j] = here[j] + h * flow / cap;
                    }
                }
            });
            std::mem::swap(&mut self.theta, &mut self.next);
            self.cell_updates += (nx * ny * nz) as u64;
        }
    }
}

/// One θ-scheme step of one column, in place.
fn step_column(col: &mut [f64], c: &Column, grid: &ZGrid, th: &Thermal, dt: f64, w: f64, flux: f64) {
    let n = c.last;
    let full = n == grid.nodes() - 1;
    let mut cap = [0.0; MAX_NODES];
    let mut g = [0.0; MAX_NODES];
    for j in 0..=n {
        cap[j] = c.capacity(j, grid, th) / dt;
        if j < n {
            let r = grid.dz(j) / c.link(j, th).k_z + c.gap.filter(|&(link, _)| link == j).map_or(0.0, |(_, r)| r);
            g[j] = 1.0 / r;
        }
    }
    let loss = |j: usize| -> f64 {
        let mut l = 0.0;
        if j == 0 {
            l += c.h_front;
        }
        if j == n && full {
            l += th.h_rear;
        }
        l
    };
    // Tridiagonal system a·θ'[j−1] + b·θ'[j] + e·θ'[j+1] = d, solved by Thomas.
    let mut cprime = [0.0; MAX_NODES];
    let mut dprime = [0.0; MAX_NODES];
    for j in 0..=n {
        let gl = if j > 0 { g[j - 1] } else { 0.0 };
        let gr = if j < n { g[j] } else { 0.0 };
        let (left, right) = (
            if j > 0 { col[j - 1] } else { 0.0 },
            if j < n { col[j + 1] } else { 0.0 },
        );
        let explicit = gl * (left - col[j]) + gr * (right - col[j]) - loss(j) * col[j];
        let source = if j == 0 { c.absorbed * flux } else { 0.0 };
        let d = cap[j] * col[j] + (1.0 - w) * explicit + source;
        let a = -w * gl;
        let b = cap[j] + w * (gl + gr + loss(j));
        let e = -w * gr;
        let denom = b - a * if j > 0 { cprime[j - 1] } else { 0.0 };
        cprime[j] = e / denom;
        dprime[j] = (d - a * if j > 0 { dprime[j - 1] } else { 0.0 }) / denom;
    }
    col[n] = dprime[n];
    for j in (0..n).rev() {
        col[j] = dprime[j] - cprime[j] * col[j + 1];
    }
}
