//! Comparison of a window against a frozen reference: all statistics plus
//! the `drifted` decision, in serialize-ready structs (non-finite values are
//! `None`, i.e. `null` in JSON).

use std::collections::BTreeSet;

use super::decision::{exceeds, DriftMethod, DriftRule};
use super::reference::{CategoricalReference, NumericReference};
use super::summary::CategoricalSummary;
use super::two_sample::{
    bin_proportions, chi_square_gof, finite, jensen_shannon_distance, ks_2samp_sorted, psi,
    wasserstein_1_sorted,
};
use super::DriftError;
use crate::output::TestResult;
pub use crate::output::{CategoricalDrift, NumericDrift};

/// Compares window samples (non-finite values are dropped) with a reference. `drifted` is
/// `None` when fewer than `rule.min_window_samples` finite samples remain.
/// Fails only for a method that does not apply to numeric data (`ChiSquare`).
pub fn compare_numeric(
    reference: &NumericReference,
    window: &[f64],
    rule: &DriftRule,
) -> Result<NumericDrift, DriftError> {
    let mut sorted: Vec<f64> = window.iter().copied().filter(|x| x.is_finite()).collect();
    crate::total_order_sort::sort_f64(&mut sorted);
    let (method, threshold) = rule.resolve_numeric(sorted.len());
    if method == DriftMethod::ChiSquare {
        return Err(DriftError::MethodNotApplicable {
            method,
            kind: "numeric",
        });
    }
    let both = !reference.is_empty() && !sorted.is_empty();
    let window_bins = if both {
        bin_proportions(reference.cuts(), &sorted)
    } else {
        Vec::new()
    };
    let psi_value = if both {
        psi(reference.bin_proportions(), &window_bins)
    } else {
        None
    };
    let js = if both {
        jensen_shannon_distance(reference.bin_proportions(), &window_bins)
    } else {
        None
    };
    let ks = ks_2samp_sorted(reference.sorted_samples(), &sorted);
    let wasserstein = wasserstein_1_sorted(reference.sorted_samples(), &sorted);
    let std = reference.std();
    let wasserstein_normalized = match wasserstein {
        Some(w) if std > 0.0 => finite(w / std),
        Some(0.0) => Some(0.0),
        _ => None,
    };
    let exceeded = match method {
        DriftMethod::Ks => exceeds(method, ks.p_value, threshold),
        DriftMethod::Psi => exceeds(method, psi_value, threshold),
        DriftMethod::Js => exceeds(method, js, threshold),
        // Zero-spread reference: any movement is drift.
        _ if std == 0.0 => wasserstein.is_some_and(|w| w > 0.0),
        _ => exceeds(method, wasserstein_normalized, threshold),
    };
    let drifted = rule.decide(sorted.len(), exceeded);
    Ok(NumericDrift {
        method,
        threshold,
        n_reference: reference.len(),
        n_window: sorted.len(),
        psi: psi_value,
        ks,
        wasserstein,
        wasserstein_normalized,
        js,
        drifted,
    })
}

/// Aligned frequency vectors over the union of categories (sorted by name):
/// `(reference proportions, window proportions, window counts)`.
pub(crate) fn category_frequencies(
    reference: &CategoricalReference,
    window: &CategoricalSummary,
) -> (Vec<f64>, Vec<f64>, Vec<u64>) {
    let names: BTreeSet<&str> = reference
        .counts()
        .keys()
        .map(String::as_str)
        .chain(window.counts().keys().map(String::as_str))
        .collect();
    let total = window.total();
    let mut ref_p = Vec::with_capacity(names.len());
    let mut win_p = Vec::with_capacity(names.len());
    let mut win_counts = Vec::with_capacity(names.len());
    for name in names {
        let c = window.counts().get(name).copied().unwrap_or(0);
        ref_p.push(reference.proportion(name));
        win_counts.push(c);
        win_p.push(if total > 0 {
            c as f64 / total as f64
        } else {
            0.0
        });
    }
    (ref_p, win_p, win_counts)
}

/// Compares window category counts with a reference. Categories unseen in
/// the reference get reference proportion 1e-4 before renormalisation (chi
/// square) / flooring (PSI); reference categories absent from the window
/// count 0. Fails for methods that do not apply to categories
/// (`Ks`, `Wasserstein`).
pub fn compare_categorical(
    reference: &CategoricalReference,
    window: &CategoricalSummary,
    rule: &DriftRule,
) -> Result<CategoricalDrift, DriftError> {
    let n_window = window.total();
    let (method, threshold) =
        rule.resolve_categorical(usize::try_from(n_window).unwrap_or(usize::MAX));
    if matches!(method, DriftMethod::Ks | DriftMethod::Wasserstein) {
        return Err(DriftError::MethodNotApplicable {
            method,
            kind: "categorical",
        });
    }
    let both = reference.total() > 0 && n_window > 0;
    let (ref_p, win_p, win_counts) = category_frequencies(reference, window);
    let (chi_square, psi_value, js) = if both {
        (
            chi_square_gof(&win_counts, &ref_p),
            psi(&ref_p, &win_p),
            jensen_shannon_distance(&ref_p, &win_p),
        )
    } else {
        (TestResult::UNDEFINED, None, None)
    };
    let value = match method {
        DriftMethod::Psi => psi_value,
        DriftMethod::Js => js,
        _ => chi_square.p_value,
    };
    Ok(CategoricalDrift {
        method,
        threshold,
        n_reference: reference.total(),
        n_window,
        chi_square,
        psi: psi_value,
        js,
        drifted: rule.decide(
            usize::try_from(n_window).unwrap_or(usize::MAX),
            exceeds(method, value, threshold),
        ),
    })
}
