//! feedback-loop, the service: the shell around the core (`feedback_loop_core`). It does
//! the I/O and feeds the core: Kafka in and out, HTTP, files, signals, the CLI.
//!
//! - [`config`]: loading the configuration (file, environment, baseline files);
//! - [`serve`]: HTTP and the service loop together, shared by `run` and `demo`;
//! - [`pipeline`]: the service loop; [`scale`]: the loop of the partitioned engine
//!   (`scale.mode = "partitioned"`); `ingest`: admission of one message (pure);
//!   `offsets`: the commit policy; `publisher`: shipping what the core emits;
//! - [`kafka`]: clients, dead letters, the state topic; [`http`]: the endpoints;
//!   [`telemetry`]: Prometheus metrics and typed internal events; [`webhook`];
//! - [`history`]: recent windows and events for the page and the API;
//! - [`replay`] (and its [`report`]), [`demo`], [`generate`] and [`traffic`]: the other
//!   commands.
//!
//! `docs/architecture.md` maps each concept to its file.

pub mod config;
pub mod demo;
pub mod generate;
pub mod history;
pub mod http;
pub(crate) mod ingest;
pub mod kafka;
pub mod logging;
pub(crate) mod offsets;
pub mod pipeline;
pub(crate) mod publisher;
pub mod replay;
pub mod report;
pub mod scale;
pub mod serve;
pub mod shared_state;
pub mod shutdown;
pub mod telemetry;
pub mod traffic;
pub mod wall_clock;
pub mod webhook;
