//! feedback-loop: joins ML predictions with their outcomes and turns the pairs into
//! quality metrics, drift statistics, alerts and retrain triggers.
//!
//! The core (`record`, `join`, `window`, `metrics`, `engine`, `output`) is synchronous and
//! free of I/O; the shell (`replay`, the CLI, and later Kafka and HTTP) feeds it. See
//! `docs/semantics.md` for the exact rules.

pub mod checkpoint;
pub mod config;
pub mod deadline_queue;
pub mod demo;
pub mod drift;
pub mod engine;
pub mod generate;
pub mod http;
pub mod interner;
pub mod join;
pub mod kafka;
pub mod logging;
pub mod metrics;
pub mod monitor;
pub mod output;
pub mod radix_sort;
pub mod record;
pub mod replay;
pub mod rules;
pub mod service;
pub mod shutdown;
pub mod telemetry;
pub mod traffic;
pub mod watermark;
pub mod webhook;
pub mod window;
