//! The finalizer: merges the tasks' partial windows, closes a window once every task
//! that is not idle has passed it, and runs the rules on the records, as one engine would.

use std::collections::BTreeMap;

use super::Marker;
use crate::alerts::RuleError;
use crate::engine::{Engine, EngineConfig, PartialError, PartialKind, WindowPartial};
use crate::monitor::{Emitted, Monitor, Reconfigured};
use crate::settings::Config;

/// What became of a partial handed to [`Finalizer::partial`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipt {
    /// Kept in its (window, task, model) slot.
    Stored,
    /// Replaced the partial already in its slot (a task re-sending after a restore).
    Replaced,
    /// Its window is already closed (a re-sent partial of a window every task had
    /// passed): dropped.
    Stale,
}

/// Errors of the finalizer's input.
#[derive(Debug, thiserror::Error)]
pub enum FinalizerError {
    #[error(transparent)]
    Partial(#[from] PartialError),
    #[error("task {task} is out of range: there are {tasks} tasks")]
    UnknownTask { task: u32, tasks: u32 },
    #[error("a marker counts {found} tasks, this finalizer {expected} (the input topics' partitions changed?)")]
    TaskCount { found: u32, expected: u32 },
    #[error(transparent)]
    Rules(#[from] RuleError),
}

/// One due partial's slots: task -> model -> the task's partial (a resend replaces it).
type TaskSlots = BTreeMap<u32, BTreeMap<String, WindowPartial>>;

/// See the module documentation.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Finalizer {
    monitor: Monitor,
    tasks: u32,
    /// The latest watermark of every task (`None` until its first marker).
    watermarks: Vec<Option<i64>>,
    idle: Vec<bool>,
    /// Partials not taken in yet: (due, window start, kind) -> task -> model -> the
    /// task's partial.
    slots: BTreeMap<(i64, i64, PartialKind), TaskSlots>,
    /// The watermark the windows are closed through.
    watermark: i64,
    /// Partials dropped because their window had closed.
    stale: u64,
}

impl Finalizer {
    pub fn new(config: &Config, tasks: u32) -> Result<Finalizer, FinalizerError> {
        let engine = Engine::for_finalizer(EngineConfig::from_config(config))?;
        Ok(Finalizer {
            monitor: Monitor::with_engine(engine, config)?,
            tasks,
            watermarks: vec![None; tasks as usize],
            idle: vec![false; tasks as usize],
            slots: BTreeMap::new(),
            watermark: i64::MIN,
            stale: 0,
        })
    }

    /// The monitor that closes the merged windows (to set drift baselines, read stats).
    pub fn monitor_mut(&mut self) -> &mut Monitor {
        &mut self.monitor
    }

    pub fn monitor(&self) -> &Monitor {
        &self.monitor
    }

    /// Applies settings that do not shape the state (rules, drift decisions), as
    /// [`Monitor::reconfigure`] does.
    pub fn reconfigure(&mut self, config: &Config) -> Result<Reconfigured, FinalizerError> {
        Ok(self.monitor.reconfigure(config)?)
    }

    /// How many tasks it merges (the input topics' partition count).
    pub fn tasks(&self) -> u32 {
        self.tasks
    }

    /// The watermark the windows are closed through.
    pub fn watermark(&self) -> i64 {
        self.watermark
    }

    pub fn stale_partials(&self) -> u64 {
        self.stale
    }

    /// Partials waiting for their window to close (or, for late labels, to complete), by
    /// (window, kind).
    pub fn open_windows(&self) -> usize {
        self.slots.len()
    }

    /// Takes a task's partial into its slot.
    pub fn partial(
        &mut self,
        task: u32,
        partial: WindowPartial,
    ) -> Result<Receipt, FinalizerError> {
        self.check_task(task)?;
        self.monitor.engine().check_partial(&partial)?;
        let due = self.monitor.engine().due_of(&partial);
        if due <= self.watermark {
            self.stale += 1;
            return Ok(Receipt::Stale);
        }
        let slot = self
            .slots
            .entry((due, partial.window_start, partial.kind))
            .or_default()
            .entry(task)
            .or_default();
        Ok(match slot.insert(partial.model.clone(), partial) {
            Some(_) => Receipt::Replaced,
            None => Receipt::Stored,
        })
    }

    /// Takes a task's marker: closes the windows that every task that is not idle has
    /// passed, and returns what they emit (records, then rule events).
    pub fn marker(&mut self, marker: Marker) -> Result<Emitted, FinalizerError> {
        if marker.tasks != self.tasks {
            return Err(FinalizerError::TaskCount {
                found: marker.tasks,
                expected: self.tasks,
            });
        }
        self.check_task(marker.task)?;
        let task = marker.task as usize;
        self.watermarks[task] =
            Some(self.watermarks[task].map_or(marker.watermark, |w| w.max(marker.watermark)));
        self.idle[task] = marker.idle;
        let Some(watermark) = self.tasks_watermark() else {
            return Ok(Emitted::default());
        };
        if watermark <= self.watermark {
            return Ok(Emitted::default());
        }
        self.watermark = watermark;
        while let Some(entry) = self.slots.first_entry() {
            if entry.key().0 > watermark {
                break;
            }
            // Task order, then model order: the merge order is fixed (and the merge
            // exact, so it would not matter).
            for partials in entry.remove().into_values() {
                for partial in partials.values() {
                    self.monitor.engine_mut().merge_partial(partial)?;
                }
            }
        }
        Ok(self.monitor.advance_watermark(watermark))
    }

    /// The least watermark of the tasks that are not idle (of all tasks when every one
    /// is idle); `None` until every task has sent a marker.
    fn tasks_watermark(&self) -> Option<i64> {
        let mut busy = None::<i64>;
        let mut all = None::<i64>;
        for (watermark, idle) in self.watermarks.iter().zip(&self.idle) {
            let w = (*watermark)?;
            all = Some(all.map_or(w, |a| a.max(w)));
            if !idle {
                busy = Some(busy.map_or(w, |b| b.min(w)));
            }
        }
        busy.or(all)
    }

    fn check_task(&self, task: u32) -> Result<(), FinalizerError> {
        if task >= self.tasks {
            return Err(FinalizerError::UnknownTask {
                task,
                tasks: self.tasks,
            });
        }
        Ok(())
    }
}
