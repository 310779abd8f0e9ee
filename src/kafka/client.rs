//! librdkafka settings for the service's clients, and the start-up check of the input topics.

use std::time::Duration;

use anyhow::{bail, Context};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::types::RDKafkaRespErr;

use feedback_loop_core::settings::Config;

/// Settings shared by the consumer and the producers: bootstrap servers, then every
/// `[kafka.client]` property as is. librdkafka ignores a consumer-only property given to a
/// producer with a `CONFWARN` log line (and vice versa): such properties belong in
/// `[kafka.consumer]` / `[kafka.producer]`, which only that kind of client gets.
pub fn base(config: &Config) -> ClientConfig {
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &config.kafka.bootstrap_servers);
    client.set("client.id", "feedback-loop");
    for (key, value) in &config.kafka.client {
        client.set(key, &value.0);
    }
    client
}

/// Consumer settings: the group, manual offset storage, auto-commit of stored offsets.
pub fn consumer(config: &Config) -> ClientConfig {
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &config.kafka.bootstrap_servers);
    client.set("group.id", &config.kafka.group_id);
    // With checkpoints, offsets are committed only after the state that reflects them is
    // stored; without, librdkafka commits the offsets the service stores.
    client.set(
        "enable.auto.commit",
        if config.checkpoint.enabled {
            "false"
        } else {
            "true"
        },
    );
    client.set("enable.auto.offset.store", "false");
    client.set("auto.offset.reset", "earliest");
    // Statistics carry the consumer lag per partition: the watermark needs it to tell an
    // idle partition (nothing to read) from a slow one.
    client.set("statistics.interval.ms", "1000");
    // librdkafka backs a partition's fetching off this long when its local queue is full
    // (default 1 s); a consumer that does real work per message then idles between bursts.
    client.set("fetch.queue.backoff.ms", "10");
    // A partition resumed after running ahead (`kafka.max_read_ahead`) joins the next fetch
    // request, once the one in flight returns: a broker holds that one up to this long
    // (default 500 ms) when the other partitions have nothing new.
    client.set("fetch.wait.max.ms", "100");
    client.set("client.id", "feedback-loop");
    // The user's settings win, except the one that offset safety depends on.
    for (key, value) in config.kafka.client.iter().chain(&config.kafka.consumer) {
        if key != "enable.auto.offset.store" {
            client.set(key, &value.0);
        }
    }
    client
}

/// A consumer other than the input consumer (the state reader): the shared settings, then
/// `[kafka.consumer]`; the caller sets what it depends on after.
pub fn other_consumer(config: &Config) -> ClientConfig {
    let mut client = base(config);
    for (key, value) in &config.kafka.consumer {
        client.set(key, &value.0);
    }
    client
}

/// Producer settings: idempotent, acks=all, so that retries neither lose nor duplicate.
pub fn producer(config: &Config) -> ClientConfig {
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &config.kafka.bootstrap_servers);
    client.set("client.id", "feedback-loop");
    client.set("enable.idempotence", "true");
    client.set("acks", "all");
    client.set("linger.ms", "5");
    client.set("message.timeout.ms", "300000");
    // Room for a dead letter of limits.max_message_bytes plus its headers.
    let max_message = (config.limits.max_message_bytes + 64 * 1024).max(1_000_000);
    client.set("message.max.bytes", max_message.to_string());
    for (key, value) in config.kafka.client.iter().chain(&config.kafka.producer) {
        client.set(key, &value.0);
    }
    client
}

/// What the start-up check of the input topics found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InputTopics {
    /// Both exist, with this many partitions each.
    Ready(i32),
    /// These do not exist (yet).
    Missing(Vec<String>),
}

/// Checks that both input topics exist and have the same number of partitions (they must be
/// co-partitioned: same key, same partitioner). A topic that does not exist is not an
/// error here: the caller may wait for it.
pub(crate) fn check_input_topics<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    config: &Config,
    timeout: Duration,
) -> anyhow::Result<InputTopics> {
    let mut counts = Vec::new();
    let mut missing = Vec::new();
    for topic in [
        &config.kafka.predictions_topic,
        &config.kafka.outcomes_topic,
    ] {
        let metadata = consumer
            .fetch_metadata(Some(topic), timeout)
            .with_context(|| {
                format!(
                    "fetching metadata of topic `{topic}` from {}",
                    config.kafka.bootstrap_servers
                )
            })?;
        let found = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic.as_str());
        match found {
            None => missing.push(topic.clone()),
            Some(found) => match found.error() {
                Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) => {
                    missing.push(topic.clone())
                }
                Some(error) => bail!("input topic `{topic}` is not usable: {error:?}"),
                None if found.partitions().is_empty() => missing.push(topic.clone()),
                None => counts.push(found.partitions().len() as i32),
            },
        }
    }
    if !missing.is_empty() {
        return Ok(InputTopics::Missing(missing));
    }
    if counts[0] != counts[1] {
        bail!(
            "input topics are not co-partitioned: `{}` has {} partitions, `{}` has {}; predictions and outcomes \
             of one id must land in the same partition number, so both topics need the same partition count",
            config.kafka.predictions_topic,
            counts[0],
            config.kafka.outcomes_topic,
            counts[1]
        );
    }
    Ok(InputTopics::Ready(counts[0]))
}
