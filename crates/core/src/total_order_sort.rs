//! Sorting numbers in the order of `f64::total_cmp`, as integer keys: by comparison, or by
//! least-significant-digit radix sort when there are many.
//!
//! Closing a window sorts every numeric sample it holds (KS, Wasserstein and PSI for drift,
//! the scores for ROC AUC): thousands of values per feature and window. Each value becomes
//! an integer key in the same order; below `RADIX_FROM` keys the standard library's
//! unstable sort takes them (on plain integers: no comparison closure), more go through
//! at most 6 counting passes, skipping the passes where every key has the same digit (the
//! high bytes of most real samples). The result is the one `sort_by(f64::total_cmp)`
//! gives, bit for bit: equal keys are equal bits, so stability does not matter.

/// The bits of `x` as an unsigned key whose order is `f64::total_cmp`'s: negative numbers
/// have every bit flipped, others only the sign bit.
#[inline]
pub fn total_order_key(x: f64) -> u64 {
    let bits = x.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

/// From this many values on, the counting passes are faster than sorting the keys by
/// comparison: each pass reads and writes every key, and the passes set up 6 x 2 048
/// buckets whatever the count. `cargo bench --bench sort` (BENCHMARKS.md, "Sorting a
/// window's values"): 6.7 against 14.0 ns per key at 1 000 keys, 7.2 against 9.2 at
/// 3 000, 9.5 against 8.7 at 10 000, 12.3 against 9.2 at 100 000.
const RADIX_FROM: usize = 8_192;

/// The value whose [`total_order_key`] is `key`.
#[inline]
fn from_total_order_key(key: u64) -> f64 {
    if key >> 63 == 1 {
        f64::from_bits(key & !(1 << 63))
    } else {
        f64::from_bits(!key)
    }
}

/// Sorts numbers in the order of `f64::total_cmp`.
pub fn sort_f64(values: &mut [f64]) {
    let mut keys: Vec<u64> = values.iter().map(|&x| total_order_key(x)).collect();
    sort_keys(&mut keys);
    for (value, &k) in values.iter_mut().zip(&keys) {
        *value = from_total_order_key(k);
    }
}

/// Sorts keys (of [`total_order_key`], or any `u64`s): by comparison below `RADIX_FROM`,
/// else by radix.
pub fn sort_keys(keys: &mut Vec<u64>) {
    if keys.len() < RADIX_FROM || keys.len() > u32::MAX as usize {
        keys.sort_unstable();
    } else {
        radix_sort_keys(keys);
    }
}

/// Sorts keys by least-significant-digit radix sort: the keys themselves (no index
/// indirection), with the histograms of all passes counted in one read. At most
/// `u32::MAX` keys (the counts are `u32`). Public for `benches/sort.rs`, which times it
/// against the comparison sort to place `RADIX_FROM`.
pub fn radix_sort_keys(keys: &mut Vec<u64>) {
    let mut counts = vec![[0u32; BUCKETS]; DIGITS];
    for &k in keys.iter() {
        for (digit, count) in counts.iter_mut().enumerate() {
            count[digit_of(k, digit)] += 1;
        }
    }
    let mut scratch: Vec<u64> = vec![0; keys.len()];
    for (digit, count) in counts.iter_mut().enumerate() {
        // A digit every key shares: the pass would change nothing.
        if count.contains(&(keys.len() as u32)) {
            continue;
        }
        let mut start = 0;
        for c in count.iter_mut() {
            let n = *c;
            *c = start;
            start += n;
        }
        for &k in keys.iter() {
            let bucket = digit_of(k, digit);
            scratch[count[bucket] as usize] = k;
            count[bucket] += 1;
        }
        std::mem::swap(keys, &mut scratch);
    }
}

/// Bits per pass: 11 bits make 6 passes over a 64-bit key (8-bit digits make 8), and the
/// 6 count tables (48 KiB) still fit in the L2 cache.
const DIGIT_BITS: u32 = 11;
const BUCKETS: usize = 1 << DIGIT_BITS;
const DIGITS: usize = 64_usize.div_ceil(DIGIT_BITS as usize);

#[inline]
fn digit_of(key: u64, digit: usize) -> usize {
    ((key >> (digit as u32 * DIGIT_BITS)) & (BUCKETS as u64 - 1)) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keys_round_trip() {
        for x in [
            0.0,
            -0.0,
            1.5,
            -1.5,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
        ] {
            assert_eq!(
                from_total_order_key(total_order_key(x)).to_bits(),
                x.to_bits()
            );
        }
        let nan = f64::from_bits(0xfff8_0000_0000_0001);
        assert_eq!(
            from_total_order_key(total_order_key(nan)).to_bits(),
            nan.to_bits()
        );
    }

    fn reference_sort(values: &[f64]) -> Vec<u64> {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// The bits of `values` sorted by the radix passes, whatever their number.
    fn radix_sorted(values: &[f64]) -> Vec<u64> {
        let mut keys: Vec<u64> = values.iter().map(|&x| total_order_key(x)).collect();
        radix_sort_keys(&mut keys);
        keys.iter()
            .map(|&k| from_total_order_key(k).to_bits())
            .collect()
    }

    fn sorted(values: &[f64]) -> Vec<u64> {
        let mut v = values.to_vec();
        sort_f64(&mut v);
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn both_paths_of_sort_f64_agree_with_total_cmp() {
        // Below and above the threshold: keys of an LCG, spread over many exponents.
        for n in [RADIX_FROM - 1, RADIX_FROM, RADIX_FROM + 1000] {
            let mut state = 7u64;
            let values: Vec<f64> = (0..n)
                .map(|_| {
                    state = state
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    f64::from_bits(state >> 1) - f64::from_bits(state >> 3)
                })
                .collect();
            assert_eq!(sorted(&values), reference_sort(&values), "{n} values");
        }
    }

    #[test]
    fn special_values_sort_as_total_cmp_does() {
        let values: Vec<f64> = vec![
            f64::NAN,
            -f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.0,
            -0.0,
            f64::MIN_POSITIVE,
            -f64::MIN_POSITIVE,
            1e-310,
            -1e-310,
            f64::MAX,
            f64::MIN,
        ];
        // Ten copies, shuffled by a fixed permutation, through both sorts.
        let mut all: Vec<f64> = (0..10).flat_map(|_| values.iter().copied()).collect();
        all.reverse();
        let expected = reference_sort(&all);
        assert_eq!(radix_sorted(&all), expected);
        assert_eq!(sorted(&all), expected);
    }

    proptest! {
        #[test]
        fn equals_sort_by_total_cmp(values in proptest::collection::vec(any::<f64>(), 0..400)) {
            let expected = reference_sort(&values);
            prop_assert_eq!(radix_sorted(&values), expected.clone());
            prop_assert_eq!(sorted(&values), expected);
        }

        #[test]
        fn equals_sort_by_total_cmp_on_narrow_ranges(
            values in proptest::collection::vec(0.0f64..1.0, 0..400)
        ) {
            let expected = reference_sort(&values);
            prop_assert_eq!(radix_sorted(&values), expected.clone());
            prop_assert_eq!(sorted(&values), expected);
        }
    }
}
