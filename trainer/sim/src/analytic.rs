//! The solver against closed-form solutions (errors stated in the assertions), and a
//! grid-refinement study.

use super::grid::{GridSpec, ZGrid};
use super::schedule::{Pulse, Stepper};
use super::solver::{Column, Layer, Solver, Thermal};

/// GFRP through the thickness: k = 0.35 W/mK, ρc = 1900 · 1100 J/m³K.
pub(crate) const GFRP: Thermal = Thermal {
    rho_c: 1900.0 * 1100.0,
    k_z: 0.35,
    k_xy: 0.75,
    h_rear: 0.0,
};

fn effusivity(t: &Thermal) -> f64 {
    (t.k_z * t.rho_c).sqrt()
}

fn column_solver(thickness: f64, spec: GridSpec) -> Solver {
    let grid = ZGrid::new(thickness, spec, &[]);
    let last = grid.nodes() - 1;
    let col = Column {
        last,
        gap: None,
        layer: None,
        absorbed: 1.0,
        h_front: 0.0,
    };
    Solver::new(1, 1, 1e-3, 1e-3, grid, vec![col], GFRP).unwrap()
}

/// Largest relative error of the surface rise against `exact` at `times`.
fn max_error(solver: &mut Solver, stepper: &mut Stepper, times: &[f64], exact: impl Fn(f64) -> f64) -> f64 {
    let mut worst: f64 = 0.0;
    let mut s = [0.0];
    for &t in times {
        stepper.advance(solver, t);
        solver.surface_into(&mut s);
        worst = worst.max((s[0] - exact(t)).abs() / exact(t));
    }
    worst
}

fn log_times(from: f64, to: f64, n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| from * (to / from).powf(i as f64 / (n - 1) as f64))
        .collect()
}

/// Constant absorbed flux on a thick plate: ΔT = 2q√t / (e√π) while the heat has not
/// reached the rear face (30 mm of GFRP, up to 120 s: diffusion length 4.5 mm).
#[test]
fn constant_flux_on_a_thick_plate() {
    let q = 1000.0;
    let mut solver = column_solver(0.03, GridSpec::for_thickness(0.03));
    let mut stepper = Stepper::new(
        Pulse {
            flux_w_m2: q,
            duration_s: 1e9,
        },
        1.0,
    );
    let e = effusivity(&GFRP);
    let err = max_error(&mut solver, &mut stepper, &log_times(0.5, 120.0, 40), |t| {
        2.0 * q * t.sqrt() / (e * std::f64::consts::PI.sqrt())
    });
    assert!(err < 0.01, "constant flux: max relative error {:.3} %", err * 100.0);
    eprintln!("constant flux, 0.5–120 s: max relative error {:.3} %", err * 100.0);
}

/// Dirac pulse on an adiabatic slab: T = Q/(e√(πt)) · [1 + 2 Σ exp(−n²L²/(αt))], from the
/// semi-infinite regime to the plateau Q/(ρcL).
fn dirac_slab_error(spec: GridSpec, step_scale: f64) -> f64 {
    let (l, energy, tau) = (0.003, 10_000.0, 2e-4);
    let mut solver = column_solver(l, spec);
    let mut stepper = Stepper::new(
        Pulse {
            flux_w_m2: energy / tau,
            duration_s: tau,
        },
        1.0,
    )
    .scaled(step_scale);
    let e = effusivity(&GFRP);
    let alpha = GFRP.k_z / GFRP.rho_c;
    let exact = |t: f64| {
        let series: f64 = (1..200).map(|n| (-((n * n) as f64) * l * l / (alpha * t)).exp()).sum();
        energy / (e * (std::f64::consts::PI * t).sqrt()) * (1.0 + 2.0 * series)
    };
    // From 500 pulse lengths on (the finite pulse then differs from a Dirac by < 0.05 %)
    // to 4 L²/α, well into the plateau.
    max_error(
        &mut solver,
        &mut stepper,
        &log_times(0.1, 4.0 * l * l / alpha, 50),
        exact,
    )
}

#[test]
fn dirac_pulse_on_an_adiabatic_slab() {
    let err = dirac_slab_error(GridSpec::for_thickness(0.003), 1.0);
    eprintln!(
        "Dirac pulse on a slab, 0.1 s – 4L²/α: max relative error {:.3} %",
        err * 100.0
    );
    assert!(err < 0.01, "Dirac slab: max relative error {:.3} %", err * 100.0);
}

/// Halving every grid spacing and time step shrinks the error each time.
#[test]
fn refinement_converges() {
    let base = GridSpec::for_thickness(0.003);
    let errors: Vec<f64> = [0.5, 1.0, 2.0]
        .iter()
        .map(|&f| dirac_slab_error(base.refined(f), 1.0 / f))
        .collect();
    eprintln!(
        "refinement ×0.5, ×1, ×2: {:?} %",
        errors.iter().map(|e| e * 100.0).collect::<Vec<_>>()
    );
    assert!(errors[0] > errors[1] && errors[1] > errors[2], "errors {errors:?}");
    assert!(errors[1] / errors[2] > 1.8, "order of convergence too low: {errors:?}");
}

/// Without losses every joule absorbed stays in the plate, holes and gaps included.
#[test]
fn energy_is_conserved_in_3d() {
    let l = 0.004;
    let grid = ZGrid::new(l, GridSpec::for_thickness(l), &[0.001, 0.002]);
    let (nx, ny) = (6, 5);
    let hole = grid.node_at(0.001);
    let gap_link = grid.node_at(0.002);
    let mut cols = vec![
        Column {
            last: grid.nodes() - 1,
            gap: None,
            layer: None,
            absorbed: 0.9,
            h_front: 0.0
        };
        nx * ny
    ];
    cols[2 * nx + 2].last = hole;
    cols[3 * nx + 4].gap = Some((gap_link, 0.1e-3 / super::solver::K_AIR));
    // A steel shim and a PTFE insert: more diffusive than the plate and less.
    let (top, bottom) = (grid.node_at(0.0015), grid.node_at(0.002));
    cols[4 * nx + 1].layer = Some(Layer {
        top,
        bottom,
        k: 45.0,
        rho_c: 3.8e6,
    });
    cols[4 * nx + 2].layer = Some(Layer {
        top,
        bottom,
        k: 45.0,
        rho_c: 3.8e6,
    });
    cols[nx + 4].layer = Some(Layer {
        top,
        bottom,
        k: 0.25,
        rho_c: 2.2e6,
    });
    cols[0].absorbed = 1.0;
    let (dx, dy) = (1e-3, 1.5e-3);
    let mut solver = Solver::new(nx, ny, dx, dy, grid, cols.clone(), GFRP).unwrap();
    let pulse = Pulse {
        flux_w_m2: 2000.0,
        duration_s: 5.0,
    };
    let mut stepper = Stepper::new(pulse, 0.5);
    stepper.advance(&mut solver, 20.0);
    let stored: f64 = (0..ny)
        .flat_map(|y| (0..nx).map(move |x| (x, y)))
        .map(|(x, y)| solver.stored_energy(x, y))
        .sum();
    let absorbed: f64 = cols.iter().map(|c| c.absorbed * 2000.0 * 5.0).sum();
    assert!(
        (stored - absorbed).abs() / absorbed < 1e-9,
        "stored {stored}, absorbed {absorbed}"
    );
    // The hole column is warmer than its sound neighbours at the surface.
    let mut s = vec![0.0; nx * ny];
    solver.surface_into(&mut s);
    assert!(
        s[2 * nx + 2] > s[2 * nx + 1] && s[2 * nx + 2] > s[nx + 2],
        "hole not warmer: {s:?}"
    );
}

/// A layer of the plate's own material changes nothing; a less conductive one shows
/// warmer after the heat reaches it, a more conductive and capacitive one cooler.
#[test]
fn inclusions_show_warm_or_cool_by_their_material() {
    let l = 0.004;
    let grid = ZGrid::new(l, GridSpec::for_thickness(l), &[0.001, 0.0015]);
    let (top, bottom) = (grid.node_at(0.001), grid.node_at(0.0015));
    let run = |layer: Option<Layer>| {
        let col = Column {
            last: grid.nodes() - 1,
            gap: None,
            layer,
            absorbed: 1.0,
            h_front: 8.0,
        };
        let mut solver = Solver::new(1, 1, 1e-3, 1e-3, grid.clone(), vec![col], GFRP).unwrap();
        let mut stepper = Stepper::new(
            Pulse {
                flux_w_m2: 2000.0,
                duration_s: 2.0,
            },
            0.5,
        );
        let mut s = [0.0];
        stepper.advance(&mut solver, 30.0);
        solver.surface_into(&mut s);
        s[0]
    };
    let sound = run(None);
    // Through the thickness k_z is what counts; the same k_z and ρc is sound material.
    let same = run(Some(Layer {
        top,
        bottom,
        k: GFRP.k_z,
        rho_c: GFRP.rho_c,
    }));
    assert!((same - sound).abs() < 1e-12 * sound, "{same} vs {sound}");
    let ptfe = run(Some(Layer {
        top,
        bottom,
        k: 0.05,
        rho_c: 2.2e6,
    }));
    let steel = run(Some(Layer {
        top,
        bottom,
        k: 45.0,
        rho_c: 3.8e6,
    }));
    assert!(ptfe > sound * 1.01, "insulating insert not warmer: {ptfe} vs {sound}");
    assert!(steel < sound * 0.99, "metal shim not cooler: {steel} vs {sound}");
}
