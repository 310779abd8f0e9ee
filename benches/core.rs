//! Throughput of the core on one core: decode + join + aggregate of ~200-byte records,
//! next to the parse-only cost of the same records (two baselines: serde_json skipping
//! everything, and serde_json into a borrowed struct of the same fields).
//! Run: `cargo bench --bench core`. Figures in BENCHMARKS.md.
//!
//! `CORE_BENCH_FIXED=<row>:<runs>` runs one row a fixed number of times instead, without
//! criterion, for counting cycles with `perf stat` or instructions with callgrind
//! (scripts/bench-core-cycles.sh): on a shared machine, these vary less than wall time.
//!
//! `CORE_BENCH_INTERLEAVED=<rounds>` times every row once per round, the rows taking turns,
//! and prints each row's fastest round and its share of the throughput of the three parse
//! rows (`&str` input; bytes checked as UTF-8, then `&str`; `&[u8]` input): noise
//! from other jobs only ever slows a round down, and taking turns exposes every row to the
//! same machine, so the minimum over many rounds is the steadiest wall-time ratio here.

use std::hint::black_box;

use criterion::{criterion_group, Criterion, Throughput};
use feedback_loop_core::engine::{Engine, EngineConfig};
use feedback_loop_core::record::{Decoder, Envelope, Input, Record, DECODE_BATCH};
use feedback_loop_core::settings::Config;
use serde::Deserialize;

const PAIRS: usize = 50_000;

/// Drift off: no features listed, no drift object, no detectors.
const CONFIG: &str = r#"
[join]
max_label_delay = "1m"
[[models]]
name = "fraud"
task = "binary"
positive_class = "1"
segments = ["channel"]
[models.drift]
enabled = false
[models.detectors]
adwin = { enabled = false }
ddm = { enabled = false }
page_hinkley = { enabled = false }
"#;

/// The 5 features listed (so decoded), drift and detectors off: what decoding them costs.
const CONFIG_FEATURES: &str = r#"
[join]
max_label_delay = "1m"
[[models]]
name = "fraud"
task = "binary"
positive_class = "1"
features = ["amount", "country", "age", "device", "hour"]
segments = ["channel"]
[models.drift]
enabled = false
[models.detectors]
adwin = { enabled = false }
ddm = { enabled = false }
page_hinkley = { enabled = false }
"#;

/// Drift on: 5 features (3 numeric, 2 categorical), prediction/score/label drift against
/// the first 1000 predictions, the three detectors with River's defaults.
const CONFIG_DRIFT: &str = r#"
[join]
max_label_delay = "1m"
[[models]]
name = "fraud"
task = "binary"
positive_class = "1"
features = ["amount", "country", "age", "device", "hour"]
segments = ["channel"]
reference_size = 1000
"#;

/// Drift off as in `CONFIG`, CBPE estimation on (`[models.estimation]`): the reference is
/// the first window (6000 pairs), the other windows are estimated, each checked once its
/// labels are in. What estimation costs on top of `decode_join_aggregate`.
const CONFIG_ESTIMATION: &str = r#"
[join]
max_label_delay = "1m"
[[models]]
name = "fraud"
task = "binary"
positive_class = "1"
segments = ["channel"]
[models.drift]
enabled = false
[models.detectors]
adwin = { enabled = false }
ddm = { enabled = false }
page_hinkley = { enabled = false }
[models.estimation]
method = "cbpe"
reference_size = 6000
"#;

/// Predictions and outcomes interleaved as they would arrive: the outcome of request i
/// comes after the prediction of request i + 100.
fn records() -> Vec<(Input, String)> {
    let mut out = Vec::with_capacity(2 * PAIRS);
    let channels = ["web", "app", "store"];
    let prediction = |i: usize| {
        format!(
            r#"{{"id":"req-{i:09}","model":"fraud","model_version":"1.0","timestamp":{},"prediction":{},"score":0.{:04},"features":{{"amount":{}.{:02},"country":"{}","age":{},"device":"{}","hour":{}}},"segment":{{"channel":"{}"}}}}"#,
            1_767_225_600_000u64 + i as u64 * 10,
            i % 2,
            (i * 7919) % 10_000,
            (i * 31) % 5000,
            i % 100,
            ["DE", "FR", "US", "IT"][i % 4],
            18 + (i * 13) % 60,
            ["ios", "android", "web"][(i / 7) % 3],
            (i / 360) % 24,
            channels[i % 3]
        )
    };
    let outcome = |i: usize| {
        format!(
            r#"{{"id":"req-{i:09}","timestamp":{},"actual":{}}}"#,
            1_767_225_600_000u64 + i as u64 * 10 + 1000,
            (i / 2) % 2
        )
    };
    for i in 0..PAIRS + 100 {
        if i < PAIRS {
            out.push((Input::Predictions, prediction(i)));
        }
        if i >= 100 {
            out.push((Input::Outcomes, outcome(i - 100)));
        }
    }
    out
}

#[allow(dead_code)]
#[derive(Deserialize)]
struct BorrowedPrediction<'a> {
    id: &'a str,
    model: &'a str,
    model_version: &'a str,
    timestamp: i64,
    prediction: i64,
    score: f64,
    #[serde(borrow)]
    features: BorrowedFeatures<'a>,
    #[serde(borrow)]
    segment: BorrowedSegment<'a>,
}

#[allow(dead_code)]
#[derive(Deserialize)]
struct BorrowedFeatures<'a> {
    amount: f64,
    country: &'a str,
}

#[allow(dead_code)]
#[derive(Deserialize)]
struct BorrowedSegment<'a> {
    channel: &'a str,
}

#[allow(dead_code)]
#[derive(Deserialize)]
struct BorrowedOutcome<'a> {
    id: &'a str,
    timestamp: i64,
    actual: i64,
}

fn bench(c: &mut Criterion) {
    let records = records();
    let bytes: usize = records.iter().map(|(_, r)| r.len()).sum();
    eprintln!(
        "{} records, {:.0} bytes on average",
        records.len(),
        bytes as f64 / records.len() as f64
    );
    let config = feedback_loop::config::from_toml_str(CONFIG).expect("bench config");
    let decoder = Decoder::new(&config);
    let mut group = c.benchmark_group("core");
    group.throughput(Throughput::Elements(records.len() as u64));
    group.sample_size(20);

    group.bench_function("parse_only_ignored", |b| {
        b.iter(|| {
            for (_, r) in &records {
                black_box(serde_json::from_str::<serde::de::IgnoredAny>(r).ok());
            }
        })
    });
    group.bench_function("parse_only_borrowed_struct", |b| {
        b.iter(|| parse_borrowed(&records))
    });
    group.bench_function("parse_only_borrowed_struct_from_slice", |b| {
        b.iter(|| parse_borrowed_from_slice(&records))
    });
    group.bench_function("parse_only_borrowed_struct_checked_utf8", |b| {
        b.iter(|| parse_borrowed_checked_utf8(&records))
    });
    group.bench_function("decode_only", |b| b.iter(|| decode(&decoder, &records)));
    let features_config =
        feedback_loop::config::from_toml_str(CONFIG_FEATURES).expect("bench config");
    let drift_config = feedback_loop::config::from_toml_str(CONFIG_DRIFT).expect("bench config");
    let estimation_config =
        feedback_loop::config::from_toml_str(CONFIG_ESTIMATION).expect("bench config");
    for (name, config) in [
        ("decode_join_aggregate", &config),
        ("decode_join_aggregate_features", &features_config),
        ("decode_join_aggregate_drift", &drift_config),
        ("decode_join_aggregate_estimation", &estimation_config),
    ] {
        let decoder = Decoder::new(config);
        group.bench_function(name, |b| b.iter(|| run_engine(config, &decoder, &records)));
    }
    group.bench_function("decode_join_aggregate_one_by_one", |b| {
        b.iter(|| run_engine_one_by_one(&config, &decoder, &records))
    });
    group.finish();
}

/// The `parse_only_borrowed_struct` row: serde_json into borrowed structs.
fn parse_borrowed(records: &[(Input, String)]) {
    for (input, r) in records {
        if *input == Input::Predictions {
            black_box(serde_json::from_str::<BorrowedPrediction>(r).ok());
        } else {
            black_box(serde_json::from_str::<BorrowedOutcome>(r).ok());
        }
    }
}

/// The `parse_only_borrowed_struct_from_slice` row: the same from bytes, as a Kafka
/// payload comes (serde_json then checks UTF-8 in the strings it reads).
fn parse_borrowed_from_slice(records: &[(Input, String)]) {
    for (input, r) in records {
        if *input == Input::Predictions {
            black_box(serde_json::from_slice::<BorrowedPrediction>(r.as_bytes()).ok());
        } else {
            black_box(serde_json::from_slice::<BorrowedOutcome>(r.as_bytes()).ok());
        }
    }
}

/// The `parse_only_borrowed_struct_checked_utf8` row: the bytes checked as UTF-8 once, then
/// the `&str` parse: what our decoder does with a payload, done by serde_json.
fn parse_borrowed_checked_utf8(records: &[(Input, String)]) {
    for (input, r) in records {
        let Ok(text) = std::str::from_utf8(black_box(r.as_bytes())) else {
            continue;
        };
        if *input == Input::Predictions {
            black_box(serde_json::from_str::<BorrowedPrediction>(text).ok());
        } else {
            black_box(serde_json::from_str::<BorrowedOutcome>(text).ok());
        }
    }
}

/// The `decode_only` row: our decoder, no engine.
fn decode(decoder: &Decoder, records: &[(Input, String)]) {
    for (input, r) in records {
        if *input == Input::Predictions {
            black_box(decoder.prediction(r.as_bytes(), Envelope::default()).ok());
        } else {
            black_box(decoder.outcome(r.as_bytes(), Envelope::default()).ok());
        }
    }
}

/// The core as the service and `replay` drive it: [`DECODE_BATCH`] records decoded, then
/// joined and aggregated, the watermark advanced after each.
fn run_engine(config: &Config, decoder: &Decoder, records: &[(Input, String)]) -> usize {
    let mut engine = Engine::new(EngineConfig::from_config(config));
    let mut emitted = 0;
    let mut max_ts = i64::MIN;
    let mut batch = Vec::with_capacity(DECODE_BATCH);
    for chunk in records.chunks(DECODE_BATCH) {
        batch.extend(chunk.iter().map(|(input, r)| {
            decoder
                .decode(*input, r.as_bytes(), Envelope::default())
                .expect("valid")
        }));
        for record in &batch {
            let _ = engine.observe(record);
            max_ts = max_ts.max(record.ts());
            emitted += engine.advance_watermark(max_ts - 5_000).len();
        }
        batch.clear();
    }
    emitted += engine.finish().len();
    emitted += engine.take_estimation_checks().len();
    black_box(emitted)
}

/// The `decode_join_aggregate_one_by_one` row: [`run_engine`] with each record decoded just
/// before the engine takes it (what the service did before the seventh session).
fn run_engine_one_by_one(config: &Config, decoder: &Decoder, records: &[(Input, String)]) -> usize {
    let mut engine = Engine::new(EngineConfig::from_config(config));
    let mut emitted = 0;
    let mut max_ts = i64::MIN;
    for (input, r) in records {
        let record = decoder
            .decode(*input, r.as_bytes(), Envelope::default())
            .expect("valid");
        let _ = engine.observe(&record);
        max_ts = max_ts.max(record.ts());
        emitted += engine.advance_watermark(max_ts - 5_000).len();
    }
    emitted += engine.finish().len();
    black_box(emitted)
}

fn decode_all<'a>(decoder: &Decoder, records: &'a [(Input, String)]) -> Vec<Record<'a>> {
    records
        .iter()
        .map(|(input, r)| {
            decoder
                .decode(*input, r.as_bytes(), Envelope::default())
                .expect("valid")
        })
        .collect()
}

/// The `join_aggregate_only` row: [`run_engine`] without the decoding.
fn run_engine_decoded(config: &Config, records: &[Record<'_>]) -> usize {
    let mut engine = Engine::new(EngineConfig::from_config(config));
    let mut emitted = 0;
    let mut max_ts = i64::MIN;
    for record in records {
        let _ = engine.observe(record);
        max_ts = max_ts.max(record.ts());
        emitted += engine.advance_watermark(max_ts - 5_000).len();
    }
    emitted += engine.finish().len();
    black_box(emitted)
}

/// The rows of the fixed and interleaved modes; the first two are the parse baselines.
const ROWS: [&str; 10] = [
    "parse_only_borrowed_struct",
    "parse_only_borrowed_struct_from_slice",
    "parse_only_borrowed_struct_checked_utf8",
    "decode_only",
    "join_aggregate_only",
    "decode_join_aggregate",
    "decode_join_aggregate_one_by_one",
    "decode_join_aggregate_features",
    "decode_join_aggregate_drift",
    "decode_join_aggregate_estimation",
];

/// What the rows run on: the records, the four configurations (drift off, features,
/// drift on, estimation on) with their decoders, and the records decoded beforehand.
struct Inputs<'a> {
    records: &'a [(Input, String)],
    configs: &'a [Config; 4],
    decoders: &'a [Decoder],
    decoded: &'a [Record<'a>],
}

impl Inputs<'_> {
    /// One run of `row` over the records.
    fn run(&self, row: &str) {
        let (records, configs, decoders) = (self.records, self.configs, self.decoders);
        match row {
            "parse_only_borrowed_struct" => parse_borrowed(records),
            "parse_only_borrowed_struct_from_slice" => parse_borrowed_from_slice(records),
            "parse_only_borrowed_struct_checked_utf8" => parse_borrowed_checked_utf8(records),
            "decode_only" => decode(&decoders[0], records),
            "join_aggregate_only" => {
                black_box(run_engine_decoded(&configs[0], self.decoded));
            }
            "decode_join_aggregate" => {
                black_box(run_engine(&configs[0], &decoders[0], records));
            }
            "decode_join_aggregate_one_by_one" => {
                black_box(run_engine_one_by_one(&configs[0], &decoders[0], records));
            }
            "decode_join_aggregate_features" => {
                black_box(run_engine(&configs[1], &decoders[1], records));
            }
            "decode_join_aggregate_drift" => {
                black_box(run_engine(&configs[2], &decoders[2], records));
            }
            "decode_join_aggregate_estimation" => {
                black_box(run_engine(&configs[3], &decoders[3], records));
            }
            other => panic!("no row `{other}`"),
        }
    }
}

/// Builds the inputs and hands them to `body`.
fn with_inputs(body: impl FnOnce(&Inputs<'_>)) {
    let records = records();
    let configs = [CONFIG, CONFIG_FEATURES, CONFIG_DRIFT, CONFIG_ESTIMATION]
        .map(|text| feedback_loop::config::from_toml_str(text).expect("bench config"));
    let decoders: Vec<Decoder> = configs.iter().map(Decoder::new).collect();
    let decoded = decode_all(&decoders[0], &records);
    body(&Inputs {
        records: &records,
        configs: &configs,
        decoders: &decoders,
        decoded: &decoded,
    });
}

/// One row, `runs` times over the records (see the module documentation).
fn fixed(row: &str, runs: usize) {
    assert!(ROWS.contains(&row), "CORE_BENCH_FIXED: no row `{row}`");
    with_inputs(|inputs| {
        for _ in 0..runs {
            inputs.run(row);
        }
        println!("{}", inputs.records.len());
    });
}

/// Every row once per round, in turns; the fastest round of each (see the module docs).
fn interleaved(rounds: usize) {
    with_inputs(|inputs| {
        let mut best = [f64::INFINITY; ROWS.len()];
        for _ in 0..rounds {
            for (row, best) in ROWS.iter().zip(best.iter_mut()) {
                let started = std::time::Instant::now();
                inputs.run(row);
                *best = best.min(started.elapsed().as_secs_f64());
            }
        }
        // Shares of the three parse rows' throughput: `&str`, bytes checked as UTF-8 first,
        // and `from_slice`.
        let parses = [best[0], best[2], best[1]];
        println!(
            "{:<40} {:>9} {:>11} {:>12} {:>12} {:>12}",
            "row", "ns/event", "M events/s", "of &str", "of utf8+str", "of slice"
        );
        for (row, seconds) in ROWS.iter().zip(best) {
            let per_event = seconds / inputs.records.len() as f64;
            println!(
                "{row:<40} {:>9.1} {:>11.2} {:>11.1}% {:>11.1}% {:>11.1}%",
                per_event * 1e9,
                1e-6 / per_event,
                100.0 * parses[0] / seconds,
                100.0 * parses[1] / seconds,
                100.0 * parses[2] / seconds
            );
        }
    });
}

criterion_group!(benches, bench);

fn main() {
    if let Ok(spec) = std::env::var("CORE_BENCH_FIXED") {
        let (row, runs) = spec.split_once(':').expect("CORE_BENCH_FIXED=<row>:<runs>");
        fixed(
            row,
            runs.parse().expect("CORE_BENCH_FIXED: runs is a number"),
        );
        return;
    }
    if let Ok(rounds) = std::env::var("CORE_BENCH_INTERLEAVED") {
        interleaved(
            rounds
                .parse()
                .expect("CORE_BENCH_INTERLEAVED: rounds is a number"),
        );
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
