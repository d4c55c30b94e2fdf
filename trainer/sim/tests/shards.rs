//! A dataset simulated as three shards and merged is the same bytes as one run: every
//! plate file and `index.json`.

use std::collections::BTreeMap;
use std::path::Path;

use tqc_data::index::Shard;
use tqc_data::specimen::Specimen;
use tqc_sim::dataset::{DatasetSpec, generate, merge};

const SMALL: &str = include_str!("../../fixtures/small-part.toml");

/// Every file under `root` by relative path, with its bytes.
fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn three_shards_merge_to_the_bytes_of_one_run() {
    let template = Specimen::parse(SMALL, "small.toml").unwrap();
    let spec = DatasetSpec {
        plates: 7,
        seed: 21,
        sound_share: 0.3,
        validation_share: 0.2,
        test_share: 0.2,
        shard: Shard::ALL,
    };
    let one = tempfile::tempdir().unwrap();
    let whole = generate(&template, &spec, one.path(), |_, _| {}).unwrap().index;

    let sharded = tempfile::tempdir().unwrap();
    // Out of order, and shard 2 twice (a retried task).
    for (run, k) in [3, 2, 1, 2].into_iter().enumerate() {
        let shard = Shard { index: k, count: 3 };
        let part = DatasetSpec { shard, ..spec };
        // The retried shard 2 was killed mid-write: a plate's frames and its index half
        // written. The retry removes exactly those and names them.
        let mut planted = Vec::new();
        if run == 3 {
            let first = shard.plates(7).next().unwrap();
            for p in [
                sharded.path().join(format!("plate-{first:05}/sequence.npy.partial")),
                sharded.path().join(format!("{}.partial", shard.index_file())),
            ] {
                std::fs::write(&p, b"half").unwrap();
                planted.push(p);
            }
        }
        let generated = generate(&template, &part, sharded.path(), |_, _| {}).unwrap();
        planted.sort();
        let mut removed = generated.interrupted.clone();
        removed.sort();
        assert_eq!(removed, planted);
        let index = generated.index;
        assert_eq!(index.plates.len(), Shard { index: k, count: 3 }.plates(7).len());
        assert!(!sharded.path().join("index.json").exists(), "a shard wrote index.json");
    }
    let merged = merge(sharded.path()).unwrap();
    assert_eq!(merged, whole);

    let (a, b) = (tree(one.path()), tree(sharded.path()));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    // Five arrays and meta.json per plate, and the index.
    assert!(a.len() > 7 * 5, "{} files", a.len());
    for (name, bytes) in &a {
        assert!(
            bytes == &b[name],
            "{name} differs between one run and the merged shards"
        );
    }
    assert!(!a.keys().any(|k| k.contains(".partial")), "leftover partial files");
}

#[test]
fn datasets_of_neighbouring_seeds_share_no_plate() {
    // With seeds made by arithmetic, plate i + 1 of seed s was plate i of seed s + 1.
    let template = Specimen::parse(SMALL, "small.toml").unwrap();
    let specimen =
        |seed: u64, i: usize| tqc_sim::dataset::plate_specimen(&template, &tqc_sim::dataset::STANDARD, seed, i, false);
    for i in 0..20 {
        for j in 0..20 {
            let (a, b) = (specimen(4, i), specimen(5, j));
            assert_ne!(
                a.material, b.material,
                "plate {i} of seed 4 and {j} of seed 5 share a material"
            );
            assert_ne!(
                a.station, b.station,
                "plate {i} of seed 4 and {j} of seed 5 share a station"
            );
        }
    }
}
