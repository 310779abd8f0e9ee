//! Quality metrics as mergeable aggregates: what a window accumulates per joined pair, and
//! how the published values are computed from it (scikit-learn's definitions).

pub mod classification;
pub mod regression;

pub use classification::{
    classification_metrics, BinaryPair, ConfusionMatrix, LabelContext, ScoreAggregate,
};
pub use regression::RegressionAggregate;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Task;
    use crate::window::Quality;
    use proptest::prelude::*;

    /// The published form of a series' metrics.
    fn published(quality: &Quality) -> String {
        match quality {
            Quality::Classification { confusion, scores } => {
                let name = |id: u32| ["negative", "positive"][id as usize].to_string();
                let labels = LabelContext {
                    name: &name,
                    positive_class: Some("positive"),
                };
                serde_json::to_string(&classification_metrics(confusion, scores, &labels))
            }
            Quality::Regression(r) => serde_json::to_string(&r.metrics()),
        }
        .expect("metrics encode")
    }

    /// A pseudo-random permutation of `0..n` from `seed`.
    fn permutation(n: usize, seed: u64) -> Vec<usize> {
        let mut state = seed | 1;
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            order.swap(i, (state % (i as u64 + 1)) as usize);
        }
        order
    }

    proptest! {
        /// A window's pairs dealt to k partial windows (each fed in its own order), the
        /// partials merged with `Quality::merge` in any order: the same published metrics,
        /// byte for byte, as one window fed every pair in order.
        #[test]
        fn merged_partial_windows_publish_the_same_bytes(
            pairs in prop::collection::vec(
                (prop_oneof![0.0f64..1.0, 0.0f64..1e-9, Just(0.25)], any::<bool>(),
                 prop_oneof![-1e3f64..1e3, 1e7f64..1e7 + 1.0, Just(1e16), Just(-1e16)],
                 -1e3f64..1e3),
                2..150),
            parts in 1usize..6,
            seed in any::<u64>(),
        ) {
            for task in [Task::Binary, Task::Regression] {
                let add = |q: &mut Quality, &(p, y, actual, predicted): &(f64, bool, f64, f64)| {
                    match q {
                        Quality::Classification { confusion, scores } => {
                            confusion.add(y as u32, (p >= 0.5) as u32);
                            scores.add_binary(p, y);
                        }
                        Quality::Regression(r) => r.add(actual, predicted),
                    }
                };
                let mut one = Quality::empty(task);
                for pair in &pairs {
                    add(&mut one, pair);
                }
                let mut partials = vec![Quality::empty(task); parts];
                for (n, &i) in permutation(pairs.len(), seed).iter().enumerate() {
                    add(&mut partials[n % parts], &pairs[i]);
                }
                let mut merged = Quality::empty(task);
                for i in permutation(parts, seed.rotate_left(17)) {
                    merged.merge(&partials[i]);
                }
                prop_assert_eq!(published(&merged), published(&one));
                prop_assert_eq!(&merged, &one);
            }
        }
    }

    /// Plain `f64` sums would not pass the test above: the same terms in two orders.
    #[test]
    fn naive_sums_depend_on_the_order() {
        let terms = [1e16, 1.0, -1e16, 0.1, 0.2, 0.3];
        let forward: f64 = terms.iter().sum();
        let backward: f64 = terms.iter().rev().sum();
        assert_ne!(forward.to_bits(), backward.to_bits());
    }
}
