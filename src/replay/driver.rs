//! What `replay` drives: one [`Monitor`] (the default), or, with `--tasks N`, the
//! partitioned engine in one process: N task shards, each fed the records whose join id
//! hashes to it, and a finalizer that merges their partial windows. Both publish the same
//! records (docs/semantics.md, "The partitioned engine"); `--tasks` is how to see it on
//! your own data.

use anyhow::Context;

use feedback_loop_core::checkpoint::fnv1a;
use feedback_loop_core::engine::Rejection;
use feedback_loop_core::monitor::{Emitted, Monitor};
use feedback_loop_core::partition::{Finalizer, TaskShard, TaskStep};
use feedback_loop_core::record::{ModelId, Record};

use crate::config::LoadedConfig;

pub(crate) enum Driver {
    Single {
        monitor: Box<Monitor>,
        /// The largest event time seen.
        clock: i64,
    },
    Partitioned {
        shards: Vec<TaskShard>,
        /// The largest event time each task has seen.
        clocks: Vec<i64>,
        finalizer: Box<Finalizer>,
        /// The task of the last record: it holds the largest event time, so a bad line
        /// (no event time of its own) counts where a single engine would count it.
        last: usize,
    },
}

impl Driver {
    pub(crate) fn new(loaded: &LoadedConfig, tasks: u32) -> anyhow::Result<Driver> {
        if tasks <= 1 {
            return Ok(Driver::Single {
                monitor: Box::new(loaded.monitor()?),
                clock: i64::MIN,
            });
        }
        let config = &loaded.config;
        let shards = (0..tasks)
            .map(|task| TaskShard::new(config, task, tasks))
            .collect::<Result<Vec<_>, _>>()
            .context("--tasks")?;
        let finalizer = loaded.finalizer(tasks).context("--tasks")?;
        Ok(Driver::Partitioned {
            shards,
            clocks: vec![i64::MIN; tasks as usize],
            finalizer: Box::new(finalizer),
            last: 0,
        })
    }

    /// A line that did not decode (counted for its model, if it named one).
    pub(crate) fn observe_invalid(&mut self, model: Option<ModelId>) {
        match self {
            Driver::Single { monitor, .. } => monitor.engine_mut().observe_invalid(model),
            Driver::Partitioned { shards, last, .. } => {
                shards[*last].engine_mut().observe_invalid(model)
            }
        }
    }

    /// Adds a record with event time `ts` (the time its line was ordered by), then moves
    /// the watermark (of its task) to the largest event time seen (by its task) less
    /// `lateness`.
    pub(crate) fn observe(
        &mut self,
        record: &Record<'_>,
        ts: i64,
        lateness: i64,
    ) -> anyhow::Result<(Result<(), Rejection>, Emitted)> {
        match self {
            Driver::Single { monitor, clock } => {
                let result = monitor.engine_mut().observe(record).map(|_| ());
                *clock = (*clock).max(ts);
                Ok((
                    result,
                    monitor.advance_watermark(clock.saturating_sub(lateness)),
                ))
            }
            Driver::Partitioned {
                shards,
                clocks,
                finalizer,
                last,
            } => {
                let task = (fnv1a(record.id().as_bytes()) % shards.len() as u64) as usize;
                *last = task;
                let result = shards[task].engine_mut().observe(record).map(|_| ());
                clocks[task] = clocks[task].max(ts);
                let step =
                    shards[task].advance_watermark(clocks[task].saturating_sub(lateness), false);
                Ok((result, hand_over(finalizer, step)?))
            }
        }
    }

    /// End of input: every window closes.
    pub(crate) fn finish(&mut self) -> anyhow::Result<Emitted> {
        match self {
            Driver::Single { monitor, .. } => Ok(monitor.finish()),
            Driver::Partitioned {
                shards, finalizer, ..
            } => {
                let mut all = Emitted::default();
                for shard in shards.iter_mut() {
                    let emitted = hand_over(finalizer, shard.finish())?;
                    all.due_after_end = emitted.due_after_end;
                    all.metrics.extend(emitted.metrics);
                    all.checks.extend(emitted.checks);
                    all.events.extend(emitted.events);
                    all.fit_failures.extend(emitted.fit_failures);
                }
                Ok(all)
            }
        }
    }
}

/// A task's step to the finalizer: its partials, then its marker.
fn hand_over(finalizer: &mut Finalizer, step: TaskStep) -> anyhow::Result<Emitted> {
    let task = step.marker.task;
    for partial in step.partials {
        finalizer
            .partial(task, partial)
            .context("handing a partial window to the finalizer")?;
    }
    finalizer
        .marker(step.marker)
        .context("handing a task's watermark to the finalizer")
}
