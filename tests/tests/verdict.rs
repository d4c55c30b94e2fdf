//! Defect regions and the verdict against a straightforward reference: union-find over
//! 8-neighbours of equal non-sound class; each region's median depth against sorting its
//! pixels' depth codes.

use proptest::prelude::*;
use tqc_shared::model::QuantParams;
use tqc_shared::verdict::{DepthMap, Verdict, VerdictConfig, VerdictError, inspect, inspect_with_depth};

fn find(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

/// Sizes and classes of the regions, largest first (ties by class, then size).
fn reference(map: &[u8], w: usize, h: usize) -> Vec<(u32, u8)> {
    let mut v: Vec<(u32, u8)> = components(map, w, h)
        .iter()
        .map(|c| (c.len() as u32, map[c[0]]))
        .collect();
    v.sort_by(|a, b| b.cmp(a));
    v
}

/// The pixels of each region (union-find over 8-neighbours of equal non-sound class).
fn components(map: &[u8], w: usize, h: usize) -> Vec<Vec<usize>> {
    let mut parent: Vec<usize> = (0..map.len()).collect();
    for y in 0..h {
        for x in 0..w {
            let p = y * w + x;
            if map[p] == 0 {
                continue;
            }
            for (dx, dy) in [(1i64, 0i64), (-1, 1), (0, 1), (1, 1)] {
                let (nx, ny) = (x as i64 + dx, y as i64 + dy);
                if nx < 0 || nx >= w as i64 || ny >= h as i64 {
                    continue;
                }
                let q = ny as usize * w + nx as usize;
                if map[q] == map[p] {
                    let (a, b) = (find(&mut parent, p), find(&mut parent, q));
                    parent[a] = b;
                }
            }
        }
    }
    let mut members = std::collections::BTreeMap::<usize, Vec<usize>>::new();
    for (p, &class) in map.iter().enumerate() {
        if class != 0 {
            let r = find(&mut parent, p);
            members.entry(r).or_default().push(p);
        }
    }
    members.into_values().collect()
}

fn maps() -> impl Strategy<Value = (usize, usize, Vec<u8>)> {
    (1usize..24, 1usize..24).prop_flat_map(|(w, h)| {
        // Mostly sound, with clusters of two defect classes.
        let px = prop::sample::select(vec![0u8, 0, 0, 0, 1, 1, 2]);
        (Just(w), Just(h), prop::collection::vec(px, w * h))
    })
}

proptest! {
    #[test]
    fn regions_match_union_find((w, h, map) in maps(), min in 1u32..8) {
        let mut work = map.clone();
        let mut stack = vec![0u32; w * h];
        let cfg = VerdictConfig { min_region_pixels: min };
        let f = inspect::<64>(&mut work, w, h, &mut stack, &cfg).unwrap();
        prop_assert_eq!(&work, &map, "the map is restored");
        let want = reference(&map, w, h);
        prop_assert_eq!(f.region_count as usize, want.len());
        let mut got: Vec<(u32, u8)> = f.regions.iter().map(|r| (r.pixels, r.class)).collect();
        got.sort_by(|a, b| b.cmp(a));
        if want.len() <= 64 {
            prop_assert_eq!(&got[..], &want[..]);
        } else {
            // Among equal sizes, which ones fill the last slots is the scan order's choice.
            let sizes = |v: &[(u32, u8)]| v.iter().map(|r| r.0).collect::<Vec<_>>();
            prop_assert_eq!(sizes(&got), sizes(&want[..64]));
        }
        let fail = want.iter().any(|&(n, _)| n >= min);
        prop_assert_eq!(f.verdict, if fail { Verdict::Fail } else { Verdict::Pass });
        for c in 0..3u8 {
            prop_assert_eq!(f.class_pixels[c as usize] as usize, map.iter().filter(|&&m| m == c).count());
        }
        for r in &f.regions {
            let (cx, cy) = r.centroid();
            prop_assert!(r.min_x as f32 <= cx && cx <= r.max_x as f32);
            prop_assert!(r.min_y as f32 <= cy && cy <= r.max_y as f32);
        }
    }
}

proptest! {
    /// Each region's depth is the lower median of its pixels' codes, in µm.
    #[test]
    fn region_depth_is_the_median_of_its_pixels(
        (w, h, map) in maps(),
        seed in any::<u64>(),
        scale in 0.001f32..0.2,
        zero_point in any::<i8>(),
    ) {
        // Depth codes from a small generator: any code, often repeated.
        let mut state = seed | 1;
        let codes: Vec<i8> = (0..w * h)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 56) as i8
            })
            .collect();
        let depth = DepthMap { codes: &codes, quant: QuantParams { scale, zero_point } };
        let mut work = map.clone();
        let mut stack = vec![0u32; w * h];
        let cfg = VerdictConfig::DEFAULT;
        let f = inspect_with_depth::<1024>(&mut work, Some(depth), w, h, &mut stack, &cfg).unwrap();
        let mut want: Vec<(u32, u64, u64, Option<u32>)> = components(&map, w, h)
            .iter()
            .map(|c| {
                let mut d: Vec<i8> = c.iter().map(|&p| codes[p]).collect();
                d.sort();
                let sx = c.iter().map(|&p| (p % w) as u64).sum();
                let sy = c.iter().map(|&p| (p / w) as u64).sum();
                (c.len() as u32, sx, sy, Some(depth.micrometres(d[(d.len() - 1) / 2])))
            })
            .collect();
        let mut got: Vec<(u32, u64, u64, Option<u32>)> =
            f.regions.iter().map(|r| (r.pixels, r.sum_x, r.sum_y, r.depth_um)).collect();
        want.sort();
        got.sort();
        prop_assert_eq!(got, want);
        // Without a depth map, no region has a depth.
        let f = inspect::<1024>(&mut work, w, h, &mut stack, &cfg).unwrap();
        prop_assert!(f.regions.iter().all(|r| r.depth_um.is_none()));
    }
}

#[test]
fn depth_codes_become_micrometres_below_the_face() {
    let d = DepthMap {
        codes: &[],
        quant: QuantParams {
            scale: 0.05,
            zero_point: -100,
        },
    };
    assert_eq!(d.micrometres(-100), 0);
    assert_eq!(d.micrometres(-80), 1000);
    assert_eq!(d.micrometres(127), 11_350);
    // Above the face is the face.
    assert_eq!(d.micrometres(-128), 0);
}

#[test]
fn a_depth_map_of_another_size_is_an_error() {
    let mut stack = vec![0u32; 4];
    let depth = DepthMap {
        codes: &[0; 3],
        quant: QuantParams {
            scale: 1.0,
            zero_point: 0,
        },
    };
    assert!(matches!(
        inspect_with_depth::<4>(&mut [0u8; 4], Some(depth), 2, 2, &mut stack, &VerdictConfig::DEFAULT),
        Err(VerdictError::DepthSize { expected: 4, found: 3 })
    ));
}

#[test]
fn only_the_largest_regions_are_kept() {
    // Five separate regions of sizes 1..=5 on one row (gaps of one pixel).
    let mut map = Vec::new();
    for n in 1..=5 {
        map.extend(std::iter::repeat_n(1u8, n));
        map.push(0);
    }
    let w = map.len();
    let mut stack = vec![0u32; w];
    let f = inspect::<3>(&mut map, w, 1, &mut stack, &VerdictConfig { min_region_pixels: 5 }).unwrap();
    assert_eq!(f.region_count, 5);
    let sizes: Vec<u32> = f.regions.iter().map(|r| r.pixels).collect();
    assert_eq!(sizes, [5, 4, 3]);
    assert_eq!(f.verdict, Verdict::Fail);
    assert_eq!((f.regions[0].min_x, f.regions[0].max_x), (14, 18));
}

#[test]
fn diagonal_pixels_connect_and_classes_do_not_merge() {
    #[rustfmt::skip]
    let mut map = vec![
        1, 0, 0,
        0, 1, 2,
        0, 2, 1,
    ];
    let mut stack = vec![0u32; 9];
    let f = inspect::<8>(&mut map, 3, 3, &mut stack, &VerdictConfig { min_region_pixels: 3 }).unwrap();
    // 1s connect diagonally (3 px); the two 2s touch diagonally (2 px).
    let sizes: Vec<(u32, u8)> = f.regions.iter().map(|r| (r.pixels, r.class)).collect();
    assert_eq!(sizes, [(3, 1), (2, 2)]);
    assert_eq!(f.verdict, Verdict::Fail);
}

#[test]
fn bad_maps_are_errors_not_panics() {
    let mut stack = vec![0u32; 4];
    let cfg = VerdictConfig::DEFAULT;
    assert!(matches!(
        inspect::<4>(&mut [0u8; 3], 2, 2, &mut stack, &cfg),
        Err(VerdictError::MapSize { found: 3, .. })
    ));
    assert!(matches!(
        inspect::<4>(&mut [0u8; 4], 2, 2, &mut stack[..3], &cfg),
        Err(VerdictError::Stack { needed: 4, found: 3 })
    ));
    assert!(matches!(
        inspect::<4>(&mut [0, 9, 0, 0], 2, 2, &mut stack, &cfg),
        Err(VerdictError::Class { pixel: 1, class: 9 })
    ));
    let mut sound = [0u8; 4];
    assert_eq!(
        inspect::<4>(&mut sound, 2, 2, &mut stack, &cfg).unwrap().verdict,
        Verdict::Pass
    );
}
