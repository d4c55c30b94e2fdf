//! Ordering small index lists without `core`'s sort, whose quicksort links bounds checks
//! and an order-violation panic into the firmware: the engine and the planner order at
//! most a few dozen items once per model, so an insertion sort costs nothing and has no
//! panic path.

/// Sorts `v` stably by `key`, ascending.
pub(crate) fn sort_by_key<T: Copy, K: Ord>(v: &mut [T], mut key: impl FnMut(T) -> K) {
    for i in 1..v.len() {
        let mut j = i;
        while j > 0 {
            let Some([a, b]) = v.get_mut(j - 1..=j).and_then(|p| <&mut [T; 2]>::try_from(p).ok()) else {
                break;
            };
            if key(*b) >= key(*a) {
                break;
            }
            core::mem::swap(a, b);
            j -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sort_by_key;

    #[test]
    fn sorts_stably_like_the_standard_sort() {
        let mut seed = 7u32;
        for len in 0..40 {
            let items: heapless::Vec<(u8, usize), 64> = (0..len)
                .map(|i| {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    ((seed >> 28) as u8, i)
                })
                .collect();
            let mut mine = items.clone();
            sort_by_key(&mut mine, |(k, _)| k);
            let mut reference = items.clone();
            reference.sort_by_key(|&(k, _)| k);
            assert_eq!(mine, reference, "len {len}");
        }
    }
}
