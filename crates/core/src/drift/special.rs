//! Special functions needed by the drift tests, written from the textbook
//! definitions so the crate needs no numerical dependency:
//! the log-gamma function, the regularized upper incomplete gamma function
//! `Q(a, x)` (chi-square survival = `Q(k/2, x/2)`), and the survival
//! functions of the one-sided (Smirnov) and two-sided (Kolmogorov) one-sample
//! KS distributions, which `ks_2samp` needs on its asymptotic path.
//!
//! The two-sided Kolmogorov survival function follows the same algorithm
//! selection as `scipy.stats.kstwo.sf` (Simard & L'Ecuyer 2011): Ruben-Gambino
//! closed forms at the edges, `2 * smirnov` in the upper tail, the
//! Durbin matrix (Marsaglia-Tsang-Wang) for the exact CDF and the Pelz-Good
//! expansion where scipy uses it. Where scipy uses the Pomeranz recursion
//! (n <= 140) we use the Durbin matrix instead: both are exact algorithms, so
//! the results agree to rounding.

use std::f64::consts::PI;

/// Lanczos coefficients (g = 7, n = 9); relative accuracy ~1e-15.
const LANCZOS_G: f64 = 7.0;
const LANCZOS_COEFFS: [f64; 9] = [
    0.999_999_999_999_809_9,
    676.520_368_121_885_1,
    -1_259.139_216_722_402_8,
    771.323_428_777_653_1,
    -176.615_029_162_140_6,
    12.507_343_278_686_905,
    -0.138_571_095_265_720_12,
    9.984_369_578_019_572e-6,
    1.505_632_735_149_311_6e-7,
];

/// Natural logarithm of the gamma function for `x > 0`.
pub(crate) fn ln_gamma(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 {
        return f64::NAN;
    }
    if x < 0.5 {
        // Reflection: Gamma(x) Gamma(1-x) = pi / sin(pi x).
        return (PI / (PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let z = x - 1.0;
    let mut series = LANCZOS_COEFFS[0];
    for (i, c) in LANCZOS_COEFFS.iter().enumerate().skip(1) {
        series += c / (z + i as f64);
    }
    let t = z + LANCZOS_G + 0.5;
    0.5 * (2.0 * PI).ln() + (z + 0.5) * t.ln() - t + series.ln()
}

/// Regularized upper incomplete gamma function `Q(a, x) = Gamma(a, x) / Gamma(a)`.
/// Returns NaN for invalid arguments (`a <= 0`, `x < 0`, NaN).
pub(crate) fn gamma_q(a: f64, x: f64) -> f64 {
    if a.is_nan() || x.is_nan() || a <= 0.0 || x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 {
        return 1.0;
    }
    if x.is_infinite() {
        return 0.0;
    }
    if x < a + 1.0 {
        1.0 - gamma_p_series(a, x)
    } else {
        gamma_q_continued_fraction(a, x)
    }
}

/// `exp(a ln x - x - ln Gamma(a))`, the common prefactor of both expansions.
fn gamma_prefactor(a: f64, x: f64) -> f64 {
    (a * x.ln() - x - ln_gamma(a)).exp()
}

/// Series for the regularized lower incomplete gamma `P(a, x)`, valid for `x < a + 1`.
fn gamma_p_series(a: f64, x: f64) -> f64 {
    let mut term = 1.0 / a;
    let mut sum = term;
    let mut denom = a;
    for _ in 0..10_000 {
        denom += 1.0;
        term *= x / denom;
        sum += term;
        if term.abs() < sum.abs() * 1e-17 {
            break;
        }
    }
    sum * gamma_prefactor(a, x)
}

/// Continued fraction (modified Lentz) for `Q(a, x)`, valid for `x >= a + 1`.
fn gamma_q_continued_fraction(a: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let mut b = x + 1.0 - a;
    let mut c = 1.0 / TINY;
    let mut d = 1.0 / b;
    let mut h = d;
    for i in 1..10_000 {
        let an = -(i as f64) * (i as f64 - a);
        b += 2.0;
        d = an * d + b;
        if d.abs() < TINY {
            d = TINY;
        }
        c = b + an / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let delta = d * c;
        h *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    h * gamma_prefactor(a, x)
}

/// Chi-square survival function with `dof` degrees of freedom.
/// NaN when `dof <= 0` (as scipy, whose chi2 needs df > 0).
pub fn chi2_sf(statistic: f64, dof: f64) -> f64 {
    if dof.is_nan() || dof <= 0.0 {
        return f64::NAN;
    }
    if statistic <= 0.0 {
        return 1.0;
    }
    gamma_q(dof / 2.0, statistic / 2.0)
}

/// Survival function of the one-sided one-sample KS statistic `D_n^+`
/// (scipy's `special.smirnov(n, d)`), by the Smirnov / Birnbaum-Tingey sum
/// `sum_{j=0}^{floor(n(1-d))} C(n,j) d (d + j/n)^(j-1) (1 - d - j/n)^(n-j)`,
/// each term evaluated in log space.
pub fn smirnov_sf(n: u64, d: f64) -> f64 {
    if d.is_nan() || n == 0 {
        return f64::NAN;
    }
    if d <= 0.0 {
        return 1.0;
    }
    if d >= 1.0 {
        return 0.0;
    }
    let nf = n as f64;
    let last = (nf * (1.0 - d)).floor().max(0.0) as u64;
    let ln_d = d.ln();
    let mut ln_binom = 0.0_f64;
    let mut total = 0.0_f64;
    for j in 0..=last.min(n) {
        if j > 0 {
            ln_binom += ((n - j + 1) as f64 / j as f64).ln();
        }
        let jf = j as f64;
        let upper = (n - j) as f64 / nf - d;
        let term = if upper <= 0.0 {
            // (1 - d - j/n)^(n-j): only the 0^0 = 1 case (j == n) survives.
            if j == n {
                (ln_binom + ln_d + (jf - 1.0) * (d + jf / nf).ln()).exp()
            } else {
                0.0
            }
        } else if j == 0 {
            (nf * upper.ln()).exp()
        } else {
            (ln_binom + ln_d + (jf - 1.0) * (d + jf / nf).ln() + (nf - jf) * upper.ln()).exp()
        };
        total += term;
    }
    total.clamp(0.0, 1.0)
}

/// `ln(n!) - n ln(n)` by Stirling's series (used for large n).
fn ln_factorial_over_n_pow_n(n: u64) -> f64 {
    // Stirling series coefficients B_2k / (2k (2k-1)), highest order first.
    const STIRLING: [f64; 8] = [
        -3617.0 / 122_400.0,
        1.0 / 156.0,
        -691.0 / 360_360.0,
        1.0 / 1188.0,
        -1.0 / 1680.0,
        1.0 / 1260.0,
        -1.0 / 360.0,
        1.0 / 12.0,
    ];
    let nf = n as f64;
    let rn = 1.0 / nf;
    let arg = rn / nf;
    let mut poly = 0.0;
    for c in STIRLING {
        poly = poly * arg + c;
    }
    nf.ln() / 2.0 - nf + (2.0 * PI).ln() / 2.0 + rn * poly
}

/// Survival function `Pr(D_n > d)` of the two-sided one-sample KS statistic
/// (scipy's `kstwo.sf(d, n)`).
pub fn kolmogorov_sf(n: u64, d: f64) -> f64 {
    if n == 0 || d.is_nan() {
        return f64::NAN;
    }
    if d >= 1.0 {
        return 0.0;
    }
    if d <= 0.0 {
        return 1.0;
    }
    let nf = n as f64;
    let t = nf * d;
    if t <= 1.0 {
        if t <= 0.5 {
            return 1.0;
        }
        let cdf = if n <= 140 {
            let mut prod = 1.0;
            for i in 1..=n {
                prod *= i as f64 * (1.0 / nf) * (2.0 * t - 1.0);
            }
            prod
        } else {
            (ln_factorial_over_n_pow_n(n) + nf * (2.0 * t - 1.0).ln()).exp()
        };
        return (1.0 - cdf).clamp(0.0, 1.0);
    }
    if t >= nf - 1.0 {
        return (2.0 * (1.0 - d).powf(nf)).clamp(0.0, 1.0);
    }
    if d >= 0.5 {
        return (2.0 * smirnov_sf(n, d)).clamp(0.0, 1.0);
    }
    let n_d_squared = t * d;
    if n <= 140 {
        if n_d_squared <= 4.0 {
            // scipy: Durbin matrix below 0.754693, Pomeranz up to 4; both exact.
            return (1.0 - kolmogorov_cdf_durbin(n, d)).clamp(0.0, 1.0);
        }
        return (2.0 * smirnov_sf(n, d)).clamp(0.0, 1.0);
    }
    if n_d_squared >= 370.0 {
        return 0.0;
    }
    if n_d_squared >= 2.2 {
        return (2.0 * smirnov_sf(n, d)).clamp(0.0, 1.0);
    }
    let cdf = if n <= 100_000 && nf * d.powf(1.5) <= 1.4 {
        kolmogorov_cdf_durbin(n, d)
    } else {
        kolmogorov_cdf_pelz_good(n, d)
    };
    (1.0 - cdf).clamp(0.0, 1.0)
}

/// Exact `Pr(D_n <= d)` by the Durbin matrix method (Marsaglia, Tsang & Wang
/// 2003): the (k,k) entry of `H^n`, times `n!/n^n`, with power-of-two rescaling.
fn kolmogorov_cdf_durbin(n: u64, d: f64) -> f64 {
    const SCALE_EXP: i32 = 128;
    let scale = 2f64.powi(SCALE_EXP);
    let inv_scale = 2f64.powi(-SCALE_EXP);
    let nf = n as f64;
    let nd = nf * d;
    if d >= 1.0 {
        return 1.0;
    }
    if nd <= 0.5 {
        return 0.0;
    }
    let k = nd.ceil() as usize;
    let h = k as f64 - nd;
    let m = 2 * k - 1;
    // w[j] = 1/j!, v[j] = (1 - h^(j+1)) / (j+1)!
    let mut w = vec![0.0; m];
    let mut v = vec![0.0; m];
    let mut fac = 1.0;
    for j in 1..=m {
        w[j - 1] = fac;
        fac /= j as f64;
        v[j - 1] = (1.0 - h.powi(j as i32)) * fac;
    }
    let tt = (2.0 * h - 1.0).max(0.0).powi(m as i32) - 2.0 * h.powi(m as i32);
    v[m - 1] = (1.0 + tt) * fac;
    let mut matrix = vec![0.0; m * m];
    for i in 1..m {
        for row in (i - 1)..m {
            matrix[row * m + i] = w[row - (i - 1)];
        }
    }
    for row in 0..m {
        matrix[row * m] = v[row];
    }
    for col in 0..m {
        matrix[(m - 1) * m + col] = v[m - 1 - col];
    }
    let mut power = identity(m);
    let mut exponent: i32 = 0;
    let mut matrix_exponent: i32 = 0;
    let mut remaining = n;
    while remaining > 0 {
        if remaining % 2 == 1 {
            power = mat_mul(&power, &matrix, m);
            exponent += matrix_exponent;
        }
        matrix = mat_mul(&matrix, &matrix, m);
        matrix_exponent *= 2;
        if matrix[(k - 1) * m + (k - 1)].abs() > scale {
            for x in matrix.iter_mut() {
                *x /= scale;
            }
            matrix_exponent += SCALE_EXP;
        }
        remaining /= 2;
    }
    let mut p = power[(k - 1) * m + (k - 1)];
    for i in 1..=n {
        p = i as f64 * p / nf;
        if p.abs() < inv_scale {
            p *= scale;
            exponent -= SCALE_EXP;
        }
    }
    p * 2f64.powi(exponent)
}

fn identity(m: usize) -> Vec<f64> {
    let mut out = vec![0.0; m * m];
    for i in 0..m {
        out[i * m + i] = 1.0;
    }
    out
}

fn mat_mul(a: &[f64], b: &[f64], m: usize) -> Vec<f64> {
    let mut out = vec![0.0; m * m];
    for i in 0..m {
        for k in 0..m {
            let aik = a[i * m + k];
            if aik == 0.0 {
                continue;
            }
            for j in 0..m {
                out[i * m + j] += aik * b[k * m + j];
            }
        }
    }
    out
}

/// Pelz-Good (1976) asymptotic expansion of `Pr(D_n <= d)`, in the
/// theta-function form scipy uses for large n.
fn kolmogorov_cdf_pelz_good(n: u64, d: f64) -> f64 {
    if d <= 0.0 {
        return 0.0;
    }
    if d >= 1.0 {
        return 1.0;
    }
    let nf = n as f64;
    let z = nf.sqrt() * d;
    let z2 = z * z;
    let z3 = z2 * z;
    let z4 = z2 * z2;
    let z6 = z4 * z2;
    let pi2 = PI * PI;
    let pi4 = pi2 * pi2;
    let pi6 = pi4 * pi2;
    let sqrt_2pi = (2.0 * PI).sqrt();
    let qlog = -pi2 / 8.0 / z2;
    if qlog < -708.0 {
        return 0.0;
    }
    let q = qlog.exp();
    let k1a = -z2;
    let k1b = pi2 / 4.0;
    let k2a = 6.0 * z6 + 2.0 * z4;
    let k2b = (2.0 * z4 - 5.0 * z2) * pi2 / 4.0;
    let k2c = pi4 * (1.0 - 2.0 * z2) / 16.0;
    let k3d = pi6 * (5.0 - 30.0 * z2) / 64.0;
    let k3c = pi4 * (-60.0 * z2 + 212.0 * z4) / 16.0;
    let k3b = pi2 * (135.0 * z4 - 96.0 * z6) / 4.0;
    let k3a = -30.0 * z6 - 90.0 * z.powi(8);
    let max_k = (16.0 * z / PI).ceil() as i64;
    let mut terms = [0.0_f64; 4];
    for k in (1..=max_k).rev() {
        let m = (2 * k - 1) as f64;
        let m2 = m * m;
        let m4 = m2 * m2;
        let m6 = m4 * m2;
        let q_power = q.powf(8.0 * k as f64);
        let coeffs = [
            1.0,
            k1a + k1b * m2,
            k2a + k2b * m2 + k2c * m4,
            k3a + k3b * m2 + k3c * m4 + k3d * m6,
        ];
        for (t, c) in terms.iter_mut().zip(coeffs) {
            *t = *t * q_power + c;
        }
    }
    let denominators = [z, 6.0 * z4, 72.0 * z.powi(7), 6480.0 * z.powi(10)];
    for (t, den) in terms.iter_mut().zip(denominators) {
        *t = *t * q * sqrt_2pi / den;
    }
    let q2 = (-pi2 / 2.0 / z2).exp();
    let sqrt3z = 3f64.sqrt() * z;
    let mut k2_extra = 0.0;
    let mut k3_extra = 0.0;
    for k in (1..=max_k).rev() {
        let kf = k as f64;
        let k2 = kf * kf;
        let q_power = q2.powf(k2);
        let kpi = PI * kf;
        k2_extra += k2 * q_power;
        k3_extra += (sqrt3z + kpi) * (sqrt3z - kpi) * k2 * q_power;
    }
    terms[2] += k2_extra * pi2 * sqrt_2pi / (-36.0 * z3);
    terms[3] += k3_extra * pi2 * sqrt_2pi / (216.0 * z6);
    let mut sum = 0.0;
    for (i, t) in terms.iter().enumerate() {
        sum += t / nf.powf(i as f64 / 2.0);
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_gamma_matches_factorials() {
        let mut fact = 1.0_f64;
        for n in 1..30 {
            fact *= n as f64;
            let got = ln_gamma(n as f64 + 1.0);
            assert!(
                (got - fact.ln()).abs() < 1e-12 * fact.ln().max(1.0),
                "n={n}"
            );
        }
        assert!((ln_gamma(0.5) - PI.sqrt().ln()).abs() < 1e-14);
    }

    #[test]
    fn gamma_q_known_values() {
        // chi2.sf(3.84, 1) = 0.050043521248705...
        assert!((chi2_sf(3.84, 1.0) - 0.050_043_521_248_705_3).abs() < 1e-13);
        // Q(1, x) = exp(-x)
        for x in [0.1_f64, 1.0, 5.0, 30.0] {
            assert!((gamma_q(1.0, x) - (-x).exp()).abs() < 1e-15);
        }
        assert!(chi2_sf(1.0, 0.0).is_nan());
    }
}
