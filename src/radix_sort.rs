//! Sorting numbers in the order of `f64::total_cmp`, by least-significant-digit radix sort.
//!
//! Closing a window sorts every numeric sample it holds (KS, Wasserstein and PSI for drift,
//! the scores for ROC AUC): thousands of values per feature and window. A comparison sort
//! costs about n·log2(n) comparisons; this costs at most 6 counting passes over the values,
//! and skips the passes where every key has the same digit (the high bytes of most real
//! samples). The result is the one `sort_by(f64::total_cmp)` gives, bit for bit: the same
//! key transform orders the values.

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

/// Below this many values, a comparison sort is faster than the counting passes.
const SMALL: usize = 64;

/// The value whose [`total_order_key`] is `key`.
#[inline]
fn from_total_order_key(key: u64) -> f64 {
    if key >> 63 == 1 {
        f64::from_bits(key & !(1 << 63))
    } else {
        f64::from_bits(!key)
    }
}

/// Sorts numbers in the order of `f64::total_cmp`. The keys themselves are sorted (no
/// index indirection), with the byte histograms of all passes counted in one read.
pub fn sort_f64(values: &mut [f64]) {
    if values.len() <= SMALL || values.len() > u32::MAX as usize {
        values.sort_by(f64::total_cmp);
        return;
    }
    let mut keys: Vec<u64> = values.iter().map(|&x| total_order_key(x)).collect();
    let mut counts = vec![[0u32; BUCKETS]; DIGITS];
    for &k in &keys {
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
        for &k in &keys {
            let bucket = digit_of(k, digit);
            scratch[count[bucket] as usize] = k;
            count[bucket] += 1;
        }
        std::mem::swap(&mut keys, &mut scratch);
    }
    for (value, &k) in values.iter_mut().zip(&keys) {
        *value = from_total_order_key(k);
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
        // Enough copies to take the radix path, shuffled by a fixed permutation.
        let mut all: Vec<f64> = (0..10).flat_map(|_| values.iter().copied()).collect();
        all.reverse();
        let expected = reference_sort(&all);
        sort_f64(&mut all);
        assert_eq!(
            all.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            expected
        );
    }

    proptest! {
        #[test]
        fn equals_sort_by_total_cmp(values in proptest::collection::vec(any::<f64>(), 0..400)) {
            let expected = reference_sort(&values);
            let mut sorted = values.clone();
            sort_f64(&mut sorted);
            prop_assert_eq!(sorted.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), expected);
        }

        #[test]
        fn equals_sort_by_total_cmp_on_narrow_ranges(
            values in proptest::collection::vec(0.0f64..1.0, 65..400)
        ) {
            let expected = reference_sort(&values);
            let mut sorted = values.clone();
            sort_f64(&mut sorted);
            prop_assert_eq!(sorted.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), expected);
        }
    }
}
