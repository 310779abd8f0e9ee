//! [`ExactSum`]: a floating-point sum whose result does not depend on the order of its
//! terms, nor on how they were split into parts and merged.
//!
//! Why: the partitioned engine (issue 15) lets several tasks each aggregate a share of a
//! window's pairs, and a finalizer merges the partial aggregates in whatever order they
//! come. The published records must be byte-identical to the single engine's, but
//! `f64` addition is not associative: `(a + b) + c` and `a + (b + c)` can differ in the
//! last bits (and by far more under cancellation: `1e16 + 1 - 1e16`). So every float sum
//! a window keeps and merges is an `ExactSum`: it holds the sum **exactly**, and
//! [`ExactSum::value`] rounds that exact sum once, to the nearest `f64` (ties to even).
//! The correctly rounded sum of a multiset of numbers is a function of the multiset alone.
//!
//! How: Shewchuk's adaptive-precision addition ("Adaptive Precision Floating-Point
//! Arithmetic and Fast Robust Geometric Predicates", 1997), the algorithm behind Python's
//! `math.fsum`. The exact sum is kept as a short list of *partials*: non-zero-overlapping
//! `f64`s in increasing magnitude whose exact (unrounded) sum is the sum of every term
//! added so far. Adding a term runs it through the list with Knuth's error-free
//! `two_sum` (`a + b = hi + lo` exactly), keeping the non-zero rounding errors. For data
//! of one magnitude the list holds one to three partials, so an addition costs a few
//! `two_sum`s; the worst case (terms spread over the whole exponent range) is about 40.
//!
//! Non-finite terms are not put in the list: they are summed separately, as `f64` sums
//! them (any NaN, or +∞ with −∞, gives NaN; otherwise ±∞), which is order-independent;
//! a sum with any non-finite term has that value (a NaN is always the canonical
//! [`f64::NAN`]). If the partials themselves leave the `f64` range (an exact running sum
//! beyond ±1.8e308), the sum becomes ±∞ for good, as naive summation would; only then
//! can the order matter (terms of one sign overflow in every order). An exact zero is
//! `+0.0` unless every term was `-0.0`, as in IEEE 754.
//!
//! Snapshots keep the partials (serde), so a restored sum continues exactly. Two sums
//! are `==` when they hold the same exact value, whatever their partials.

use serde::{Deserialize, Serialize};

/// An exact, order-independent sum of `f64`s; see the [module docs](self).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExactSum {
    /// Finite, non-overlapping, in increasing magnitude; their exact sum is the sum of
    /// the finite terms.
    partials: Vec<f64>,
    /// The `f64` sum of the non-finite terms (and of an overflowed running sum); `0.0`
    /// while there is none.
    special: f64,
}

/// Knuth's branch-free two-sum: `a + b == hi + lo` exactly, `hi` the rounded sum.
#[inline(always)]
fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let hi = a + b;
    let b_virtual = hi - a;
    let a_virtual = hi - b_virtual;
    (hi, (a - a_virtual) + (b - b_virtual))
}

/// `a · b == hi + lo` exactly (barring underflow), `hi` the rounded product.
#[inline(always)]
fn two_product(a: f64, b: f64) -> (f64, f64) {
    let hi = a * b;
    (hi, a.mul_add(b, -hi))
}

impl ExactSum {
    /// The empty sum (zero).
    pub fn new() -> ExactSum {
        ExactSum::default()
    }

    /// Adds one term, exactly.
    #[inline]
    pub fn add(&mut self, x: f64) {
        if !x.is_finite() {
            self.special += x;
            return;
        }
        let partials = &mut self.partials;
        let len = partials.len();
        let mut x = x;
        let mut kept = 0;
        for i in 0..len {
            let (hi, lo) = two_sum(x, partials[i]);
            // Branch-free: write the error in place (kept ≤ i), keep it if non-zero.
            partials[kept] = lo;
            kept += usize::from(lo != 0.0);
            x = hi;
        }
        if !x.is_finite() {
            // The running sum overflowed: from here on it is ±∞ (see the module docs).
            self.special += x;
            partials.clear();
            return;
        }
        if kept < len {
            partials[kept] = x;
            partials.truncate(kept + 1);
        } else {
            partials.push(x);
        }
    }

    /// Adds the exact product `a · b` (both parts of its error-free split), barring
    /// underflow of the rounding error (`|a · b|` below about 1e-292).
    pub fn add_product(&mut self, a: f64, b: f64) {
        let (hi, lo) = two_product(a, b);
        self.add(hi);
        if hi.is_finite() {
            self.add(lo);
        }
    }

    /// Adds every term of `other`: the result is the sum of both multisets of terms.
    pub fn merge(&mut self, other: &ExactSum) {
        for &p in &other.partials {
            self.add(p);
        }
        self.special += other.special;
    }

    /// Whether every term so far was finite (and the sum never overflowed).
    pub fn is_finite(&self) -> bool {
        self.special == 0.0
    }

    /// The partials: finite, non-overlapping, increasing in magnitude, their exact sum the
    /// sum of the finite terms. Meaningful only when [`ExactSum::is_finite`].
    pub(crate) fn partials(&self) -> &[f64] {
        &self.partials
    }

    /// The exact sum rounded to the nearest `f64`, ties to even.
    pub fn value(&self) -> f64 {
        if self.special != 0.0 {
            return if self.special.is_nan() {
                f64::NAN
            } else {
                self.special
            };
        }
        let p = &self.partials;
        let Some(mut i) = p.len().checked_sub(1) else {
            return 0.0;
        };
        // From the largest partial down, until a partial's addition is inexact: the
        // partials below it are too small to change `hi` except at a tie, handled next.
        let mut hi = p[i];
        let mut lo = 0.0;
        while i > 0 {
            i -= 1;
            let x = hi;
            let y = p[i];
            hi = x + y;
            // Exact error: |x| ≥ |y| (the partials do not overlap).
            lo = y - (hi - x);
            if lo != 0.0 {
                break;
            }
        }
        // `hi + lo` is exact and `lo` is half an ulp of `hi` at most. At an exact tie
        // (`lo` half an ulp) the partials below decide which way it rounds: if they push
        // the same way as `lo`, the true sum is past the tie.
        if i > 0 && ((lo < 0.0 && p[i - 1] < 0.0) || (lo > 0.0 && p[i - 1] > 0.0)) {
            let twice = lo * 2.0;
            let x = hi + twice;
            if x - hi == twice {
                hi = x;
            }
        }
        hi
    }
}

/// The same exact sum (and the same non-finite part), however it is split into partials.
impl PartialEq for ExactSum {
    fn eq(&self, other: &ExactSum) -> bool {
        if self.special != 0.0 || other.special != 0.0 {
            // Non-finite: the partials no longer count.
            return self.special == other.special
                || (self.special.is_nan() && other.special.is_nan());
        }
        let mut difference = self.clone();
        for &p in &other.partials {
            difference.add(-p);
        }
        difference.is_finite() && difference.partials.iter().all(|&p| p == 0.0)
    }
}

/// `n · s2 − s1²` exactly, rounded once to the nearest `f64`, for `n` below 2^53 and
/// finite sums; barring under- and overflow of the products of the partials (they are
/// within about 1e-146 .. 1e154 in magnitude, or zero). With `s1 = Σy` and `s2 = Σy²`
/// (each term `y²` added exactly, [`ExactSum::add_product`]) this is `n · Σ(y − ȳ)²`.
pub(crate) fn n_sum_squares_minus_square_of_sum(n: u64, s1: &ExactSum, s2: &ExactSum) -> f64 {
    if !(s1.is_finite() && s2.is_finite()) {
        return f64::NAN;
    }
    let n = n as f64;
    let mut d = ExactSum::new();
    for &a in s2.partials() {
        d.add_product(n, a);
    }
    // (Σ b_i)² = Σ b_i² + Σ_{i>j} 2·b_i·b_j, each product split exactly.
    let b = s1.partials();
    for (i, &bi) in b.iter().enumerate() {
        d.add_product(-bi, bi);
        for &bj in &b[..i] {
            d.add_product(-2.0 * bi, bj);
        }
    }
    d.value()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sum_of(terms: &[f64]) -> ExactSum {
        let mut s = ExactSum::new();
        for &t in terms {
            s.add(t);
        }
        s
    }

    /// The exact sum of `terms`, rounded once: every term is an integer multiple of
    /// 2^-1074, so the sum is a big integer in those units; here a sign and 2 100 bits
    /// of magnitude (little-endian u64 limbs), rounded to nearest-even by hand.
    fn reference_sum(terms: &[f64]) -> f64 {
        const LIMBS: usize = 34; // 2 176 bits: 2 098 for the exponent range, room to carry
        let mut acc = [0u64; LIMBS]; // two's complement
        for &t in terms {
            assert!(t.is_finite());
            let bits = t.to_bits();
            let exp = ((bits >> 52) & 0x7ff) as usize;
            let frac = bits & ((1u64 << 52) - 1);
            let (mantissa, shift) = if exp == 0 {
                (frac, 0)
            } else {
                (frac | (1u64 << 52), exp - 1)
            };
            // t = ±mantissa · 2^(shift − 1074)
            let mut add = [0u64; LIMBS];
            let (limb, offset) = (shift / 64, shift % 64);
            let wide = (mantissa as u128) << offset;
            add[limb] = wide as u64;
            add[limb + 1] = (wide >> 64) as u64;
            if t.is_sign_negative() {
                // two's complement negation
                let mut carry = 1u64;
                for a in add.iter_mut() {
                    let (v, c) = (!*a).overflowing_add(carry);
                    *a = v;
                    carry = c as u64;
                }
            }
            let mut carry = 0u64;
            for (a, b) in acc.iter_mut().zip(add) {
                let (v1, c1) = a.overflowing_add(b);
                let (v2, c2) = v1.overflowing_add(carry);
                *a = v2;
                carry = (c1 | c2) as u64;
            }
        }
        let negative = acc[LIMBS - 1] >> 63 == 1;
        if negative {
            let mut carry = 1u64;
            for a in acc.iter_mut() {
                let (v, c) = (!*a).overflowing_add(carry);
                *a = v;
                carry = c as u64;
            }
        }
        // magnitude in units of 2^-1074: round to 53 significant bits.
        let top = (0..LIMBS * 64)
            .rev()
            .find(|&b| acc[b / 64] >> (b % 64) & 1 == 1);
        let Some(top) = top else {
            // IEEE 754: -0.0 only when every term is -0.0.
            let all_negative_zeros =
                !terms.is_empty() && terms.iter().all(|t| t.is_sign_negative());
            return if all_negative_zeros { -0.0 } else { 0.0 };
        };
        let bit = |b: usize| acc[b / 64] >> (b % 64) & 1;
        // Subnormals: keep bits down to 2^-1074 (position 0); else 53 bits from the top.
        let lowest_kept = top.saturating_sub(52);
        let mut mantissa: u128 = 0;
        for b in (lowest_kept..=top).rev() {
            mantissa = mantissa << 1 | bit(b) as u128;
        }
        if lowest_kept > 0 {
            let half = bit(lowest_kept - 1) == 1;
            let sticky = (0..lowest_kept - 1).any(|b| bit(b) == 1);
            if half && (sticky || mantissa & 1 == 1) {
                mantissa += 1;
            }
        }
        // value = mantissa · 2^(lowest_kept − 1074): scaled by exact powers of two, in
        // steps that keep the intermediate normal (mantissa ≤ 2^53), so only a final
        // overflow can round.
        let pow2 = |e: i32| f64::from_bits(((e + 1023) as u64) << 52);
        let mut v = mantissa as f64;
        let mut e = lowest_kept as i32 - 1074;
        while e != 0 {
            let step = e.clamp(-1000, 1000);
            v *= pow2(step);
            e -= step;
        }
        if negative {
            -v
        } else {
            v
        }
    }

    #[test]
    fn the_reference_rounds_like_the_hardware_on_two_terms() {
        let pairs = [
            (1.0, 1e-16),
            (0.1, 0.2),
            (1e16, 1.0),
            (1e16, 3.0),
            (-1.5, 1e-300),
            (f64::MIN_POSITIVE, -5e-324),
            (1e308, -1e307),
        ];
        for (a, b) in pairs {
            assert_eq!(
                reference_sum(&[a, b]).to_bits(),
                (a + b).to_bits(),
                "{a} + {b}"
            );
        }
    }

    #[test]
    fn cancellation_and_known_fsum_results() {
        // Python: math.fsum([1e16, 1.0, -1e16]) == 1.0; sum(...) == 0.0
        assert_eq!(sum_of(&[1e16, 1.0, -1e16]).value(), 1.0);
        assert_eq!(sum_of(&[1.0, 1e100, 1.0, -1e100]).value(), 2.0);
        // math.fsum([0.1] * 10) == 1.0 (naive: 0.9999999999999999)
        assert_eq!(sum_of(&[0.1; 10]).value(), 1.0);
        // A tie broken by a lower partial: 1 + 2^-53 + 2^-106 rounds up.
        let (h, t) = (2f64.powi(-53), 2f64.powi(-106));
        assert_eq!(sum_of(&[1.0, h, t]).value(), 1.0 + 2f64.powi(-52));
        assert_eq!(sum_of(&[1.0, h]).value(), 1.0, "ties to even");
        assert_eq!(sum_of(&[1.0, h, -t]).value(), 1.0);
        assert_eq!(sum_of(&[]).value(), 0.0);
    }

    #[test]
    fn non_finite_terms_sum_as_f64() {
        let inf = f64::INFINITY;
        assert_eq!(sum_of(&[1.0, inf, 2.0]).value(), inf);
        assert_eq!(sum_of(&[-inf, 1.0]).value(), -inf);
        assert!(sum_of(&[inf, 1.0, -inf]).value().is_nan());
        assert!(sum_of(&[f64::NAN, 1.0]).value().is_nan());
        let negative_nan = -f64::NAN;
        assert_eq!(
            sum_of(&[negative_nan]).value().to_bits(),
            f64::NAN.to_bits(),
            "canonical NaN"
        );
        // Overflow of the running sum: +∞ for good, as naive summation.
        assert_eq!(sum_of(&[f64::MAX, f64::MAX, -f64::MAX]).value(), inf);
        assert!(!sum_of(&[f64::MAX, f64::MAX]).is_finite());
        // Zeros.
        assert!(sum_of(&[-0.0, -0.0]).value().is_sign_negative());
        assert!(sum_of(&[-0.0, 0.0]).value().is_sign_positive());
        assert!(sum_of(&[1.0, -1.0]).value().is_sign_positive());
    }

    #[test]
    fn equality_is_of_the_exact_value() {
        let a = sum_of(&[1.0, 2f64.powi(-60), 3.0]);
        let b = sum_of(&[3.0, 1.0, 2f64.powi(-60)]);
        assert_eq!(a, b);
        assert_ne!(
            a,
            sum_of(&[4.0]),
            "same rounded value, different exact sums"
        );
        assert_eq!(a.value(), 4.0);
        assert_eq!(sum_of(&[f64::NAN]), sum_of(&[f64::NAN, 1.0]));
    }

    #[test]
    fn snapshot_round_trip_continues_exactly() {
        let a = sum_of(&[1e16, 1.0, 0.1]);
        let bytes = bincode::serialize(&a).expect("encode");
        let mut b: ExactSum = bincode::deserialize(&bytes).expect("decode");
        assert_eq!(a, b);
        b.add(-1e16);
        assert_eq!(b.value(), 1.1);
    }

    #[test]
    fn n_times_sum_of_squares_minus_square_of_sum_is_exact() {
        // y = 1e6 + k/1024 (exact in f64): n·Σy² − (Σy)² = n·Σk² − (Σk)² in units of 2^-20.
        let ks: Vec<i128> = (0..1000).map(|i| (i * 7919 % 1013) - 500).collect();
        let (mut s1, mut s2) = (ExactSum::new(), ExactSum::new());
        for &k in &ks {
            let y = 1e6 + k as f64 / 1024.0;
            s1.add(y);
            s2.add_product(y, y);
        }
        let n = ks.len() as i128;
        let exact = n * ks.iter().map(|k| k * k).sum::<i128>() - ks.iter().sum::<i128>().pow(2);
        let want = exact as f64 / 1048576.0; // i128 → f64 rounds once; the scaling is exact
        let got = n_sum_squares_minus_square_of_sum(ks.len() as u64, &s1, &s2);
        assert_eq!(got.to_bits(), want.to_bits());
        // The textbook formula in f64 loses most digits here.
        let (sum, sum_sq) = ks.iter().fold((0.0, 0.0), |(s, q), &k| {
            let y = 1e6 + k as f64 / 1024.0;
            (s + y, q + y * y)
        });
        let naive = 1000.0 * sum_sq - sum * sum;
        assert!(
            (naive - want).abs() > 1e-3 * want,
            "naive {naive} vs {want}"
        );
    }

    /// Terms of wide and narrow magnitudes, with cancelling pairs.
    fn terms() -> impl Strategy<Value = Vec<f64>> {
        let finite = prop_oneof![
            any::<f64>().prop_filter("finite", |x| x.is_finite() && x.abs() < 1e300),
            (-1e6f64..1e6),
            (0.0f64..1.0),
            prop::sample::select(vec![1e16, -1e16, 1.0, -1.0, 1e-16, 2f64.powi(-53), 0.5]),
            (-30i32..30, any::<bool>()).prop_map(|(e, neg)| {
                let v = 10f64.powi(e * 10);
                if neg {
                    -v
                } else {
                    v
                }
            }),
        ];
        prop::collection::vec(finite, 0..60).prop_flat_map(|v| {
            // Append the negation of some terms, for exact cancellation.
            let n = v.len();
            (Just(v), prop::collection::vec(any::<bool>(), n)).prop_map(|(mut v, negate)| {
                let extra: Vec<f64> = v
                    .iter()
                    .zip(&negate)
                    .filter(|(_, &neg)| neg)
                    .map(|(x, _)| -x)
                    .collect();
                v.extend(extra);
                v
            })
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn split_merge_in_any_order_is_the_correctly_rounded_sum(
            terms in terms(),
            parts in 1usize..6,
            seed in any::<u64>(),
        ) {
            let whole = sum_of(&terms);
            let want = reference_sum(&terms);
            prop_assert_eq!(whole.value().to_bits(), want.to_bits(),
                "single pass {} vs reference {}", whole.value(), want);
            // Deal the terms into parts by a seeded shuffle, then merge the parts in a
            // seeded order, each part's own terms in reverse.
            let mut state = seed | 1;
            let mut next = move || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state
            };
            let mut split: Vec<Vec<f64>> = vec![Vec::new(); parts];
            for &t in &terms {
                split[(next() % parts as u64) as usize].push(t);
            }
            let mut partial: Vec<ExactSum> = split
                .iter()
                .map(|p| p.iter().rev().fold(ExactSum::new(), |mut s, &t| { s.add(t); s }))
                .collect();
            for i in (1..partial.len()).rev() {
                let j = (next() % (i as u64 + 1)) as usize;
                partial.swap(i, j);
            }
            let mut merged = ExactSum::new();
            for p in &partial {
                merged.merge(p);
            }
            prop_assert_eq!(merged.value().to_bits(), whole.value().to_bits());
            prop_assert_eq!(&merged, &whole);
        }

        #[test]
        fn non_finite_terms_in_any_order(
            terms in prop::collection::vec(prop_oneof![
                Just(f64::INFINITY), Just(f64::NEG_INFINITY), Just(f64::NAN),
                (-1e3f64..1e3),
            ], 0..12),
            rotate in 0usize..12,
        ) {
            let mut rotated = terms.clone();
            if !rotated.is_empty() {
                let r = rotate % rotated.len();
                rotated.rotate_left(r);
            }
            let (a, b) = (sum_of(&terms).value(), sum_of(&rotated).value());
            prop_assert_eq!(a.to_bits(), b.to_bits());
            let naive: f64 = terms.iter().sum();
            if !naive.is_finite() {
                prop_assert!(naive.is_nan() == a.is_nan() && (naive.is_nan() || naive == a));
            }
        }
    }
}
