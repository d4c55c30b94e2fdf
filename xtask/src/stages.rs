//! The device's time per stage, as the report counts it: one table for the terminal and
//! the demo's report alike.

use tqc_shared::inspection::{Report, Stage};

/// CPU clock of the real board, to turn instructions into time (one instruction per
/// cycle: a lower bound on the M7, which dual-issues).
pub const BOARD_HZ: f64 = 480e6;

pub struct StageRow {
    pub name: &'static str,
    pub instructions: u64,
    /// At [`BOARD_HZ`]; `None` for the camera stage, which under QEMU is the emulation
    /// reading recorded frames, not a Lepton streaming them.
    pub ms: Option<f64>,
}

pub struct StageTimes {
    pub rows: Vec<StageRow>,
    /// Features + inference + verdict: what the budget counts.
    pub compute_instructions: u64,
    pub compute_ms: f64,
}

impl StageTimes {
    pub fn of(report: &Report) -> Self {
        let ms = |n: u64| n as f64 / BOARD_HZ * 1e3;
        let mut compute = 0;
        let rows = Stage::ALL
            .iter()
            .zip(report.stage_cycles)
            .map(|(stage, n)| {
                if matches!(stage, Stage::Features | Stage::Inference | Stage::Verdict) {
                    compute += n;
                }
                StageRow {
                    name: stage.name(),
                    instructions: n,
                    ms: (*stage != Stage::Camera).then(|| ms(n)),
                }
            })
            .collect();
        StageTimes {
            rows,
            compute_instructions: compute,
            compute_ms: ms(compute),
        }
    }
}
