//! Sorting a window's values (ROC AUC's scores, the drift tests' samples): the two ways
//! `total_order_sort::sort_f64` can sort their keys, at the sizes a window holds, to place the
//! threshold between them (`RADIX_FROM`). Run: `cargo bench --bench sort`. Figures in
//! BENCHMARKS.md.

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use feedback_loop_core::total_order_sort::{radix_sort_keys, sort_f64, total_order_key};

/// `n` distinct scores in [0, 1), in a scrambled order (a multiplicative hash of the index).
fn scores(n: usize) -> Vec<f64> {
    (0..n as u64)
        .map(|i| {
            let mut h = (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            h ^= h >> 29;
            (h % 1_000_000_007) as f64 / 1e9
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("sort_keys");
    group.sample_size(20);
    for n in [1_000, 3_000, 10_000, 30_000, 100_000] {
        let keys: Vec<u64> = scores(n).into_iter().map(total_order_key).collect();
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("comparison", n), &keys, |b, keys| {
            b.iter_batched_ref(
                || keys.clone(),
                |k| k.sort_unstable(),
                BatchSize::LargeInput,
            )
        });
        group.bench_with_input(BenchmarkId::new("radix", n), &keys, |b, keys| {
            b.iter_batched_ref(|| keys.clone(), radix_sort_keys, BatchSize::LargeInput)
        });
        let values = scores(n);
        group.bench_with_input(BenchmarkId::new("sort_f64", n), &values, |b, values| {
            b.iter_batched_ref(|| values.clone(), |v| sort_f64(v), BatchSize::LargeInput)
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
