//! Talking to Kafka: client settings, the input consumer and its rebalance callbacks,
//! output and dead-letter producers, topic checks.
//!
//! The commit policy is not here: `crate::offsets` owns it and is the only place offsets
//! are stored or committed.

pub mod client;
pub mod consumer;
pub mod dead_letter;
pub mod log_limit;
pub(crate) mod partials;
pub(crate) mod partition_pauses;
pub mod producer;
pub mod state_store;
