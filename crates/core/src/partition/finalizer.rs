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

    /// The least watermark of the tasks; `None` until every task has sent a marker. A task
    /// idle since its start (no record yet, watermark at its minimum) does not count: an
    /// empty partition must not hold every window back. Any other idle task counts: its
    /// watermark moves on with the wall clock, and it hands a window over only when that
    /// watermark passes it, so a window must not close before.
    fn tasks_watermark(&self) -> Option<i64> {
        let mut least = None::<i64>;
        for (watermark, idle) in self.watermarks.iter().zip(&self.idle) {
            let w = (*watermark)?;
            if *idle && w == i64::MIN {
                continue;
            }
            least = Some(least.map_or(w, |l| l.min(w)));
        }
        least
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

#[cfg(test)]
mod tests {
    use super::*;

    fn finalizer(tasks: u32) -> Finalizer {
        let config = Config::from_toml_for_tests(
            r#"
[[models]]
name = "fraud"
task = "binary"
positive_class = "1"
"#,
        )
        .expect("config");
        Finalizer::new(&config, tasks).expect("finalizer")
    }

    fn marker(task: u32, tasks: u32, watermark: i64, idle: bool) -> Marker {
        Marker {
            task,
            tasks,
            watermark,
            idle,
        }
    }

    #[test]
    fn an_idle_task_holds_windows_back_until_its_own_watermark_passes_them() {
        let mut f = finalizer(2);
        f.marker(marker(0, 2, 1_000, true)).unwrap();
        assert_eq!(f.watermark(), i64::MIN, "task 1 has not reported");
        // Both idle: the one behind has not handed over what lies between.
        f.marker(marker(1, 2, 500, true)).unwrap();
        assert_eq!(f.watermark(), 500);
        f.marker(marker(1, 2, 2_000, true)).unwrap();
        assert_eq!(f.watermark(), 1_000);
        f.marker(marker(0, 2, 1_500, false)).unwrap();
        assert_eq!(f.watermark(), 1_500);
    }

    #[test]
    fn a_task_that_has_read_nothing_does_not_hold_windows_back() {
        let mut f = finalizer(3);
        f.marker(marker(0, 3, 1_000, false)).unwrap();
        f.marker(marker(1, 3, i64::MIN, true)).unwrap();
        assert_eq!(f.watermark(), i64::MIN, "task 2 has not reported");
        f.marker(marker(2, 3, 700, false)).unwrap();
        assert_eq!(f.watermark(), 700);
        // A task that has read nothing and is not idle yet does hold them back.
        let mut g = finalizer(2);
        g.marker(marker(0, 2, 1_000, false)).unwrap();
        g.marker(marker(1, 2, i64::MIN, false)).unwrap();
        assert_eq!(g.watermark(), i64::MIN);
    }
}
