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

    /// Conductance of the link from node `j` to `j + 1` (W/m²K): the material's, in series
    /// with a delamination's gap if one cuts this link.
    fn conductance_z(&self, j: usize, grid: &ZGrid, th: &Thermal) -> f64 {
        let r = grid.dz(j) / self.link(j, th).k_z + self.gap.filter(|&(link, _)| link == j).map_or(0.0, |(_, r)| r);
        1.0 / r
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
    /// The coefficients of the scheme, per node and fixed for a plate, computed once: what
    /// a step spends its time on is then the update itself. Same index as `theta`.
    /// Heat capacity of node `j`'s control volume (J/m²K).
    capacity: Vec<f64>,
    /// Conductance of the through-thickness link from node `j` to `j + 1` (W/m²K).
    link_z: Vec<f64>,
    /// In-plane conductance (W/m³K, per unit plate area) between node `j` of a column and
    /// node `j` of its neighbour at `x + 1` (`link_x`) or `y + 1` (`link_y`); zero where
    /// either column ends above `j` or there is no neighbour. Exchange is symmetric, so
    /// each pair is stored once.
    link_x: Vec<f64>,
    link_y: Vec<f64>,
    /// Highest in-plane diffusivity of the plate's materials (m²/s): the stability limit.
    alpha_xy: f64,
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
        let th = thermal;
        let (mut capacity, mut link_z) = (vec![0.0; nx * ny * nz], vec![0.0; nx * ny * nz]);
        let (mut link_x, mut link_y) = (vec![0.0; nx * ny * nz], vec![0.0; nx * ny * nz]);
        let (gx, gy) = (1.0 / (dx * dx), 1.0 / (dy * dy));
        for (p, c) in columns.iter().enumerate() {
            let (x, y) = (p % nx, p / nx);
            let node = p * nz;
            for j in 0..=c.last {
                capacity[node + j] = c.capacity(j, &grid, &th);
                if j < c.last {
                    link_z[node + j] = c.conductance_z(j, &grid, &th);
                }
                if x + 1 < nx {
                    link_x[node + j] = lateral_conductance(c, &columns[p + 1], j, gx, &grid, &th);
                }
                if y + 1 < ny {
                    link_y[node + j] = lateral_conductance(c, &columns[p + nx], j, gy, &grid, &th);
                }
            }
        }
        let alpha_xy = columns
            .iter()
            .filter_map(|c| c.layer)
            .map(|l| l.k / l.rho_c)
            .fold(th.k_xy / th.rho_c, f64::max);
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
            capacity,
            link_z,
            link_x,
            link_y,
            alpha_xy,
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
        let th = self.thermal;
        let (capacity, link_z) = (&self.capacity, &self.link_z);
        self.theta
            .par_chunks_mut(nz)
            .zip(self.columns.par_iter())
            .zip(capacity.par_chunks(nz).zip(link_z.par_chunks(nz)))
            .for_each(|((col, c), (cap, g))| {
                step_column(col, c, cap, g, &th, dt, w, flux);
            });
        self.cell_updates += (self.nx * self.ny * nz) as u64;
        self.lateral(dt);
    }

    /// In-plane conduction over `dt`, explicit, sub-stepped for stability.
    fn lateral(&mut self, dt: f64) {
        if self.nx * self.ny == 1 || self.thermal.k_xy == 0.0 {
            return;
        }
        let mut rate = 0.0;
        if self.nx > 1 {
            rate += 2.0 * self.alpha_xy / (self.dx * self.dx);
        }
        if self.ny > 1 {
            rate += 2.0 * self.alpha_xy / (self.dy * self.dy);
        }
        let substeps = ((dt * rate / 0.9).ceil() as usize).max(1);
        let h = dt / substeps as f64;
        let (nx, ny, nz) = (self.nx, self.ny, self.grid.nodes());
        // A missing neighbour is read as one at the same temperature behind no conductance:
        // the update then has no branch per node.
        let none = [0.0; MAX_NODES];
        for _ in 0..substeps {
            let theta = &self.theta;
            let (columns, capacity) = (&self.columns, &self.capacity);
            let (link_x, link_y) = (&self.link_x, &self.link_y);
            self.next.par_chunks_mut(nx * nz).enumerate().for_each(|(y, row)| {
                for (x, out) in row.chunks_exact_mut(nz).enumerate() {
                    let p = y * nx + x;
                    let n = columns[p].last + 1;
                    let at = |q: usize| q * nz..q * nz + n;
                    let here = &theta[at(p)];
                    let zero = &none[..n];
                    let (gl, tl) = if x > 0 {
                        (&link_x[at(p - 1)], &theta[at(p - 1)])
                    } else {
                        (zero, here)
                    };
                    let (gr, tr) = if x + 1 < nx {
                        (&link_x[at(p)], &theta[at(p + 1)])
                    } else {
                        (zero, here)
                    };
                    let (gu, tu) = if y > 0 {
                        (&link_y[at(p - nx)], &theta[at(p - nx)])
                    } else {
                        (zero, here)
                    };
                    let (gd, td) = if y + 1 < ny {
                        (&link_y[at(p)], &theta[at(p + nx)])
                    } else {
                        (zero, here)
                    };
                    let cap = &capacity[at(p)];
                    // Neighbours in a fixed order (−x, +x, −y, +y): the sum, and so the
                    // result, does not depend on how rows are spread over threads.
                    for j in 0..n {
                        let t = here[j];
                        let flow =
                            gl[j] * (tl[j] - t) + gr[j] * (tr[j] - t) + gu[j] * (tu[j] - t) + gd[j] * (td[j] - t);
                        out[j] = t + h * flow / cap[j];
                    }
                    out[n..].copy_from_slice(&theta[p * nz + n..(p + 1) * nz]);
                }
            });
            std::mem::swap(&mut self.theta, &mut self.next);
            self.cell_updates += (nx * ny * nz) as u64;
        }
    }
}

/// In-plane conductance between node `j` of column `a` and node `j` of its neighbour `b`
/// (`g` is 1/spacing²), zero if either ends above `j`. Exchange happens over the depth
/// both control volumes share; with foreign material, the upper and lower halves apart,
/// each the series conductance of the two columns' materials.
fn lateral_conductance(a: &Column, b: &Column, j: usize, g: f64, grid: &ZGrid, th: &Thermal) -> f64 {
    if j > a.last || j > b.last {
        return 0.0;
    }
    let (top, bottom_a) = grid.control_volume(j, a.last);
    let (_, bottom_b) = grid.control_volume(j, b.last);
    let bottom = bottom_a.min(bottom_b);
    let kh = if a.layer.is_none() && b.layer.is_none() {
        th.k_xy * (bottom - top)
    } else {
        let z = grid.z[j];
        let series = |p: f64, q: f64| 2.0 * p * q / (p + q);
        let upper = if j > 0 {
            series(a.link(j - 1, th).k_xy, b.link(j - 1, th).k_xy) * (z - top)
        } else {
            0.0
        };
        upper + series(a.link(j, th).k_xy, b.link(j, th).k_xy) * (bottom - z)
    };
    g * kh
}

/// One θ-scheme step of one column, in place, from its capacities and link conductances.
#[allow(clippy::too_many_arguments)]
fn step_column(col: &mut [f64], c: &Column, capacity: &[f64], g: &[f64], th: &Thermal, dt: f64, w: f64, flux: f64) {
    let n = c.last;
    let full = n == col.len() - 1;
    let mut cap = [0.0; MAX_NODES];
    for j in 0..=n {
        cap[j] = capacity[j] / dt;
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

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::grid::GridSpec;

    /// The scheme as written before its coefficients were cached: every coefficient
    /// computed where it is used, one node at a time, single-threaded. The oracle the
    /// cached, parallel solver must equal bit for bit.
    struct Reference<'a> {
        nx: usize,
        ny: usize,
        dx: f64,
        dy: f64,
        grid: &'a ZGrid,
        columns: &'a [Column],
        th: Thermal,
    }

    impl Reference<'_> {
        fn step(&self, theta: &mut Vec<f64>, dt: f64, w: f64, flux: f64) {
            let nz = self.grid.nodes();
            for (col, c) in theta.chunks_mut(nz).zip(self.columns) {
                let capacity: Vec<f64> = (0..nz)
                    .map(|j| {
                        if j <= c.last {
                            c.capacity(j, self.grid, &self.th)
                        } else {
                            0.0
                        }
                    })
                    .collect();
                let g: Vec<f64> = (0..nz)
                    .map(|j| {
                        if j < c.last {
                            let r = self.grid.dz(j) / c.link(j, &self.th).k_z
                                + c.gap.filter(|&(link, _)| link == j).map_or(0.0, |(_, r)| r);
                            1.0 / r
                        } else {
                            0.0
                        }
                    })
                    .collect();
                step_column(col, c, &capacity, &g, &self.th, dt, w, flux);
            }
            self.lateral(theta, dt);
        }

        fn lateral(&self, theta: &mut Vec<f64>, dt: f64) {
            let (nx, ny, nz, th) = (self.nx, self.ny, self.grid.nodes(), self.th);
            let alpha = self
                .columns
                .iter()
                .filter_map(|c| c.layer)
                .map(|l| l.k / l.rho_c)
                .fold(th.k_xy / th.rho_c, f64::max);
            let rate = 2.0 * alpha / (self.dx * self.dx) + 2.0 * alpha / (self.dy * self.dy);
            let substeps = ((dt * rate / 0.9).ceil() as usize).max(1);
            let h = dt / substeps as f64;
            let (gx, gy) = (1.0 / (self.dx * self.dx), 1.0 / (self.dy * self.dy));
            for _ in 0..substeps {
                let mut next = theta.clone();
                for y in 0..ny {
                    for x in 0..nx {
                        let p = y * nx + x;
                        let cp = self.columns[p];
                        let mut neighbours = Vec::new();
                        if x > 0 {
                            neighbours.push((p - 1, gx));
                        }
                        if x + 1 < nx {
                            neighbours.push((p + 1, gx));
                        }
                        if y > 0 {
                            neighbours.push((p - nx, gy));
                        }
                        if y + 1 < ny {
                            neighbours.push((p + nx, gy));
                        }
                        for j in 0..=cp.last {
                            let (top, bottom) = self.grid.control_volume(j, cp.last);
                            let cap = cp.capacity(j, self.grid, &th);
                            let mut flow = 0.0;
                            for &(q, g) in &neighbours {
                                let cq = self.columns[q];
                                if j > cq.last {
                                    continue;
                                }
                                let (_, bq) = self.grid.control_volume(j, cq.last);
                                let kh = if cp.layer.is_none() && cq.layer.is_none() {
                                    th.k_xy * (bottom.min(bq) - top)
                                } else {
                                    let z = self.grid.z[j];
                                    let series = |a: f64, b: f64| 2.0 * a * b / (a + b);
                                    let upper = if j > 0 {
                                        series(cp.link(j - 1, &th).k_xy, cq.link(j - 1, &th).k_xy) * (z - top)
                                    } else {
                                        0.0
                                    };
                                    upper + series(cp.link(j, &th).k_xy, cq.link(j, &th).k_xy) * (bottom.min(bq) - z)
                                };
                                flow += g * kh * (theta[q * nz + j] - theta[p * nz + j]);
                            }
                            next[p * nz + j] = theta[p * nz + j] + h * flow / cap;
                        }
                    }
                }
                *theta = next;
            }
        }
    }

    /// The analytic tests' GFRP, with a lossy rear face so that term is exercised too.
    const GFRP: Thermal = Thermal {
        h_rear: 10.0,
        ..crate::analytic::GFRP
    };

    /// A random plate: holes of random depth, delaminations, conducting and insulating
    /// layers, a non-uniform flux.
    fn random_plate(rng: &mut ChaCha8Rng, nx: usize, ny: usize) -> (ZGrid, Vec<Column>) {
        let l = 0.004;
        let grid = ZGrid::new(l, GridSpec::for_thickness(l), &[0.001, 0.002, 0.003]);
        let nz = grid.nodes();
        let columns = (0..nx * ny)
            .map(|_| {
                let last = if rng.random_bool(0.2) {
                    rng.random_range(2..nz - 1)
                } else {
                    nz - 1
                };
                let gap = rng
                    .random_bool(0.15)
                    .then(|| (rng.random_range(0..last), 1e-3 * rng.random::<f64>()));
                let layer = rng.random_bool(0.2).then(|| {
                    let top = rng.random_range(0..last - 1);
                    let bottom = rng.random_range(top + 1..=last);
                    let (k, rho_c) = if rng.random_bool(0.5) {
                        (45.0, 3.8e6)
                    } else {
                        (0.25, 2.2e6)
                    };
                    Layer { top, bottom, k, rho_c }
                });
                Column {
                    last,
                    gap,
                    layer,
                    absorbed: 0.5 + rng.random::<f64>(),
                    h_front: 5.0 + 10.0 * rng.random::<f64>(),
                }
            })
            .collect();
        (grid, columns)
    }

    #[test]
    fn cached_parallel_solver_equals_the_per_node_scheme_bit_for_bit() {
        for seed in 0..6 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let (nx, ny) = (rng.random_range(2..9), rng.random_range(2..7));
            let (dx, dy) = (1e-3 * (0.5 + rng.random::<f64>()), 1e-3 * (0.5 + rng.random::<f64>()));
            let (grid, columns) = random_plate(&mut rng, nx, ny);
            let mut solver = Solver::new(nx, ny, dx, dy, grid.clone(), columns.clone(), GFRP).unwrap();
            let reference = Reference {
                nx,
                ny,
                dx,
                dy,
                grid: &grid,
                columns: &columns,
                th: GFRP,
            };
            let mut theta = vec![0.0; nx * ny * grid.nodes()];
            // Heating with backward Euler first, then Crank–Nicolson, then cooling.
            let steps = [(0.05, 1.0, 3000.0); 4]
                .into_iter()
                .chain([(0.1, 0.5, 3000.0); 10])
                .chain([(0.2, 1.0, 0.0); 2])
                .chain([(0.4, 0.5, 0.0); 10]);
            for (dt, w, flux) in steps {
                solver.step(dt, w, flux);
                reference.step(&mut theta, dt, w, flux);
            }
            assert!(theta.iter().any(|&t| t > 0.0));
            let same = solver.theta.iter().zip(&theta).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "seed {seed}: the cached solver departs from the per-node scheme");
        }
    }
}
