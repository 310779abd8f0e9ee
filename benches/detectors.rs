//! Detection quality of the streaming detectors (River defaults) on synthetic error
//! streams with a known change point, next to two trivial baselines (always fire, never
//! fire). Run: `cargo bench --bench detectors`. Figures in BENCHMARKS.md.
//!
//! Streams (seeded): Bernoulli error rate 0.1 -> 0.3 at pair 5 000 (20 000 pairs);
//! gaussian absolute error |N(1, 0.5)| -> |N(2, 0.5)| at 5 000; and the no-change versions
//! of both (100 000 pairs). Delay = pairs from the change to the first detection at or after
//! it (mean over the runs; "missed" counts runs without one). False alarms = detections
//! before the change (change streams) or anywhere (no-change streams), per 100 000 pairs.

use feedback_loop_core::drift::{Adwin, Ddm, PageHinkley};

const RUNS: u64 = 20;
const CHANGE: usize = 5_000;
const CHANGE_LEN: usize = 20_000;
const STILL_LEN: usize = 100_000;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn gauss(&mut self) -> f64 {
        let (u, v) = (self.uniform().max(1e-300), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

fn stream(kind: &str, len: usize, change: Option<usize>, seed: u64) -> Vec<f64> {
    let mut rng = Rng(seed);
    (0..len)
        .map(|i| {
            let after = change.is_some_and(|c| i >= c);
            match kind {
                "bernoulli" => f64::from(u8::from(rng.uniform() < if after { 0.3 } else { 0.1 })),
                _ => (if after { 2.0 } else { 1.0 } + 0.5 * rng.gauss()).abs(),
            }
        })
        .collect()
}

type Detector = Box<dyn FnMut(f64) -> bool>;
type Factory = Box<dyn Fn() -> Detector>;

fn detectors(binary: bool) -> Vec<(&'static str, Factory)> {
    let mut d: Vec<(&'static str, Factory)> = vec![
        (
            "ADWIN",
            Box::new(|| {
                let mut a = Adwin::default();
                Box::new(move |x| a.update(x))
            }),
        ),
        (
            "Page-Hinkley",
            Box::new(|| {
                let mut a = PageHinkley::default();
                Box::new(move |x| a.update(x))
            }),
        ),
        ("always fire", Box::new(|| Box::new(|_| true))),
        ("never fire", Box::new(|| Box::new(|_| false))),
    ];
    if binary {
        d.insert(
            1,
            (
                "DDM",
                Box::new(|| {
                    let mut a = Ddm::default();
                    Box::new(move |x| a.update(x))
                }),
            ),
        );
    }
    d
}

fn main() {
    println!("| stream | detector | mean delay (pairs) | missed | false alarms / 100k pairs |");
    println!("|---|---|---|---|---|");
    for kind in ["bernoulli", "gaussian"] {
        for (name, make) in detectors(kind == "bernoulli") {
            let (mut delays, mut missed, mut false_change) = (Vec::new(), 0, 0u64);
            let mut false_still = 0u64;
            for run in 0..RUNS {
                let mut det = make();
                let xs = stream(kind, CHANGE_LEN, Some(CHANGE), 1000 + run);
                let mut first = None;
                for (i, &x) in xs.iter().enumerate() {
                    if det(x) {
                        if i < CHANGE {
                            false_change += 1;
                        } else if first.is_none() {
                            first = Some(i - CHANGE);
                        }
                    }
                }
                match first {
                    Some(d) => delays.push(d as f64),
                    None => missed += 1,
                }
                let mut det = make();
                for x in stream(kind, STILL_LEN, None, 5000 + run) {
                    false_still += u64::from(det(x));
                }
            }
            let delay = if delays.is_empty() {
                "-".to_string()
            } else {
                format!("{:.0}", delays.iter().sum::<f64>() / delays.len() as f64)
            };
            let fa_change = false_change as f64 * 100_000.0 / (RUNS as f64 * CHANGE as f64);
            let fa_still = false_still as f64 * 100_000.0 / (RUNS as f64 * STILL_LEN as f64);
            println!(
                "| {kind} | {name} | {delay} | {missed}/{RUNS} | {fa_change:.1} before change; {fa_still:.1} on no-change |"
            );
        }
    }
}
