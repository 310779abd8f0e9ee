//! The exact two-sample Kolmogorov-Smirnov test at window close, at the largest sample
//! sizes that take the exact path (10 000 per side, as in scipy's `method="auto"`): the
//! lattice-path recursion costs O(n1 * n2 * min(1, ~2D)) cells when the sizes differ.
//! Run: `cargo bench --bench two_sample`. Figures in BENCHMARKS.md.

use criterion::{criterion_group, criterion_main, Criterion};
use feedback_loop_core::drift::two_sample::ks_2samp_sorted;

/// Evenly spaced normal quantiles (deterministic stand-in for a normal sample), shifted.
fn normal_sample(n: usize, shift: f64) -> Vec<f64> {
    // Inverse of the logistic CDF, close enough to a normal shape for a benchmark.
    (0..n)
        .map(|i| {
            let u = (i as f64 + 0.5) / n as f64;
            (u / (1.0 - u)).ln() * 0.55 + shift
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let reference = normal_sample(10_000, 0.0);
    let mut group = c.benchmark_group("ks_2samp_exact");
    group.sample_size(10);
    for (name, shift) in [("no_shift", 0.0), ("shift_0.5sd", 0.5), ("disjoint", 100.0)] {
        let window = normal_sample(9_000, shift);
        let result = ks_2samp_sorted(&reference, &window);
        eprintln!(
            "{name}: D = {:.4}, p = {:e}",
            result.statistic.unwrap_or(f64::NAN),
            result.p_value.unwrap_or(f64::NAN)
        );
        group.bench_function(format!("10000_vs_9000_{name}"), |b| {
            b.iter(|| {
                ks_2samp_sorted(
                    std::hint::black_box(&reference),
                    std::hint::black_box(&window),
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
