//! Talking to Kafka: client settings, the input consumer and its rebalance callbacks,
//! output and dead-letter producers, topic checks.
//!
//! As in Vector's Kafka source: offsets are stored only after the records they cover have
//! been applied to the engine, and committed by librdkafka's auto-commit (and once more,
//! synchronously, at shutdown).

pub mod client;
pub mod consumer;
pub mod dead_letter;
pub mod producer;
pub mod state_store;
