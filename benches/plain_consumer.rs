//! Helper of the end-to-end benchmark (`scripts/bench-e2e.sh`): the ceiling a plain rdkafka
//! consumer reaches on a broker, plus the two set-up steps the script needs (topics, data).
//! Not a criterion bench: `harness = false`, run by hand or by the script.
//!
//! Modes (cargo's own `--bench` argument is ignored):
//! - `create --bootstrap B --topics t1:4,t2:4,...`: creates the topics (AdminClient).
//! - `load --bootstrap B --predictions T --outcomes T --requests N [--rate R] [--seed S]`:
//!   produces the synthetic traffic of `feedback-loop generate` (`traffic::TrafficGenerator`,
//!   no missing outcomes: every request gets its outcome) keyed by id, event time ending
//!   about ten minutes before now. Prints one JSON line with counts and sizes.
//! - `consume --bootstrap B --topics t1,t2 --count N [--api base|stream]`: a fresh group reads
//!   the topics from the beginning until it has N messages, touching each payload only.
//!   Prints one JSON line: messages/s from subscribe and from the first message.
//!
//! Run: `cargo bench --bench plain_consumer -- consume --bootstrap 127.0.0.1:9092 --topics
//! model-predictions,actual-outcomes --count 2666667`.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use feedback_loop::traffic::{Stream, TrafficConfig, TrafficGenerator};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let Some(mode) = args.first().cloned() else {
        return Err("usage: plain_consumer create|load|consume --bootstrap B ...".into());
    };
    let mut flags = HashMap::new();
    let mut rest = args[1..].iter();
    while let Some(flag) = rest.next() {
        let Some(name) = flag.strip_prefix("--") else {
            return Err(format!("unexpected argument `{flag}`").into());
        };
        let value = rest.next().ok_or(format!("--{name} needs a value"))?;
        flags.insert(name.to_string(), value.clone());
    }
    let get = |name: &str| -> Result<String> {
        flags
            .get(name)
            .cloned()
            .ok_or_else(|| format!("--{name} is required").into())
    };
    let bootstrap = get("bootstrap")?;
    match mode.as_str() {
        "create" => create(&bootstrap, &get("topics")?),
        "load" => load(
            &bootstrap,
            &get("predictions")?,
            &get("outcomes")?,
            get("requests")?.parse()?,
            flags.get("rate").map_or(Ok(500.0), |r| r.parse())?,
            flags.get("seed").map_or(Ok(7), |s| s.parse())?,
        ),
        "consume" => {
            let topics: Vec<String> = get("topics")?.split(',').map(str::to_string).collect();
            let count: u64 = get("count")?.parse()?;
            match flags.get("api").map_or("base", String::as_str) {
                "base" => consume_base(&bootstrap, &topics, count),
                "stream" => consume_stream(&bootstrap, &topics, count),
                other => Err(format!("--api {other}: base or stream").into()),
            }
        }
        other => Err(format!("unknown mode `{other}`").into()),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn create(bootstrap: &str, topics: &str) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let mut specs = Vec::new();
    for spec in topics.split(',') {
        let (name, partitions) = spec.split_once(':').unwrap_or((spec, "1"));
        specs.push((name.to_string(), partitions.parse::<i32>()?));
    }
    let new: Vec<NewTopic<'_>> = specs
        .iter()
        .map(|(name, partitions)| NewTopic::new(name, *partitions, TopicReplication::Fixed(1)))
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = runtime.block_on(admin.create_topics(&new, &options))?;
    for result in results {
        match result {
            Ok(name) => eprintln!("created {name}"),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => eprintln!("{name} exists"),
            Err((name, code)) => return Err(format!("creating {name}: {code:?}").into()),
        }
    }
    Ok(())
}

fn load(
    bootstrap: &str,
    predictions_topic: &str,
    outcomes_topic: &str,
    requests: u64,
    rate: f64,
    seed: u64,
) -> Result<()> {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "500000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("message.timeout.ms", "300000")
        .create()?;
    // Event time spans requests / rate seconds and ends ten minutes ago, so that the service's
    // plausibility limits (max_event_age 7 d, max_clock_skew 1 h) accept every record.
    let span_ms = ((requests.saturating_sub(1)) as f64 * 1000.0 / rate) as i64;
    let start_ms = now_ms() - span_ms - 600_000;
    let mut generator = TrafficGenerator::new(TrafficConfig {
        seed,
        rate_per_s: rate,
        min_label_delay_ms: 0,
        max_label_delay_ms: 30_000,
        missing_outcome_rate: 0.0,
        drift_at_ms: Some(start_ms + span_ms / 2),
        start_ms,
    });
    let started = Instant::now();
    let (mut predictions, mut outcomes) = (0u64, 0u64);
    let (mut prediction_bytes, mut outcome_bytes) = (0u64, 0u64);
    let step_ms = 10_000;
    let mut t = start_ms;
    let end_ms = start_ms + span_ms;
    loop {
        let last = t >= end_ms;
        let batch = if last {
            let mut batch = generator.until(end_ms);
            batch.extend(generator.drain());
            batch
        } else {
            generator.until(t)
        };
        for message in &batch {
            let topic = match message.stream {
                Stream::Predictions => {
                    predictions += 1;
                    prediction_bytes += message.payload.len() as u64;
                    predictions_topic
                }
                Stream::Outcomes => {
                    outcomes += 1;
                    outcome_bytes += message.payload.len() as u64;
                    outcomes_topic
                }
            };
            let mut record = BaseRecord::to(topic)
                .key(message.key.as_str())
                .payload(message.payload.as_str())
                .timestamp(message.ts);
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        producer.poll(Duration::from_millis(10));
                    }
                    Err((error, _)) => return Err(error.into()),
                }
            }
            producer.poll(Duration::ZERO);
        }
        if last {
            break;
        }
        t = (t + step_ms).min(end_ms);
    }
    producer.flush(Duration::from_secs(300))?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{{\"predictions\":{predictions},\"outcomes\":{outcomes},\"messages\":{},\
         \"prediction_bytes_mean\":{:.1},\"outcome_bytes_mean\":{:.1},\"seconds\":{seconds:.2},\
         \"msgs_per_s\":{:.0},\"event_time_start_ms\":{start_ms},\"event_time_span_s\":{:.0}}}",
        predictions + outcomes,
        prediction_bytes as f64 / predictions.max(1) as f64,
        outcome_bytes as f64 / outcomes.max(1) as f64,
        (predictions + outcomes) as f64 / seconds,
        span_ms as f64 / 1000.0,
    );
    Ok(())
}

/// The consumer settings: librdkafka defaults (as the service has them), a fresh group, and
/// the short session timeout tansu needs for a quick first join.
fn consumer_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set(
            "group.id",
            format!("plain-consumer-{}-{}", std::process::id(), now_ms()),
        )
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "1000");
    config
}

/// Consumer errors: printed at most once a second; 100 in a row (no message between) abort.
#[derive(Default)]
struct Errors {
    in_a_row: u32,
    last_print: Option<Instant>,
}

impl Errors {
    fn report(&mut self, error: KafkaError) -> Result<()> {
        self.in_a_row += 1;
        if self.in_a_row >= 100 {
            return Err(format!("giving up after 100 consumer errors in a row: {error}").into());
        }
        if self
            .last_print
            .is_none_or(|t| t.elapsed() > Duration::from_secs(1))
        {
            eprintln!("consumer error: {error}");
            self.last_print = Some(Instant::now());
        }
        Ok(())
    }
}

/// Keeps the payload read without doing anything else with it.
#[inline]
fn touch(payload: Option<&[u8]>, checksum: &mut u64, bytes: &mut u64) {
    if let Some(p) = payload {
        *bytes += p.len() as u64;
        *checksum = checksum.wrapping_add(p.first().copied().unwrap_or(0) as u64);
    }
}

fn report(
    api: &str,
    count: u64,
    started: Instant,
    first: Option<Instant>,
    bytes: u64,
    checksum: u64,
) {
    let total = started.elapsed().as_secs_f64();
    let first_at = first.map_or(total, |f| (f - started).as_secs_f64());
    let after_first = total - first_at;
    println!(
        "{{\"api\":\"{api}\",\"messages\":{count},\"bytes\":{bytes},\"seconds\":{total:.3},\
         \"first_message_s\":{first_at:.3},\"msgs_per_s\":{:.0},\"msgs_per_s_after_first\":{:.0},\
         \"checksum\":{checksum}}}",
        count as f64 / total,
        count as f64 / after_first.max(1e-9),
    );
}

fn consume_base(bootstrap: &str, topics: &[String], count: u64) -> Result<()> {
    let consumer: BaseConsumer = consumer_config(bootstrap).create()?;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let started = Instant::now();
    consumer.subscribe(&names)?;
    let (mut seen, mut bytes, mut checksum) = (0u64, 0u64, 0u64);
    let mut first = None;
    let mut errors = Errors::default();
    while seen < count {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                if first.is_none() {
                    first = Some(Instant::now());
                }
                touch(message.payload(), &mut checksum, &mut bytes);
                seen += 1;
                errors.in_a_row = 0;
            }
            Some(Err(error)) => errors.report(error)?,
            None => {}
        }
        if started.elapsed() > Duration::from_secs(600) {
            return Err(format!("timed out after {seen} of {count} messages").into());
        }
    }
    report("base", seen, started, first, bytes, checksum);
    Ok(())
}

fn consume_stream(bootstrap: &str, topics: &[String], count: u64) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let consumer: StreamConsumer = consumer_config(bootstrap).create()?;
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        let started = Instant::now();
        consumer.subscribe(&names)?;
        let (mut seen, mut bytes, mut checksum) = (0u64, 0u64, 0u64);
        let mut first = None;
        let mut errors = Errors::default();
        while seen < count {
            match tokio::time::timeout(Duration::from_secs(600), consumer.recv()).await {
                Ok(Ok(message)) => {
                    if first.is_none() {
                        first = Some(Instant::now());
                    }
                    touch(message.payload(), &mut checksum, &mut bytes);
                    seen += 1;
                    errors.in_a_row = 0;
                }
                Ok(Err(error)) => errors.report(error)?,
                Err(_) => return Err(format!("timed out after {seen} of {count}").into()),
            }
        }
        report("stream", seen, started, first, bytes, checksum);
        Ok(())
    })
}
