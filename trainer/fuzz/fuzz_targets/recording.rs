//! A recording folder as a camera or another tool may leave it: the input is split into
//! `sequence.npy` and `times.npy` (first two bytes: the split point), written to a
//! scratch folder and opened. Any bytes give a sequence whose frames, times and shape
//! agree, or a typed error naming the file, never a panic.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tqc_data::sequence::{ReadOptions, Sequence};

fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = std::env::var_os("TMPDIR").map_or_else(std::env::temp_dir, PathBuf::from);
        let dir = base.join(format!("tqc-fuzz-recording-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch folder");
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let split = (u16::from_le_bytes([data[0], data[1]]) as usize).min(data.len() - 2);
    let (sequence, times) = data[2..].split_at(split);
    let dir = scratch();
    std::fs::write(dir.join("sequence.npy"), sequence).expect("write sequence.npy");
    std::fs::write(dir.join("times.npy"), times).expect("write times.npy");
    match Sequence::open(dir, &ReadOptions::default()) {
        Ok(seq) => {
            assert!(seq.frames > 0 && seq.height > 0 && seq.width > 0);
            assert_eq!(seq.times.len(), seq.frames);
            assert_eq!(seq.frame(seq.frames - 1).len(), seq.pixels());
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
