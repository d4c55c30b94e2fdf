//! The emulated station under QEMU, driven from the host: builds the firmware image, lays
//! out QEMU's working directory (the recording, optionally a model), runs the board with
//! `-icount shift=0` and the LED trace, decodes its defmt log, and reads back the report
//! and the class map it wrote. Used by `cargo xtask qemu`, `cargo xtask demo` and the
//! end-to-end tests.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tqc_shared::inspection::{InjectedFaults, Report};

/// Emulated boards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Board {
    /// mps2-an386: Cortex-M4F.
    An386,
    /// mps2-an500: Cortex-M7 (the real board's core).
    An500,
}

impl Board {
    pub fn machine(self) -> (&'static str, &'static str) {
        match self {
            Board::An386 => ("mps2-an386", "cortex-m4"),
            Board::An500 => ("mps2-an500", "cortex-m7"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error(
        "qemu-system-arm not found ({0}). Install it with `sudo apt-get install qemu-system-arm` \
         (Debian/Ubuntu), `brew install qemu` (macOS) or your distribution's qemu package"
    )]
    NoQemu(String),
    #[error("building the firmware failed: {0}")]
    Build(String),
    #[error(
        "the Rust target thumbv7em-none-eabihf is not installed for the toolchain in use ({toolchain}), \
         and rustup could not add it ({why}); run: rustup target add thumbv7em-none-eabihf --toolchain {toolchain}"
    )]
    NoThumbTarget { toolchain: String, why: String },
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} is missing: a recording folder holds sequence.npy and times.npy")]
    Recording(PathBuf),
    #[error("QEMU did not finish within {0:?}")]
    Timeout(Duration),
    #[error("the board failed ({status}); its log:\n{log}")]
    Board { status: String, log: String },
    #[error("the board's report cannot be read: {0}")]
    Report(String),
    #[error("the firmware image has no defmt table: {0}")]
    Defmt(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> EmulatorError + '_ {
    move |source| EmulatorError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

pub fn firmware_dir() -> PathBuf {
    root().join("firmware")
}

/// The real board's workspace (its own: its HAL's runtime features must not reach the
/// QEMU images).
pub fn board_dir() -> PathBuf {
    firmware_dir().join("nucleo-h743")
}

/// The target the firmware is built for.
pub const THUMB: &str = "thumbv7em-none-eabihf";

/// The cargo that runs us (`$CARGO`), else the one on PATH.
pub fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Makes sure the toolchain that builds in `dir` has the thumb target: returns `None`
/// when it had, `Some(what was done)` when rustup added it, and an error with the command
/// to run when it could not. Toolchains installed before `rust-toolchain.toml` named the
/// target, and machines with rustup's automatic installation off, lack it.
pub fn ensure_thumb_target(dir: &Path) -> Result<Option<String>, EmulatorError> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .current_dir(dir)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| EmulatorError::Build(format!("cannot run {rustc}: {e}")))?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if sysroot.join("lib/rustlib").join(THUMB).is_dir() {
        return Ok(None);
    }
    // The toolchain rustup picked for `dir` (the rust-toolchain.toml of the repository).
    let toolchain = std::env::var("RUSTUP_TOOLCHAIN").ok().unwrap_or_else(|| {
        sysroot
            .file_name()
            .map_or_else(|| "stable".into(), |n| n.to_string_lossy().into_owned())
    });
    let added = Command::new("rustup")
        .current_dir(dir)
        .args(["target", "add", THUMB, "--toolchain", &toolchain])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    match added {
        Ok(o) if o.status.success() && sysroot.join("lib/rustlib").join(THUMB).is_dir() => Ok(Some(format!(
            "the toolchain {toolchain} had no {THUMB} target: added it with `rustup target add {THUMB} --toolchain {toolchain}`"
        ))),
        Ok(o) => Err(EmulatorError::NoThumbTarget {
            toolchain,
            why: String::from_utf8_lossy(&o.stderr)
                .trim()
                .lines()
                .last()
                .unwrap_or("it failed")
                .to_string(),
        }),
        Err(e) => Err(EmulatorError::NoThumbTarget {
            toolchain,
            why: format!("rustup: {e}"),
        }),
    }
}

/// The executables a firmware workspace build produced, by name, where cargo put them
/// (`CARGO_TARGET_DIR`, `build.target-dir` and the like are cargo's business: it says
/// where each artifact went).
#[derive(Clone, Debug, Default)]
pub struct Images(Vec<(String, PathBuf)>);

impl Images {
    pub fn get(&self, bin: &str) -> Result<&Path, EmulatorError> {
        self.0
            .iter()
            .find(|(n, _)| n == bin)
            .map(|(_, p)| p.as_path())
            .ok_or_else(|| EmulatorError::Build(format!("the build produced no `{bin}` image")))
    }
}

/// One line of cargo's JSON messages: only what names an executable matters here.
#[derive(serde::Deserialize)]
struct CargoMessage {
    reason: String,
    #[serde(default)]
    target: Option<CargoTarget>,
    #[serde(default)]
    profile: Option<CargoProfile>,
    #[serde(default)]
    executable: Option<PathBuf>,
}

#[derive(serde::Deserialize)]
struct CargoTarget {
    name: String,
    #[serde(default)]
    kind: Vec<String>,
}

#[derive(serde::Deserialize)]
struct CargoProfile {
    #[serde(default)]
    test: bool,
}

/// Builds the firmware workspace in `dir` (`cargo build --locked` plus `args`) with
/// cargo's progress on the terminal, and returns the images it made.
pub fn build_workspace(dir: &Path, args: &[&str]) -> Result<Images, EmulatorError> {
    build_workspace_with(dir, args, &[])
}

/// Builds host executables of the main workspace (`cargo build --locked` plus `args`),
/// progress on the terminal; returns where cargo put them.
pub fn build_host(args: &[&str]) -> Result<Images, EmulatorError> {
    cargo_build(&root(), args, &[])
}

/// [`build_workspace`] with more environment for cargo (e.g. `CARGO_TARGET_DIR`).
pub fn build_workspace_with(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &std::ffi::OsStr)],
) -> Result<Images, EmulatorError> {
    ensure_thumb_target(dir)?;
    cargo_build(dir, args, env)
}

fn cargo_build(dir: &Path, args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Result<Images, EmulatorError> {
    let out = cargo()
        .current_dir(dir)
        .envs(env.iter().copied())
        // A host build's target selection must not leak into the thumb build.
        .env_remove("CARGO_BUILD_TARGET")
        .args(["build", "--locked", "--message-format=json-render-diagnostics"])
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| EmulatorError::Build(format!("cannot run cargo: {e}")))?;
    if !out.status.success() {
        return Err(EmulatorError::Build(format!(
            "cargo build in {} ended with {} (its messages are above)",
            dir.display(),
            out.status
        )));
    }
    Ok(images_of(&String::from_utf8_lossy(&out.stdout)))
}

/// The executables named in cargo's JSON messages.
fn images_of(messages: &str) -> Images {
    let mut images = Vec::new();
    for line in messages.lines() {
        let Ok(m) = serde_json::from_str::<CargoMessage>(line) else {
            continue;
        };
        // Binaries only: with --all-targets the test harnesses share their names.
        let test = m.profile.is_some_and(|p| p.test);
        if let (true, false, Some(t), Some(exe)) = (m.reason == "compiler-artifact", test, m.target, m.executable)
            && t.kind.iter().any(|k| k == "bin")
        {
            images.push((t.name, exe));
        }
    }
    Images(images)
}

/// Builds the emulated board's release images (quick when up to date).
pub fn build_firmware() -> Result<Images, EmulatorError> {
    build_workspace(&firmware_dir(), &["--release"])
}

/// The QEMU to use: `$QEMU_SYSTEM_ARM` when set (a QEMU of your own build), else
/// `qemu-system-arm` on PATH.
pub fn qemu() -> Result<PathBuf, EmulatorError> {
    if let Some(chosen) = std::env::var_os("QEMU_SYSTEM_ARM") {
        let chosen = PathBuf::from(chosen);
        return if chosen.is_file() {
            Ok(chosen)
        } else {
            Err(EmulatorError::NoQemu(format!(
                "QEMU_SYSTEM_ARM={} is not a file",
                chosen.display()
            )))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("qemu-system-arm"))
        .find(|c| c.is_file())
        .ok_or_else(|| EmulatorError::NoQemu("not on PATH".into()))
}

/// QEMU on an mps2 `board`, headless, with semihosting, in `workdir`; `-icount shift=0`
/// when `icount` (one instruction per virtual nanosecond: deterministic timings).
pub fn qemu_command(board: Board, workdir: &Path, icount: bool) -> Result<Command, EmulatorError> {
    let (machine, cpu) = board.machine();
    let mut cmd = Command::new(qemu()?);
    cmd.current_dir(workdir)
        .args([
            "-machine",
            machine,
            "-cpu",
            cpu,
            "-nographic",
            "-monitor",
            "none",
            "-serial",
            "none",
        ])
        .args(["-semihosting-config", "enable=on,target=native"]);
    if icount {
        cmd.args(["-icount", "shift=0"]);
    }
    Ok(cmd)
}

/// The board's LEDs, as the QEMU trace showed them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Leds {
    /// Names of the LEDs lit at the end.
    pub lit: Vec<&'static str>,
    /// Every change after reset: (LED, on).
    pub changes: Vec<(&'static str, bool)>,
}

/// The station's LEDs on the SCC register (firmware/qemu/src/board.rs).
pub const LED_NAMES: [&str; 5] = ["PASS", "FAIL", "RETEST", "BUSY", "LAMP"];

fn parse_leds(trace: &str) -> Leds {
    let mut state = [false; 8];
    let mut leds = Leds::default();
    // QEMU's reset lights and then clears all eight; the firmware's changes follow.
    let mut booted = false;
    for line in trace.lines().filter(|l| l.contains("led_change_intensity")) {
        let Some(n) = line
            .split("SCC LED")
            .nth(1)
            .and_then(|s| s.chars().next())
            .and_then(|c| c.to_digit(10))
        else {
            continue;
        };
        let on = line.trim_end().ends_with("-> 100%");
        let n = n as usize;
        if n < state.len() {
            state[n] = on;
        }
        if !on && n == 7 {
            booted = true;
            continue;
        }
        if booted && let Some(name) = LED_NAMES.get(n) {
            leds.changes.push((name, on));
        }
    }
    leds.lit = LED_NAMES
        .iter()
        .enumerate()
        .filter(|&(i, _)| state[i])
        .map(|(_, n)| *n)
        .collect();
    leds
}

/// Decodes a defmt byte stream with the image's table into lines.
pub fn decode_defmt(elf: &[u8], stream: &[u8]) -> Result<Vec<String>, EmulatorError> {
    use defmt_decoder::{DecodeError, Table};
    let table = Table::parse(elf)
        .map_err(|e| EmulatorError::Defmt(e.to_string()))?
        .ok_or_else(|| EmulatorError::Defmt("no .defmt section".into()))?;
    let mut decoder = table.new_stream_decoder();
    decoder.received(stream);
    let mut lines = Vec::new();
    loop {
        match decoder.decode() {
            Ok(frame) => {
                let level = frame.level().map_or("", |l| l.as_str());
                lines.push(format!("{:<5} {}", level.to_uppercase(), frame.display_message()));
            }
            Err(DecodeError::UnexpectedEof) => break,
            Err(DecodeError::Malformed) => {
                lines.push("(malformed defmt frame: the rest of the log is lost)".into());
                break;
            }
        }
    }
    Ok(lines)
}

/// One run of the emulated station.
#[derive(Clone, Debug)]
pub struct StationRun {
    pub report: Report,
    /// The class map (row-major), when inference ran.
    pub classes: Option<Vec<u8>>,
    /// The depth output's codes (row-major), when inference ran a model with one.
    pub depth: Option<Vec<i8>>,
    /// The decoded defmt log.
    pub log: Vec<String>,
    pub leds: Leds,
    /// Host time the emulation took.
    pub wall: Duration,
    /// With camera faults: the recorded time (ms) of every frame the station received.
    pub delivered_ms: Option<Vec<i32>>,
    /// With camera faults: what the emulated Lepton link injected.
    pub injected: Option<InjectedFaults>,
}

impl StationRun {
    /// The stack's high-water mark the board logs at the end of a run: (bytes used,
    /// bytes of the stack region).
    pub fn stack(&self) -> Option<(usize, usize)> {
        self.log.iter().find_map(|line| {
            let rest = line.split("stack: ").nth(1)?;
            let (used, rest) = rest.split_once(" of ")?;
            let size = rest.split_whitespace().next()?;
            Some((used.parse().ok()?, size.parse().ok()?))
        })
    }
}

/// What to run.
pub struct StationJob<'a> {
    pub board: Board,
    /// The station image (from [`build_firmware`]).
    pub elf: &'a Path,
    /// A folder with `sequence.npy` and `times.npy`.
    pub sequence: &'a Path,
    /// A model blob to load instead of the embedded one.
    pub model: Option<&'a Path>,
    /// QEMU's working directory (emptied first).
    pub workdir: &'a Path,
    pub timeout: Duration,
    /// Fault injection: the emulated camera hangs at this frame (the watchdog must act).
    pub stall_at_frame: Option<u32>,
    /// Fault injection: (seed, ‰ of frames) — the recording goes through an emulated
    /// Lepton link and the real VoSPI driver, with faults in that share of the frames.
    pub camera_faults: Option<(u64, u16)>,
}

fn link_or_copy(from: &Path, to: &Path) -> Result<(), EmulatorError> {
    let from = std::fs::canonicalize(from).map_err(io(from))?;
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(&from, to).map_err(io(to))
    }
    #[cfg(not(unix))]
    {
        std::fs::copy(&from, to).map(|_| ()).map_err(io(to))
    }
}

/// What an image printed and how it ended.
#[derive(Clone, Debug)]
pub struct QemuRun {
    /// QEMU's exit status: the image's semihosting exit code.
    pub status: std::process::ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub wall: Duration,
}

/// Runs `elf` on `board` in `workdir` with `extra` QEMU arguments, waits at most
/// `timeout`, and collects what it printed.
pub fn run_image(
    board: Board,
    elf: &Path,
    workdir: &Path,
    icount: bool,
    extra: &[&std::ffi::OsStr],
    timeout: Duration,
) -> Result<QemuRun, EmulatorError> {
    let mut child = qemu_command(board, workdir, icount)?
        .args(extra)
        .arg("-kernel")
        .arg(elf)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io(elf))?;
    let mut stdout = child.stdout.take().ok_or(EmulatorError::Timeout(timeout))?;
    let mut stderr = child.stderr.take().ok_or(EmulatorError::Timeout(timeout))?;
    let out_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stdout.read_to_end(&mut b);
        b
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().map_err(io(workdir))? {
            break s;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Err(EmulatorError::Timeout(timeout));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(QemuRun {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
        wall: start.elapsed(),
    })
}

/// Runs the station image (already built) on a recording.
pub fn run_station(job: &StationJob<'_>) -> Result<StationRun, EmulatorError> {
    let elf = std::fs::read(job.elf).map_err(io(job.elf))?;
    for name in ["sequence.npy", "times.npy"] {
        if !job.sequence.join(name).is_file() {
            return Err(EmulatorError::Recording(job.sequence.join(name)));
        }
    }
    if job.workdir.exists() {
        std::fs::remove_dir_all(job.workdir).map_err(io(job.workdir))?;
    }
    std::fs::create_dir_all(job.workdir).map_err(io(job.workdir))?;
    for name in ["sequence.npy", "times.npy"] {
        link_or_copy(&job.sequence.join(name), &job.workdir.join(name))?;
    }
    if let Some(m) = job.model {
        link_or_copy(m, &job.workdir.join("model.tqm"))?;
    }
    if let Some(k) = job.stall_at_frame {
        let path = job.workdir.join("stall-at-frame");
        std::fs::write(&path, k.to_string()).map_err(io(&path))?;
    }
    if let Some((seed, permille)) = job.camera_faults {
        let path = job.workdir.join("camera-faults");
        std::fs::write(&path, format!("{seed} {permille}")).map_err(io(&path))?;
    }
    let trace = job.workdir.join("qemu-trace.log");
    let run = run_image(
        job.board,
        job.elf,
        job.workdir,
        true,
        &[
            "-trace".as_ref(),
            "led_change_intensity".as_ref(),
            "-D".as_ref(),
            trace.as_os_str(),
        ],
        job.timeout,
    )?;
    let (status, wall, stream, stderr_text) = (run.status, run.wall, run.stdout, run.stderr);
    let mut log = decode_defmt(&elf, &stream)?;
    log.extend(stderr_text.lines().map(|l| format!("QEMU  {l}")));
    let trace_text = std::fs::read_to_string(&trace).unwrap_or_default();
    if !status.success() {
        return Err(EmulatorError::Board {
            status: status.to_string(),
            log: log.join("\n"),
        });
    }
    let report_path = job.workdir.join("report.bin");
    let bytes = std::fs::read(&report_path).map_err(io(&report_path))?;
    let report = Report::decode(&bytes).map_err(|e| EmulatorError::Report(e.to_string()))?;
    let classes_path = job.workdir.join("classes.u8");
    let classes = if classes_path.is_file() {
        Some(std::fs::read(&classes_path).map_err(io(&classes_path))?)
    } else {
        None
    };
    let depth_path = job.workdir.join("depth.i8");
    let depth = if depth_path.is_file() {
        let bytes = std::fs::read(&depth_path).map_err(io(&depth_path))?;
        Some(bytes.into_iter().map(|b| b as i8).collect())
    } else {
        None
    };
    let (delivered_ms, injected) = if job.camera_faults.is_some() {
        let path = job.workdir.join("delivered.i32");
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        let delivered = bytes
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let path = job.workdir.join("injected.u32");
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        let injected = InjectedFaults::from_bytes(&bytes)
            .ok_or_else(|| EmulatorError::Report(format!("{}: not nine counters", path.display())))?;
        (Some(delivered), Some(injected))
    } else {
        (None, None)
    };
    Ok(StationRun {
        report,
        classes,
        depth,
        log,
        leds: parse_leds(&trace_text),
        wall,
        delivered_ms,
        injected,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_taken_from_cargo_s_messages_wherever_they_went() {
        let messages = concat!(
            r#"{"reason":"compiler-artifact","target":{"name":"tqc_station","kind":["lib"]},"executable":null}"#,
            "\n",
            r#"{"reason":"compiler-artifact","target":{"name":"station","kind":["bin"]},"profile":{"test":true},"executable":"/elsewhere/deps/station-1234"}"#,
            "\n",
            r#"{"reason":"compiler-artifact","target":{"name":"station","kind":["bin"]},"profile":{"test":false},"executable":"/elsewhere/thumbv7em-none-eabihf/release/station"}"#,
            "\n",
            r#"{"reason":"build-finished","success":true}"#,
            "\nnot json\n"
        );
        let images = images_of(messages);
        assert_eq!(
            images.get("station").unwrap(),
            Path::new("/elsewhere/thumbv7em-none-eabihf/release/station")
        );
        let e = images.get("bench").unwrap_err().to_string();
        assert!(e.contains("no `bench` image"), "{e}");
    }

    #[test]
    fn the_led_trace_skips_the_reset_flicker_and_ends_with_what_is_lit() {
        let mut t = String::new();
        for n in 0..8 {
            t += &format!("led_change_intensity LED desc:'SCC LED{n}' color:green intensity 0% -> 100%\n");
        }
        for n in 0..8 {
            t += &format!("led_change_intensity LED desc:'SCC LED{n}' color:green intensity 100% -> 0%\n");
        }
        t += "led_change_intensity LED desc:'USERLED0' color:green intensity 0% -> 100%\n";
        t += "led_change_intensity LED desc:'SCC LED3' color:green intensity 0% -> 100%\n";
        t += "led_change_intensity LED desc:'SCC LED3' color:green intensity 100% -> 0%\n";
        t += "led_change_intensity LED desc:'SCC LED1' color:green intensity 0% -> 100%\n";
        let leds = parse_leds(&t);
        assert_eq!(leds.lit, vec!["FAIL"]);
        assert_eq!(leds.changes, vec![("BUSY", true), ("BUSY", false), ("FAIL", true)]);
    }
}
