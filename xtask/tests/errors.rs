//! How xtask reports a failure: one line of `error: …` with each cause once, and no stack
//! backtrace unless `RUST_BACKTRACE` asks for one.

use std::process::Command;

#[test]
fn a_failure_is_one_chain_without_a_backtrace() {
    let out_dir = std::env::temp_dir().join(format!("xtask-errors-{}", std::process::id()));
    let missing = out_dir.join("no-such-trainer");
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["demo", "--host", "--sequence", "/no/such/recording", "--trainer"])
        .arg(&missing)
        .arg("--out")
        .arg(&out_dir)
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    let line = errors[0];
    assert!(
        line.contains("cannot start") && line.contains("no-such-trainer"),
        "{stderr}"
    );
    assert_eq!(
        line.matches("No such file or directory").count(),
        1,
        "said once: {stderr}"
    );
    assert!(
        !stderr.contains("stack backtrace") && !stderr.contains("Caused by"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&out_dir);
}
