//! feedback-loop's core: decoded predictions and outcomes in, metrics records, alert events
//! and retrain triggers out.
//!
//! Synchronous, deterministic, free of I/O and of the clock: the caller passes records with
//! their event times and moves the watermark; nothing here reads a file, a socket or the
//! time. The shell (the `feedback-loop` package: Kafka, HTTP, files, the CLI) feeds it and
//! ships what it returns. `docs/architecture.md` maps each concept to its module.
//!
//! - [`settings`]: the configuration's schema (serde + validation); imports nothing else.
//! - [`record`]: decoding predictions and outcomes from JSON (with its own JSON reader).
//! - `join`: the interval join store; `window`: tumbling windows and their aggregates;
//!   [`watermark`]: event time over the input partitions; [`read_alignment`]: which
//!   partitions to pause so that they are read in step by event time.
//! - [`metrics`]: classification and regression metrics, their float sums kept exact by
//!   [`exact_sum`] (order-independent, for merging partial windows); [`drift`]: two-sample tests,
//!   references, samples, streaming detectors.
//! - [`estimation`]: performance estimation without labels (NannyML's CBPE).
//! - [`engine`]: join + windows + metrics + drift, emitting [`output`] records;
//!   [`alerts`]: rules over those records; [`monitor`]: the two together.
//! - [`partition`]: the partitioned engine: task shards hand over partial windows, a
//!   finalizer merges and closes them.
//! - [`checkpoint`]: the state's encoding for crash recovery.

pub mod alerts;
pub mod checkpoint;
pub mod drift;
pub mod engine;
pub mod estimation;
pub mod exact_sum;
mod interner;
pub(crate) mod join;
pub mod metrics;
pub mod monitor;
pub mod output;
pub mod partition;
pub mod read_alignment;
pub mod record;
pub mod settings;
mod short_bytes;
pub mod total_order_sort;
pub mod watermark;
pub(crate) mod window;
