//! feedback-loop: joins ML predictions with their outcomes and turns the pairs into
//! quality metrics, drift statistics, alerts and retrain triggers.
//!
//! The core is synchronous, deterministic and free of I/O: `record` (with `json_reader`), `join` (with
//! `deadline_queue`), `interner`, `window`, `watermark`, `metrics`, `drift`, `total_order_sort`,
//! `short_bytes`, `engine`, `rules`, `monitor`, `checkpoint`, `output`, `traffic`, and `config`'s parsing
//! and validation (`Config::load` reads the file and the environment, for the shell). The
//! shell does the I/O and feeds it: `replay` (files), `service` and `kafka` (Kafka), `http` and
//! `telemetry` (Prometheus endpoint), `webhook` (retrain webhook), `shutdown` (signals),
//! `logging`, `demo`, `generate`, and the CLI in `main.rs`. See `docs/semantics.md` for the
//! exact rules.

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
pub mod json_reader;
pub mod kafka;
pub mod logging;
pub mod metrics;
pub mod monitor;
pub mod output;
pub mod record;
pub mod replay;
pub mod rules;
pub mod service;
pub mod short_bytes;
pub mod shutdown;
pub mod telemetry;
pub mod total_order_sort;
pub mod traffic;
pub mod watermark;
pub mod webhook;
pub mod window;
