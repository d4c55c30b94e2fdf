//! The `trainer` binary as a user runs it.

use std::process::Command;

fn trainer() -> Command {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
}

#[test]
fn simulate_writes_recording_and_previews() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("part.toml");
    let text = include_str!("../specimens/gfrp-reference.toml")
        .replace("duration_s = 600.0", "duration_s = 20.0")
        .replace("pixels = [160, 120]", "pixels = [48, 36]");
    std::fs::write(&spec, text).unwrap();
    let out = dir.path().join("run");
    let o = trainer()
        .args(["simulate", "--specimen"])
        .arg(&spec)
        .arg("--out")
        .arg(&out)
        .args(["--seed", "3"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("cell-updates/s"), "{stdout}");
    assert!(stdout.contains("hole[14]"), "{stdout}");
    for f in [
        "sequence.npy",
        "times.npy",
        "labels.npy",
        "depth.npy",
        "meta.json",
        "previews/contrast-curves.png",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let pngs = std::fs::read_dir(out.join("previews")).unwrap().count();
    assert!(pngs >= 4, "{pngs} previews");
}

#[test]
fn bad_specimen_file_fails_with_the_field_named() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("bad.toml");
    std::fs::write(
        &spec,
        include_str!("../specimens/gfrp-sound.toml").replace("thickness_mm = 20.0", "thickness_mm = -3.0"),
    )
    .unwrap();
    let o = trainer()
        .args(["simulate", "--specimen"])
        .arg(&spec)
        .arg("--out")
        .arg(dir.path().join("x"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bad.toml: plate.thickness_mm: must be positive, got -3"),
        "{err}"
    );
    assert!(!dir.path().join("x").exists(), "nothing written for a bad file");
    let o = trainer()
        .args(["simulate", "--specimen", "no-such-part", "--out"])
        .arg(dir.path().join("y"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no shipped specimen named \"no-such-part\""));
}
