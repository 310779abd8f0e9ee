//! How much memory the page's history takes per window record (docs/operations.md,
//! "History"), counted by a global allocator over the records of a replay of `examples/`
//! (two models, features with drift, one segment dimension). Prints the figure; fails only
//! if a record costs more than the documented bound.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use feedback_loop::history::History;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator, only counting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The bound docs/operations.md states per kept window record.
const DOCUMENTED_BYTES_PER_RECORD: isize = 8 * 1024;

#[test]
fn a_kept_window_costs_a_few_kilobytes() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let loaded = feedback_loop::config::load(&root.join("examples/feedback-loop.toml")).unwrap();
    let predictions = std::fs::read(root.join("examples/predictions.jsonl")).unwrap();
    let outcomes = std::fs::read(root.join("examples/outcomes.jsonl")).unwrap();
    let mut out = Vec::new();
    feedback_loop::replay::replay(&loaded, &predictions, &outcomes, &mut out, &mut Vec::new())
        .unwrap();
    let records: Vec<feedback_loop_core::output::MetricsRecord> = String::from_utf8(out)
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"feedback-loop.metrics.v1\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (unsegmented, segmented): (Vec<_>, Vec<_>) =
        records.iter().partition(|r| r.segment.is_none());

    for (kind, records) in [("unsegmented", unsegmented), ("segmented", segmented)] {
        let before = LIVE.load(Ordering::Relaxed);
        let mut history = History::new(usize::MAX);
        for record in &records {
            history.record(record);
        }
        let bytes = LIVE.load(Ordering::Relaxed) - before;
        let per_record = bytes / records.len().max(1) as isize;
        eprintln!(
            "{kind}: {} records kept in {bytes} bytes, {per_record} bytes per record",
            records.len()
        );
        assert!(
            per_record <= DOCUMENTED_BYTES_PER_RECORD,
            "{kind} records cost {per_record} bytes each, more than the documented bound"
        );
        drop(history);
    }
}
