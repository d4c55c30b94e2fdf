//! `cargo xtask flash` without the probe it asks for: a clear error and a failing status,
//! before anything is built or written.

use std::process::Command;

#[test]
fn flashing_with_a_probe_that_is_not_there_fails_clearly() {
    // A selector no real probe has, so the test never touches a connected board.
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["flash", "--probe", "ffff:fffe:no-such-probe"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no debug probe matches --probe ffff:fffe:no-such-probe"),
        "{stderr}"
    );
    assert!(!stderr.contains("Compiling"), "nothing is built: {stderr}");
}

#[test]
fn a_malformed_probe_selector_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["flash", "--probe", "stlink"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("expected VID:PID[:SERIAL]"), "{stderr}");
}
