//! The partitioned engine: several tasks aggregate their share of the input, a finalizer
//! merges their partial windows and publishes what one engine over all of it would
//! (docs/semantics.md, "The partitioned engine").
//!
//! Task p is partition p of both input topics (co-partitioned: same count, key and
//! partitioner), so every record of a join key reaches the same task. A task runs an
//! engine ([`TaskShard`]): it joins, expires and aggregates like a single engine, but
//! where that one would close a window, the task hands it over as one [`WindowPartial`]
//! per model, followed by a [`Marker`] with its watermark. The [`Finalizer`] keeps one slot
//! per (window, task), which a re-sent partial replaces, and the latest watermark of every
//! task; a window closes when the least watermark of the tasks that are not idle passes
//! its close. The slots are then merged in task order and closed by the same engine code
//! as a single engine's windows, the rules run on the result.
//!
//! Nothing here does I/O: the shell carries partials and markers over Kafka (or, with one
//! instance, hands them over in process).

mod finalizer;

pub use finalizer::{Finalizer, FinalizerError, Receipt};

use crate::checkpoint::{decode_versioned, encode_versioned, CheckpointError};
use crate::engine::{Engine, EngineConfig, PartialError, WindowPartial};
use crate::settings::Config;

/// A task's progress: after its partials of every window it closed, the watermark it
/// reached. `idle` tasks (both partitions idle) do not hold the finalizer back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Marker {
    pub task: u32,
    /// How many tasks there are (the input topics' partition count).
    pub tasks: u32,
    pub watermark: i64,
    pub idle: bool,
}

/// What a task sends the finalizer, one message each over the partials topic: its partial
/// windows, then its marker.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum TaskMessage {
    Partial {
        task: u32,
        partial: Box<WindowPartial>,
    },
    Marker(Marker),
}

impl TaskMessage {
    /// The messages of a step, in the order they must be sent.
    pub fn of_step(step: TaskStep) -> impl Iterator<Item = TaskMessage> {
        let task = step.marker.task;
        step.partials
            .into_iter()
            .map(move |partial| TaskMessage::Partial {
                task,
                partial: Box::new(partial),
            })
            .chain(std::iter::once(TaskMessage::Marker(step.marker)))
    }

    /// Encoded as snapshots are (format version, then bincode): a finalizer of another
    /// release refuses it by version.
    pub fn encode(&self) -> Result<Vec<u8>, CheckpointError> {
        encode_versioned(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<TaskMessage, CheckpointError> {
        decode_versioned(bytes)
    }
}

/// What one watermark step of a task hands over: the partials of the windows it passed,
/// then its marker.
#[derive(Debug, Clone)]
pub struct TaskStep {
    pub partials: Vec<WindowPartial>,
    pub marker: Marker,
}

/// One task's engine shard.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TaskShard {
    task: u32,
    tasks: u32,
    engine: Engine,
}

impl TaskShard {
    pub fn new(config: &Config, task: u32, tasks: u32) -> Result<TaskShard, PartialError> {
        Ok(TaskShard {
            task,
            tasks,
            engine: Engine::for_task(EngineConfig::from_config(config))?,
        })
    }

    pub fn task(&self) -> u32 {
        self.task
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The engine, to observe records with.
    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    /// Applies settings that do not shape the state (after a restore under an edited
    /// configuration with the same [`crate::checkpoint::shape_fingerprint`]).
    pub fn reconfigure(&mut self, config: &Config) {
        self.engine.reconfigure(&EngineConfig::from_config(config));
    }

    /// Moves the task's watermark (never backwards): the partials of the windows it
    /// passed and the marker to send after them.
    pub fn advance_watermark(&mut self, watermark: i64, idle: bool) -> TaskStep {
        let partials = self.engine.advance_task_watermark(watermark);
        TaskStep {
            partials,
            marker: Marker {
                task: self.task,
                tasks: self.tasks,
                watermark: self.engine.watermark(),
                idle,
            },
        }
    }

    /// End of input: everything pending expires, every window is handed over.
    pub fn finish(&mut self) -> TaskStep {
        self.advance_watermark(i64::MAX, false)
    }
}
