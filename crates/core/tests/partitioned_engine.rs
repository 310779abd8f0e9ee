//! The partitioned engine against the single engine (what `replay` runs), with drift,
//! detectors, rules and performance estimation (estimates and checks): the input's
//! join keys hashed into P tasks, each task's engine shard fed its share in the input's
//! order, the shards' partials and markers handed to a finalizer in a random interleaving
//! (each task's own order kept, as a Kafka partition keeps it), some partials re-sent as a
//! restored task would. The records and rule events must be byte-identical.

use feedback_loop_core::checkpoint::{decode_versioned, encode_versioned};
use feedback_loop_core::monitor::{Emitted, Monitor, Output};
use feedback_loop_core::partition::{Finalizer, Receipt, TaskShard, TaskStep};
use feedback_loop_core::record::{Decoder, Envelope, Input, Record};
use feedback_loop_core::settings::Config;
use proptest::prelude::*;

const CONFIG: &str = r#"
[kafka]
bootstrap_servers = "localhost:9092"
group_id = "partition-test"

[join]
max_label_delay = "40s"
max_outcome_lead = "5s"

[window]
size = "10s"
allowed_lateness = "2s"

[[models]]
name = "fraud"
task = "binary"
positive_class = "1"
features = ["amount", "country"]
segments = ["channel"]
reference = "first"
reference_size = 150
[models.drift]
min_window_samples = 20
[models.detectors]
adwin = { enabled = true }
ddm = { enabled = true }
page_hinkley = { enabled = true }
[models.estimation]
method = "cbpe"
reference_size = 200

[[models]]
name = "intent"
task = "multiclass"
features = ["length", "lang"]
reference = "previous"
[models.estimation]
method = "cbpe"
calibration = "none"
reference_size = 150

[[models]]
name = "eta"
task = "regression"
features = ["distance"]
reference_size = 100
[models.detectors]
page_hinkley = { enabled = true, threshold = 5.0 }

[[rules]]
name = "fraud-accuracy"
model = "fraud"
metric = "classification.accuracy"
op = "<"
threshold = 0.8
resolve_threshold = 0.85
min_samples = 10
for_windows = 2
retrain = true
cooldown = "30s"

[[rules]]
name = "eta-mae"
model = "eta"
metric = "regression.mae"
op = ">"
threshold = 2.0
min_samples = 5

[[rules]]
name = "estimate-off"
model = "fraud"
metric = "estimation_check.metrics.accuracy.abs_error"
op = ">"
threshold = 0.02
min_samples = 20

[[rules]]
name = "amount-drift"
model = "fraud"
metric = "drift.features.amount.drifted"
op = "=="
threshold = 1
"#;

fn config() -> Config {
    let config: Config = toml::from_str(CONFIG).expect("the test config parses");
    config.validate().expect("the test config is valid");
    config
}

/// SplitMix64: a small seeded generator, so that a failing case is reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One input line: (event time, is a prediction, join id, JSON).
type Line = (i64, bool, String, String);

/// A stream of `requests` requests over about `requests / 20` seconds: predictions of the
/// three models (two fraud versions, a drift part-way), outcomes 0-30 s later (some never,
/// some duplicated, some naming no model), in event-time order as `replay` reads them.
fn stream(seed: u64, requests: usize) -> Vec<Line> {
    let mut rng = Rng(seed);
    let mut lines: Vec<Line> = Vec::new();
    for i in 0..requests {
        let ts = 1_700_000_000_000 + (i as i64) * 50 + rng.below(40) as i64;
        let drifted = i > requests / 2;
        let id = format!("r{seed}-{i}");
        let (prediction, outcome) = match rng.below(3) {
            0 => {
                let amount = rng.unit() * 100.0 + if drifted { 40.0 } else { 0.0 };
                let score = (rng.unit() * 0.6 + if amount > 70.0 { 0.4 } else { 0.0 }).min(1.0);
                let version = if rng.below(4) == 0 {
                    "2.0-shadow"
                } else {
                    "1.0"
                };
                let country = ["DE", "FR", "US", "BR"][rng.below(4) as usize];
                let channel = ["web", "app"][rng.below(2) as usize];
                let predicted = u8::from(score > 0.5);
                let actual = if rng.unit() < 0.8 {
                    predicted
                } else {
                    1 - predicted
                };
                (
                    format!(
                        r#"{{"id":"{id}","model":"fraud","model_version":"{version}","timestamp":{ts},"prediction":"{predicted}","score":{score},"features":{{"amount":{amount},"country":"{country}"}},"segment":{{"channel":"{channel}"}}}}"#
                    ),
                    format!(r#""actual":"{actual}""#),
                )
            }
            1 => {
                let classes = ["billing", "support", "sales"];
                let predicted = rng.below(3) as usize;
                let actual = if rng.unit() < 0.7 {
                    predicted
                } else {
                    rng.below(3) as usize
                };
                let (a, b) = (rng.unit(), rng.unit());
                let p = [a * 0.5, b * 0.5, 1.0 - a * 0.5 - b * 0.5];
                let length = rng.below(200);
                let lang = ["en", "de"][rng.below(2) as usize];
                (
                    format!(
                        r#"{{"id":"{id}","model":"intent","timestamp":{ts},"prediction":"{}","score":{{"billing":{},"support":{},"sales":{}}},"features":{{"length":{length},"lang":"{lang}"}}}}"#,
                        classes[predicted], p[0], p[1], p[2]
                    ),
                    format!(r#""actual":"{}""#, classes[actual]),
                )
            }
            _ => {
                let distance = rng.unit() * 20.0;
                let predicted = distance * 1.5 + rng.unit();
                let actual = predicted + (rng.unit() - 0.5) * if drifted { 8.0 } else { 2.0 };
                (
                    format!(
                        r#"{{"id":"{id}","model":"eta","timestamp":{ts},"prediction":{predicted},"features":{{"distance":{distance}}}}}"#
                    ),
                    format!(r#""actual":{actual}"#),
                )
            }
        };
        let model = if prediction.contains(r#""model":"fraud""#) {
            "fraud"
        } else if prediction.contains(r#""model":"intent""#) {
            "intent"
        } else {
            "eta"
        };
        lines.push((ts, true, id.clone(), prediction));
        if rng.below(10) == 0 {
            continue; // never labelled
        }
        let delay = rng.below(30_000) as i64;
        let scope = if rng.below(5) == 0 {
            String::new()
        } else {
            format!(r#","model":"{model}""#)
        };
        let outcome = format!(
            r#"{{"id":"{id}","timestamp":{}{scope},{outcome}}}"#,
            ts + delay
        );
        if rng.below(50) == 0 {
            lines.push((ts + delay + 1, false, id.clone(), outcome.clone()));
        }
        lines.push((ts + delay, false, id, outcome));
    }
    // `replay`'s order: event time, predictions before outcomes, then input order.
    lines.sort_by_key(|(ts, prediction, _, _)| (*ts, !*prediction));
    lines
}

fn decode<'a>(decoder: &Decoder, line: &'a Line) -> Record<'a> {
    let input = if line.1 {
        Input::Predictions
    } else {
        Input::Outcomes
    };
    decoder
        .decode(input, line.3.as_bytes(), Envelope::default())
        .expect("the test stream decodes")
}

/// What was emitted, as the JSON lines a consumer of the topics would see.
#[derive(Default, Debug, PartialEq)]
struct Published {
    metrics: Vec<String>,
    events: Vec<String>,
}

impl Published {
    fn add(&mut self, emitted: Emitted) {
        for line in emitted.records_in_order() {
            let json = match line {
                Output::Metrics(record) => serde_json::to_string(record),
                Output::Check(check) => serde_json::to_string(check),
            };
            self.metrics.push(json.expect("records encode"));
        }
        for event in emitted.events {
            self.events
                .push(serde_json::to_string(&event).expect("events encode"));
        }
    }
}

/// The single engine, driven as `replay` drives it.
fn single(config: &Config, lines: &[Line]) -> Published {
    let decoder = Decoder::new(config);
    let lateness = config.window.allowed_lateness.as_millis_i64();
    let mut monitor = Monitor::new(config).expect("rules compile");
    let mut out = Published::default();
    let mut max_ts = i64::MIN;
    for line in lines {
        monitor
            .engine_mut()
            .observe(&decode(&decoder, line))
            .expect("within limits");
        max_ts = max_ts.max(line.0);
        out.add(monitor.advance_watermark(max_ts.saturating_sub(lateness)));
    }
    out.add(monitor.finish());
    out
}

fn task_of(id: &str, tasks: u32) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in id.as_bytes() {
        hash ^= b as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % tasks as u64) as u32
}

/// P task shards and a finalizer; `order_seed` picks the interleaving of the tasks'
/// messages and which partials are re-sent.
fn partitioned(config: &Config, lines: &[Line], tasks: u32, order_seed: u64) -> Published {
    let decoder = Decoder::new(config);
    let lateness = config.window.allowed_lateness.as_millis_i64();
    let mut shards: Vec<TaskShard> = (0..tasks)
        .map(|t| TaskShard::new(config, t, tasks).expect("partitionable"))
        .collect();
    // Per task, what it sends to the partials topic, in order.
    let mut sent: Vec<Vec<TaskStep>> = vec![Vec::new(); tasks as usize];
    let mut max_ts = vec![i64::MIN; tasks as usize];
    for line in lines {
        let t = task_of(&line.2, tasks) as usize;
        shards[t]
            .engine_mut()
            .observe(&decode(&decoder, line))
            .expect("within limits");
        max_ts[t] = max_ts[t].max(line.0);
        let step = shards[t].advance_watermark(max_ts[t].saturating_sub(lateness), false);
        if !step.partials.is_empty() {
            sent[t].push(step);
        }
    }
    for (t, shard) in shards.iter_mut().enumerate() {
        sent[t].push(shard.finish());
    }

    finalize(config, &sent, &mut Rng(order_seed), true)
}

/// The tasks' steps handed to a finalizer, each task's in order, the tasks interleaved at
/// random; with `resend`, some partials sent twice as a restored task would (before its
/// marker, and after it, when the window may have closed already).
fn finalize(config: &Config, sent: &[Vec<TaskStep>], rng: &mut Rng, resend: bool) -> Published {
    let tasks = sent.len();
    let mut finalizer = Finalizer::new(config, tasks as u32).expect("partitionable");
    let mut out = Published::default();
    let mut next = vec![0usize; tasks];
    let mut stale = 0;
    loop {
        let open: Vec<usize> = (0..tasks).filter(|&t| next[t] < sent[t].len()).collect();
        if open.is_empty() {
            break;
        }
        let t = open[rng.below(open.len() as u64) as usize];
        let step = &sent[t][next[t]];
        next[t] += 1;
        for partial in &step.partials {
            let receipt = finalizer
                .partial(t as u32, partial.clone())
                .expect("a valid partial");
            if !resend {
                continue;
            }
            assert_ne!(receipt, Receipt::Stale, "a first copy is never stale");
            if rng.below(4) == 0 {
                let again = finalizer
                    .partial(t as u32, partial.clone())
                    .expect("a valid partial");
                assert_eq!(again, Receipt::Replaced);
            }
        }
        out.add(finalizer.marker(step.marker).expect("a valid marker"));
        if resend && rng.below(8) == 0 {
            if let Some(partial) = step.partials.first() {
                if finalizer.partial(t as u32, partial.clone()).expect("valid") == Receipt::Stale {
                    stale += 1;
                }
            }
        }
    }
    if resend {
        assert_eq!(finalizer.stale_partials(), stale);
    }
    assert_eq!(finalizer.open_windows(), 0, "every window closed");
    out
}

fn assert_same(want: &Published, got: &Published, what: &str) {
    assert_eq!(
        got.metrics.len(),
        want.metrics.len(),
        "{what}: record count"
    );
    for (i, (g, w)) in got.metrics.iter().zip(&want.metrics).enumerate() {
        assert_eq!(g, w, "{what}: record {i} differs");
    }
    assert_eq!(got.events, want.events, "{what}: rule events");
}

#[test]
fn one_task_is_the_single_engine() {
    let config = config();
    let lines = stream(7, 6_000);
    let want = single(&config, &lines);
    assert!(want.metrics.len() > 100, "a stream with windows");
    assert!(!want.events.is_empty(), "a stream that fires rules");
    assert!(
        want.events.iter().any(|e| e.contains("estimate-off")),
        "and a rule on the estimation checks"
    );
    for (what, needle) in [
        ("CBPE estimates", "\"estimated\":{\"method\""),
        ("estimation checks", "feedback-loop.estimation-check.v1"),
    ] {
        assert!(
            want.metrics.iter().any(|m| m.contains(needle)),
            "a stream with {what}"
        );
    }
    assert_same(&want, &partitioned(&config, &lines, 1, 1), "1 task");
}

/// The test configuration with 1-minute windows (about 400 estimated rows per model and
/// window) and, when given, `auc_sample` for both estimating models.
fn minute_windows(auc_sample: Option<usize>) -> Config {
    let mut text = CONFIG.replace("size = \"10s\"", "size = \"60s\"");
    if let Some(k) = auc_sample {
        text = text.replace(
            "method = \"cbpe\"\n",
            &format!("method = \"cbpe\"\nauc_sample = {k}\n"),
        );
    }
    let config: Config = toml::from_str(&text).expect("the test config parses");
    config.validate().expect("the test config is valid");
    config
}

/// Windows with more estimated rows than `auc_sample`: the ROC AUC samples (estimated and
/// realized) are bottom-k samples by join id, so the tasks' rows merged in the finalizer in
/// any order give the single engine's records, byte for byte.
#[test]
fn sampled_roc_auc_is_the_same_split_or_not() {
    let lines = stream(11, 6_000);
    let sampled = minute_windows(Some(100));
    let want = single(&sampled, &lines);
    assert!(
        want.metrics
            .iter()
            .any(|m| m.contains("\"estimated\":{\"method\"")),
        "a stream with estimates"
    );
    assert_ne!(
        want.metrics,
        single(&minute_windows(None), &lines).metrics,
        "windows with more rows than the sample: the sampled ROC AUC differs from the full one"
    );
    for (tasks, order) in [(2, 1), (3, 7), (5, 42)] {
        let got = partitioned(&sampled, &lines, tasks, order);
        assert_same(&want, &got, &format!("{tasks} tasks, order {order}"));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn any_split_and_merge_order_gives_the_single_engine_s_records(
        seed in 0u64..1_000_000,
        tasks in 2u32..7,
        order_seed in any::<u64>(),
    ) {
        let config = config();
        let lines = stream(seed, 3_000);
        let want = single(&config, &lines);
        let got = partitioned(&config, &lines, tasks, order_seed);
        assert_same(&want, &got, &format!("{tasks} tasks, stream {seed}, order {order_seed}"));
    }

    /// A task restored from a checkpoint re-reads its partitions in another order than
    /// before its crash and hands its windows over again, with the labels joined by then
    /// in the new order: the finalizer must count every label once, as the single engine
    /// does (a restore after a rebalance or a crash, tests/multi_instance.rs).
    #[test]
    fn a_task_restored_and_reading_in_another_order_counts_every_label_once(
        seed in 0u64..1_000_000,
        tasks in 1u32..6,
        order_seed in any::<u64>(),
    ) {
        let config = config();
        let lines = stream(seed, 3_000);
        let want = single(&config, &lines);
        let got = partitioned_with_restores(&config, &lines, tasks, order_seed);
        assert_same(&want, &got, &format!("{tasks} tasks, stream {seed}, order {order_seed}"));
    }
}

/// How a task reads its two partitions: the predictions partition `lead` ms of event time
/// ahead of the outcomes partition (behind when negative); each partition in its order.
fn read_order(lines: &[&Line], lead: i64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..lines.len()).collect();
    order.sort_by_key(|&i| {
        let (ts, prediction, _, _) = lines[i];
        if *prediction {
            ts.saturating_sub(lead)
        } else {
            *ts
        }
    });
    order
}

/// A task reading its partitions as the service does: its watermark the least of the two
/// partitions' clocks (the latest event time read from each), less the lateness.
struct TaskReader {
    shard: TaskShard,
    /// Latest event time read: (predictions, outcomes).
    clocks: (i64, i64),
    /// Records read: (predictions, outcomes) — the offsets a checkpoint stores.
    offsets: (usize, usize),
}

impl TaskReader {
    fn read(&mut self, decoder: &Decoder, line: &Line, lateness: i64) -> Option<TaskStep> {
        self.shard
            .engine_mut()
            .observe(&decode(decoder, line))
            .expect("within limits");
        if line.1 {
            self.clocks.0 = self.clocks.0.max(line.0);
            self.offsets.0 += 1;
        } else {
            self.clocks.1 = self.clocks.1.max(line.0);
            self.offsets.1 += 1;
        }
        let watermark = self.clocks.0.min(self.clocks.1).saturating_sub(lateness);
        let step = self.shard.advance_watermark(watermark, false);
        (!step.partials.is_empty()).then_some(step)
    }
}

/// P tasks that each read their partitions in some order, checkpoint, crash later, and
/// are restored from the checkpoint, re-reading from its offsets in another order: the
/// finalizer gets what the task sent before the crash, then everything the restored task
/// sends (its windows handed over again, with the labels joined by then in the new order).
fn partitioned_with_restores(config: &Config, lines: &[Line], tasks: u32, seed: u64) -> Published {
    let decoder = Decoder::new(config);
    let lateness = config.window.allowed_lateness.as_millis_i64();
    let mut rng = Rng(seed);
    let mut sent: Vec<Vec<TaskStep>> = Vec::new();
    for t in 0..tasks {
        let mine: Vec<&Line> = lines.iter().filter(|l| task_of(&l.2, tasks) == t).collect();
        let predictions: Vec<&Line> = mine.iter().copied().filter(|l| l.1).collect();
        let outcomes: Vec<&Line> = mine.iter().copied().filter(|l| !l.1).collect();
        let mut reader = TaskReader {
            shard: TaskShard::new(config, t, tasks).expect("partitionable"),
            clocks: (i64::MIN, i64::MIN),
            offsets: (0, 0),
        };
        let mut steps = Vec::new();
        let first = read_order(&mine, rng.below(40_000) as i64 - 20_000);
        let checkpoint_at = rng.below(first.len() as u64) as usize;
        let crash_at = checkpoint_at + rng.below((first.len() - checkpoint_at) as u64) as usize;
        let mut checkpoint = None;
        for (n, &i) in first.iter().enumerate() {
            if n == checkpoint_at {
                checkpoint = Some((
                    encode_versioned(&reader.shard).expect("a task encodes"),
                    reader.clocks,
                    reader.offsets,
                ));
            }
            if n == crash_at {
                break;
            }
            steps.extend(reader.read(&decoder, mine[i], lateness));
        }
        let (bytes, clocks, offsets) = checkpoint.expect("a checkpoint before the crash");
        let mut restored = TaskReader {
            shard: decode_versioned(&bytes).expect("a task decodes"),
            clocks,
            offsets,
        };
        let rest: Vec<&Line> = predictions[offsets.0..]
            .iter()
            .chain(&outcomes[offsets.1..])
            .copied()
            .collect();
        for i in read_order(&rest, rng.below(40_000) as i64 - 20_000) {
            steps.extend(restored.read(&decoder, rest[i], lateness));
        }
        steps.push(restored.shard.finish());
        sent.push(steps);
    }

    finalize(config, &sent, &mut rng, false)
}
