//! Two-sample statistics on plain slices and count vectors: the KS test
//! (`scipy.stats.ks_2samp` defaults), the 1-Wasserstein distance, PSI,
//! Jensen-Shannon distance and the chi-square goodness-of-fit test.
//! These are the building blocks `compare` applies to a frozen reference and
//! a window; they are pure functions so they can be checked one by one
//! against scipy.

use super::special::{chi2_sf, kolmogorov_sf};

/// Floor applied to bin / category proportions before PSI (and to unseen
/// reference categories before the chi-square test).
pub(crate) const PROPORTION_FLOOR: f64 = 1e-4;

/// Sample size above which `ks_2samp` (method='auto') uses the asymptotic
/// distribution instead of the exact one (scipy's `MAX_AUTO_N`).
pub(crate) const KS_MAX_EXACT_N: usize = 10_000;

pub use crate::output::{finite, TestResult};

/// Result of the two-sample KS test.
pub type KsResult = TestResult;

/// `scipy.stats.ks_2samp(a, b)` with default arguments. Inputs need not be
/// sorted; non-finite values must be removed by the caller. An empty side
/// gives an undefined result (scipy raises).
pub fn ks_2samp(a: &[f64], b: &[f64]) -> KsResult {
    let mut a_sorted = a.to_vec();
    let mut b_sorted = b.to_vec();
    a_sorted.sort_by(f64::total_cmp);
    b_sorted.sort_by(f64::total_cmp);
    ks_2samp_sorted(&a_sorted, &b_sorted)
}

/// `ks_2samp` for inputs already sorted ascending.
pub fn ks_2samp_sorted(a: &[f64], b: &[f64]) -> KsResult {
    let (n1, n2) = (a.len(), b.len());
    if n1 == 0 || n2 == 0 {
        return TestResult::UNDEFINED;
    }
    let d = ks_statistic_sorted(a, b);
    if n1.max(n2) <= KS_MAX_EXACT_N {
        if let Some((d_exact, p)) = ks_exact_two_sided(n1 as u64, n2 as u64, d) {
            return TestResult::new(d_exact, p.clamp(0.0, 1.0));
        }
    }
    // Asymptotic: kstwo with the effective sample size round(n1 n2 / (n1 + n2)).
    let (m, n) = (n1.max(n2) as f64, n1.min(n2) as f64);
    let en = (m * n / (m + n)).round_ties_even();
    let p = kolmogorov_sf(en as u64, d);
    TestResult::new(d, p.clamp(0.0, 1.0))
}

/// `max |F_a(x) - F_b(x)|` over all data points, with the ECDFs computed as
/// scipy does (`count_le / n`, right-continuous, ties handled jointly).
fn ks_statistic_sorted(a: &[f64], b: &[f64]) -> f64 {
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j) = (0usize, 0usize);
    let mut max_plus = f64::NEG_INFINITY;
    let mut max_minus = f64::NEG_INFINITY;
    while i < a.len() || j < b.len() {
        let x = match (a.get(i), b.get(j)) {
            (Some(&u), Some(&v)) => u.min(v),
            (Some(&u), None) => u,
            (None, Some(&v)) => v,
            (None, None) => break,
        };
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        let diff = i as f64 / n1 - j as f64 / n2;
        max_plus = max_plus.max(diff);
        max_minus = max_minus.max(-diff);
    }
    let min_s = max_minus.clamp(0.0, 1.0);
    if min_s > max_plus {
        min_s
    } else {
        max_plus
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Exact two-sided p-value (scipy `_attempt_exact_2kssamp`): the statistic is
/// snapped to the lattice `h / lcm(n1, n2)`. `None` when the computation is
/// not a valid probability (scipy then falls back to the asymptotic path).
fn ks_exact_two_sided(n1: u64, n2: u64, d: f64) -> Option<(f64, f64)> {
    let g = gcd(n1, n2);
    let lcm = (n1 / g) * n2;
    let h = (d * lcm as f64).round_ties_even() as u64;
    let d_lattice = h as f64 * 1.0 / lcm as f64;
    if h == 0 {
        return Some((d_lattice, 1.0));
    }
    let p = if n1 == n2 {
        prob_outside_square(n1, h)
    } else {
        match tail_bound(n1, n2, g, lcm, h) {
            Some(p) => p,
            None => prob_outside_band(n1, n2, g, h),
        }
    };
    if !(0.0..=1.0).contains(&p) {
        return None;
    }
    Some((d_lattice, p))
}

/// Lattice cells above which [`tail_bound`] is tried first (a few ms of work).
const KS_EXACT_CELL_BUDGET: f64 = 1.0e6;
/// A p-value at most this is reported from the asymptotic distribution instead.
pub(crate) const KS_NEGLIGIBLE_P: f64 = 1.0e-12;

/// The exact band computation costs one cell per lattice point within `h` of the
/// diagonal: about `2 D n1 n2` cells, up to 10^8 at 10 000 per side, i.e. a fraction of
/// a second per variable and window when a variable drifted strongly. Then the p-value
/// is vanishingly small, and this finds that out cheaply: first by [`dkw_bound`], free;
/// else, as `Pr(D >= d)` falls as `d` grows, by the exact probability at a smaller
/// statistic `d'` (a narrower band, where the asymptotic tail is already ~1e-14). If a
/// bound is at most
/// [`KS_NEGLIGIBLE_P`], the asymptotic p-value, capped by the bound, is returned: it is
/// within `KS_NEGLIGIBLE_P` of scipy's exact value (both lie in [0, bound]). `None`: do
/// the exact computation.
fn tail_bound(n1: u64, n2: u64, g: u64, lcm: u64, h: u64) -> Option<f64> {
    let (m, n) = (n1.max(n2) as f64, n1.min(n2) as f64);
    let cells = 2.0 * h as f64 / lcm as f64 * m * n;
    if cells <= KS_EXACT_CELL_BUDGET {
        return None;
    }
    let en = (m * n / (m + n)).round_ties_even();
    let d = h as f64 / lcm as f64;
    let dkw = dkw_bound(n1, n2, d);
    if dkw <= KS_NEGLIGIBLE_P {
        return Some(kolmogorov_sf(en as u64, d).clamp(0.0, dkw));
    }
    // 2 exp(-2 en d^2) = 1e-14.
    let d_probe = ((2.0e14_f64).ln() / (2.0 * en)).sqrt();
    let h_probe = (d_probe * lcm as f64).floor() as u64;
    if h_probe == 0 || h_probe >= h {
        return None;
    }
    let bound = prob_outside_band(n1, n2, g, h_probe);
    if !(0.0..=KS_NEGLIGIBLE_P).contains(&bound) {
        return None;
    }
    Some(kolmogorov_sf(en as u64, d).clamp(0.0, bound))
}

/// A bound on `Pr(D_{n1,n2} >= d)` that costs nothing. Under the null hypothesis (a
/// continuous F, the distribution scipy's exact count assumes),
/// `D <= sup|F_n1 - F| + sup|G_n2 - F|`, so `Pr(D >= d)` is at most
/// `Pr(sup|F_n1 - F| >= a d) + Pr(sup|G_n2 - F| >= (1 - a) d)`, each term at most
/// `2 exp(-2 k t^2)` by the Dvoretzky-Kiefer-Wolfowitz inequality with Massart's constant.
/// With `a = sqrt(n2) / (sqrt(n1) + sqrt(n2))` both terms are equal.
fn dkw_bound(n1: u64, n2: u64, d: f64) -> f64 {
    let (n1, n2) = (n1 as f64, n2 as f64);
    4.0 * (-2.0 * d * d * n1 * n2 / (n1.sqrt() + n2.sqrt()).powi(2)).exp()
}

/// Rows `rows` of column `i` (`fi`) alone, from the cell below the first; returns the last.
fn column_rows(cell: &mut [f64], rows: std::ops::Range<usize>, fi: f64, mut below: f64) -> f64 {
    let start = rows.start;
    for (j, c) in cell[rows].iter_mut().enumerate() {
        let j = (start + j) as f64;
        below = (*c * fi + below * j) / (fi + j);
        *c = below;
    }
    below
}

/// `Pr(D_{n,n} >= h/n)` for equal sample sizes: the alternating binomial sum
/// `2 sum_k (-1)^(k+1) C(2n, n - k h) / C(2n, n)`, evaluated as nested
/// products (Horner form) to avoid cancellation.
fn prob_outside_square(n: u64, h: u64) -> f64 {
    let mut p = 0.0;
    let mut k = n / h;
    loop {
        let mut ratio = 1.0;
        for j in 0..h {
            // C(2n, n - (k h + j + 1)) / C(2n, n - (k h + j)) step, may hit 0.
            let num = n as f64 - (k * h) as f64 - j as f64;
            let den = n as f64 + (k * h) as f64 + j as f64 + 1.0;
            ratio = num * ratio / den;
        }
        p = ratio * (1.0 - p);
        if k == 0 {
            break;
        }
        k -= 1;
    }
    2.0 * p
}

/// Probability that a uniformly random lattice path from (0,0) to (m,n)
/// leaves the band `|x/m - y/n| < h/lcm`, computed column by column as a
/// probability (Hodges' inside method recast to track `1 - p` directly,
/// Viehmann 2021; scipy's `_compute_outer_prob_inside_method`).
///
/// `cell[j]` holds, for the current column `i`, the probability that a path
/// reaching `(i, j)` has already left the band; rows at or above the band's
/// top are 1 (already left) and are never written. Each cell is
/// `(cell_left * i + cell_below * j) / (i + j)`, a serial chain down a column,
/// so two adjacent columns are computed together, the second one row behind
/// the first: two independent chains keep the divider busy. Every cell sees
/// the same operations in the same order as scipy's loop, so the result is
/// bit-identical to it.
fn prob_outside_band(m: u64, n: u64, g: u64, h: u64) -> f64 {
    let (m, n) = if m < n { (n, m) } else { (m, n) };
    let (m, n, g, h) = (m as i64, n as i64, g as i64, h as i64);
    let (mg, ng) = (m / g, n / g);
    let ceil_div = |a: i64, b: i64| -> i64 { a.div_euclid(b) + i64::from(a.rem_euclid(b) != 0) };
    // The band's rows [low, high) in column i.
    let band = |i: i64| -> (usize, usize) {
        let low = ((ng * i - h).div_euclid(mg) + 1).clamp(0, n);
        let high = ceil_div(ng * i + h, mg).min(n + 1);
        (low as usize, high.max(low) as usize)
    };
    let mut cell = vec![1.0_f64; n as usize + 2];
    let first_high = ceil_div(h, mg).min(n + 1) as usize;
    cell[..first_high].fill(0.0);
    // The cell below a column's lowest band row: 0 at the bottom edge, else outside (1).
    let start_below = |low: usize| if low == 0 { 0.0 } else { 1.0 };
    let mut last_high = first_high;
    let mut i = 1;
    while i <= m {
        let (a_low, a_high) = band(i);
        if a_high <= a_low {
            return 1.0;
        }
        let fa = i as f64;
        let mut below_a = start_below(a_low);
        if i == m {
            column_rows(&mut cell, a_low..a_high, fa, below_a);
            last_high = a_high;
            break;
        }
        let (b_low, b_high) = band(i + 1);
        if b_high <= b_low {
            return 1.0;
        }
        let fb = (i + 1) as f64;
        let mut below_b = start_below(b_low);
        // Column i alone up to row b_low (column i + 1 starts there and needs it).
        let solo_end = (b_low + 1).min(a_high);
        below_a = column_rows(&mut cell, a_low..solo_end, fa, below_a);
        // Both columns: row j of column i and row k = j - 1 of column i + 1, whose left
        // cell is column i's row k, still in a register (reading it back from `cell`
        // would wait on the store just made).
        for j in solo_end..a_high {
            let k = j - 1;
            let left_b = below_a;
            below_a = (cell[j] * fa + below_a * j as f64) / (fa + j as f64);
            below_b = (left_b * fb + below_b * k as f64) / (fb + k as f64);
            cell[k] = below_b;
            cell[j] = below_a;
        }
        // The rest of column i + 1 (above column i's band, the left cells are 1).
        column_rows(&mut cell, b_low.max(a_high - 1)..b_high, fb, below_b);
        last_high = b_high;
        i += 2;
    }
    cell[last_high - 1]
}

/// `scipy.stats.wasserstein_distance(a, b)` (unweighted): the integral of
/// `|F_a - F_b|`. `None` if either side is empty.
pub fn wasserstein_1(a: &[f64], b: &[f64]) -> Option<f64> {
    let mut a_sorted = a.to_vec();
    let mut b_sorted = b.to_vec();
    a_sorted.sort_by(f64::total_cmp);
    b_sorted.sort_by(f64::total_cmp);
    wasserstein_1_sorted(&a_sorted, &b_sorted)
}

/// `wasserstein_1` for inputs already sorted ascending.
pub(crate) fn wasserstein_1_sorted(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j) = (0usize, 0usize);
    let mut total = 0.0;
    // Walk the merged sorted values; between consecutive values x_k, x_{k+1}
    // the ECDFs are constant at their value at x_k.
    let mut prev: Option<f64> = None;
    while i < a.len() || j < b.len() {
        let x = match (a.get(i), b.get(j)) {
            (Some(&u), Some(&v)) => u.min(v),
            (Some(&u), None) => u,
            (None, Some(&v)) => v,
            (None, None) => break,
        };
        if let Some(p) = prev {
            // i, j are the counts <= p on each side.
            let fa = i as f64 / na;
            let fb = j as f64 / nb;
            total += (fa - fb).abs() * (x - p);
        }
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        prev = Some(x);
    }
    finite(total)
}

/// The nine reference deciles used as PSI bin cuts:
/// `numpy.quantile(sorted, [0.1, ..., 0.9])` with the default 'linear' method.
/// Empty input gives no cuts.
pub fn decile_cuts(sorted: &[f64]) -> Vec<f64> {
    if sorted.is_empty() {
        return Vec::new();
    }
    (1..=9)
        .map(|k| linear_quantile(sorted, k as f64 / 10.0))
        .collect()
}

/// numpy's 'linear' quantile (virtual index `(n-1) q`) with numpy's
/// two-sided lerp, so cuts are bit-identical to numpy's.
fn linear_quantile(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    let virtual_index = (n - 1) as f64 * q;
    let below = virtual_index.floor();
    if virtual_index >= (n - 1) as f64 {
        return sorted[n - 1];
    }
    let lo = below as usize;
    let (a, b) = (sorted[lo], sorted[lo + 1]);
    let gamma = virtual_index - below;
    let diff = b - a;
    if gamma >= 0.5 {
        b - diff * (1.0 - gamma)
    } else {
        a + diff * gamma
    }
}

/// Bin index of `x` given ascending cuts: the number of cuts strictly below
/// `x` (`np.searchsorted(cuts, x, side='left')`), so bins are
/// `(-inf, c1], (c1, c2], ..., (c9, +inf)`.
pub(crate) fn bin_index(cuts: &[f64], x: f64) -> usize {
    cuts.partition_point(|&c| c < x)
}

/// Raw proportions of `values` in the bins defined by `cuts`
/// (`cuts.len() + 1` bins). All zero when `values` is empty.
pub fn bin_proportions(cuts: &[f64], values: &[f64]) -> Vec<f64> {
    let mut counts = vec![0u64; cuts.len() + 1];
    for &x in values {
        counts[bin_index(cuts, x)] += 1;
    }
    proportions(&counts)
}

/// Counts divided by their total (all zero when the total is zero).
pub(crate) fn proportions(counts: &[u64]) -> Vec<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return vec![0.0; counts.len()];
    }
    counts.iter().map(|&c| c as f64 / total as f64).collect()
}

/// Population Stability Index on aligned proportion vectors:
/// `sum (p_cur - p_ref) ln(p_cur / p_ref)` after flooring each proportion at
/// `PROPORTION_FLOOR` (no renormalisation). `None` if lengths differ or empty.
pub fn psi(reference: &[f64], current: &[f64]) -> Option<f64> {
    if reference.len() != current.len() || reference.is_empty() {
        return None;
    }
    let total = reference
        .iter()
        .zip(current)
        .map(|(&r, &c)| {
            let r = r.max(PROPORTION_FLOOR);
            let c = c.max(PROPORTION_FLOOR);
            (c - r) * (c / r).ln()
        })
        .sum();
    finite(total)
}

/// `scipy.spatial.distance.jensenshannon(p, q)` (natural log): both vectors
/// are normalised to sum 1 first. `None` when lengths differ or a side sums to 0.
pub fn jensen_shannon_distance(p: &[f64], q: &[f64]) -> Option<f64> {
    if p.len() != q.len() || p.is_empty() {
        return None;
    }
    let sp: f64 = p.iter().sum();
    let sq: f64 = q.iter().sum();
    if !(sp > 0.0 && sq > 0.0) {
        return None;
    }
    let mut left = 0.0;
    let mut right = 0.0;
    for (&pi, &qi) in p.iter().zip(q) {
        let (pi, qi) = (pi / sp, qi / sq);
        let mi = (pi + qi) / 2.0;
        left += relative_entropy_term(pi, mi);
        right += relative_entropy_term(qi, mi);
    }
    finite(((left + right) / 2.0).sqrt())
}

/// `scipy.special.rel_entr(x, y)`: `x ln(x/y)`, 0 when `x == 0`.
fn relative_entropy_term(x: f64, y: f64) -> f64 {
    if x > 0.0 && y > 0.0 {
        x * (x / y).ln()
    } else if x == 0.0 && y >= 0.0 {
        0.0
    } else {
        f64::INFINITY
    }
}

/// `scipy.stats.chisquare(observed, expected)`: statistic
/// `sum (o - e)^2 / e`, p-value from chi-square with `k - 1` degrees of
/// freedom. `expected` must already be scaled to the observed total.
/// Undefined when lengths differ or are empty; p-value undefined for `k = 1`.
pub(crate) fn chi_square_test(observed: &[f64], expected: &[f64]) -> TestResult {
    if observed.len() != expected.len() || observed.is_empty() {
        return TestResult::UNDEFINED;
    }
    let statistic: f64 = observed
        .iter()
        .zip(expected)
        .map(|(&o, &e)| (o - e) * (o - e) / e)
        .sum();
    let dof = (observed.len() - 1) as f64;
    TestResult::new(statistic, chi2_sf(statistic, dof))
}

/// Chi-square goodness of fit of window counts against reference
/// proportions (aligned vectors): unseen-in-reference categories get the
/// floor `PROPORTION_FLOOR`, proportions are renormalised to sum 1 and
/// scaled to the window total. Undefined for an empty window.
pub fn chi_square_gof(window_counts: &[u64], reference_proportions: &[f64]) -> TestResult {
    if window_counts.len() != reference_proportions.len() {
        return TestResult::UNDEFINED;
    }
    let total: u64 = window_counts.iter().sum();
    if total == 0 {
        return TestResult::UNDEFINED;
    }
    let floored: Vec<f64> = reference_proportions
        .iter()
        .map(|&p| p.max(PROPORTION_FLOOR))
        .collect();
    let floored_sum: f64 = floored.iter().sum();
    let expected: Vec<f64> = floored
        .iter()
        .map(|&p| p / floored_sum * total as f64)
        .collect();
    let observed: Vec<f64> = window_counts.iter().map(|&c| c as f64).collect();
    chi_square_test(&observed, &expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// scipy's loop transcribed one cell at a time (a sliding window of one column), the
    /// reference the interleaved version must match bit for bit.
    fn prob_outside_band_scalar(m: u64, n: u64, g: u64, h: u64) -> f64 {
        let (m, n) = if m < n { (n, m) } else { (m, n) };
        let (m, n, g, h) = (m as i64, n as i64, g as i64, h as i64);
        let mg = m / g;
        let ng = n / g;
        let ceil_div =
            |a: i64, b: i64| -> i64 { a.div_euclid(b) + i64::from(a.rem_euclid(b) != 0) };
        let mut min_j: i64 = 0;
        let mut max_j: i64 = ceil_div(h, mg).min(n + 1);
        let mut cur_len = max_j - min_j;
        let len = (2 * max_j + 2).min(n + 1) as usize;
        // column[j - min_j] = probability that a path reaching (i, j) has already
        // left the band; cells outside the window are 1 (already left).
        let mut column = vec![1.0_f64; len];
        for cell in column.iter_mut().take(max_j as usize) {
            *cell = 0.0;
        }
        for i in 1..=m {
            let (last_min_j, last_len) = (min_j, cur_len);
            min_j = ((ng * i - h).div_euclid(mg) + 1).max(0).min(n);
            max_j = ceil_div(ng * i + h, mg).min(n + 1);
            if max_j <= min_j {
                return 1.0;
            }
            let mut below = if min_j == 0 { 0.0 } else { 1.0 };
            let fi = i as f64;
            for jj in 0..(max_j - min_j) {
                let j = jj + min_j;
                // Cells beyond the previous window lie outside the band: 1.
                let left = column
                    .get((jj + min_j - last_min_j) as usize)
                    .copied()
                    .unwrap_or(1.0);
                below = (left * fi + below * j as f64) / (fi + j as f64);
                column[jj as usize] = below;
            }
            cur_len = max_j - min_j;
            if last_len > cur_len {
                let start = (max_j - min_j) as usize;
                let end = (start + (last_len - cur_len) as usize).min(column.len());
                for cell in &mut column[start..end] {
                    *cell = 1.0;
                }
            }
        }
        column[(max_j - min_j - 1) as usize]
    }

    #[test]
    fn dkw_bound_holds_for_the_exact_probability() {
        for (n1, n2) in [(50u64, 70u64), (200, 300), (1000, 600), (120, 40)] {
            let g = gcd(n1, n2);
            let lcm = (n1 / g) * n2;
            let mut checked = 0;
            for h in (1..lcm).step_by((lcm / 200).max(1) as usize) {
                let d = h as f64 / lcm as f64;
                let bound = dkw_bound(n1, n2, d);
                if bound >= 1.0 {
                    continue;
                }
                let exact = prob_outside_band(n1, n2, g, h);
                assert!(
                    exact <= bound * (1.0 + 1e-9),
                    "n1={n1} n2={n2} d={d}: exact {exact} above the bound {bound}"
                );
                checked += 1;
            }
            assert!(
                checked > 50,
                "n1={n1} n2={n2}: only {checked} statistics checked"
            );
        }
    }

    #[test]
    fn tail_bound_applies_to_strong_shifts_past_the_cell_budget_only() {
        // The lattice statistic of tests/oracle's tail_bound_3000_vs_2000_shift and
        // over_budget_10000_vs_3000_mild cases.
        let lattice = |n1: u64, n2: u64, d: f64| {
            let g = gcd(n1, n2);
            let lcm = (n1 / g) * n2;
            (g, lcm, (d * lcm as f64).round() as u64)
        };
        let (g, lcm, h) = lattice(3000, 2000, 0.196);
        let p = tail_bound(3000, 2000, g, lcm, h).expect("bounded");
        assert!((0.0..=KS_NEGLIGIBLE_P).contains(&p));
        let (g, lcm, h) = lattice(10_000, 3000, 0.057);
        assert_eq!(tail_bound(10_000, 3000, g, lcm, h), None);
        // Under the budget: always exact.
        let (g, lcm, h) = lattice(300, 200, 0.9);
        assert_eq!(tail_bound(300, 200, g, lcm, h), None);
    }

    #[test]
    fn interleaved_band_matches_the_one_cell_at_a_time_loop_bit_for_bit() {
        let mut checked = 0;
        for (n1, n2) in [
            (5, 7),
            (7, 5),
            (3, 100),
            (100, 3),
            (40, 41),
            (41, 40),
            (60, 90),
            (97, 13),
            (250, 173),
            (1000, 377),
        ] {
            let g = gcd(n1, n2);
            let lcm = (n1 / g) * n2;
            for step in 1..=40 {
                let h = (lcm * step / 40).max(1);
                let fast = prob_outside_band(n1, n2, g, h);
                let slow = prob_outside_band_scalar(n1, n2, g, h);
                assert_eq!(
                    fast.to_bits(),
                    slow.to_bits(),
                    "n1={n1} n2={n2} h={h}: {fast:e} vs {slow:e}"
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 400);
    }

    #[test]
    fn ks_identical_samples() {
        let a = [1.0, 2.0, 3.0];
        let r = ks_2samp(&a, &a);
        assert_eq!(r.statistic, Some(0.0));
        assert_eq!(r.p_value, Some(1.0));
    }

    #[test]
    fn ks_empty_side_is_undefined() {
        assert_eq!(ks_2samp(&[], &[1.0]), TestResult::UNDEFINED);
    }

    #[test]
    fn wasserstein_scipy_doc_example() {
        let w = wasserstein_1(&[0.0, 1.0, 3.0], &[5.0, 6.0, 8.0]);
        assert_eq!(w, Some(5.0));
    }

    #[test]
    fn bins_are_right_closed() {
        let cuts = [1.0, 2.0];
        assert_eq!(bin_index(&cuts, 1.0), 0);
        assert_eq!(bin_index(&cuts, 1.5), 1);
        assert_eq!(bin_index(&cuts, 2.0), 1);
        assert_eq!(bin_index(&cuts, 2.5), 2);
    }
}
