//! Bytes per pending prediction: 1,000,000 predictions that never get an outcome, measured
//! with a counting allocator (live heap bytes after minus before), minus the key's bytes;
//! with 13-byte ids (kept in the join slot) and 36-byte, UUID-shaped ones (on the heap).
//! Run: `cargo bench --bench memory`. Figures in BENCHMARKS.md.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use feedback_loop_core::engine::{Engine, EngineConfig};
use feedback_loop_core::record::{Decoder, Envelope};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const PENDING: usize = 1_000_000;

/// The join id of request `i`: `req-` and 9 digits (13 bytes, kept in the slot), or a
/// UUID-shaped 36 bytes (past the 22 kept in place, so on the heap).
fn request_id(i: usize, uuid: bool) -> String {
    if uuid {
        format!("3f2b8c1e-9d4a-4e7b-8f60-{i:012}")
    } else {
        format!("req-{i:09}")
    }
}

fn measure(label: &str, segment: bool, uuid: bool) {
    let config = feedback_loop::config::from_toml_str(
        r#"
[join]
max_label_delay = "1h"
max_pending = 2000000
[[models]]
name = "fraud"
task = "binary"
positive_class = "1"
segments = ["channel"]
"#,
    )
    .expect("config");
    let decoder = Decoder::new(&config);
    let mut engine = Engine::new(EngineConfig::from_config(&config));
    let key_len = request_id(0, uuid).len();
    // Warm the windows and interners so that only per-prediction state is measured.
    let record = |i: usize| {
        let segment = if segment {
            r#","segment":{"channel":"web"}"#
        } else {
            ""
        };
        format!(
            r#"{{"id":"{}","model":"fraud","model_version":"1.0","timestamp":{},"prediction":1,"score":0.5{segment}}}"#,
            request_id(i, uuid),
            1_767_225_600_000u64 + (i as u64 % 1000)
        )
    };
    for i in 0..1000 {
        let r = record(PENDING + i);
        let p = decoder
            .prediction(r.as_bytes(), Envelope::default())
            .expect("valid");
        let _ = engine.observe_prediction(&p);
    }
    let before = LIVE.load(Ordering::Relaxed);
    for i in 0..PENDING {
        let r = record(i);
        let p = decoder
            .prediction(r.as_bytes(), Envelope::default())
            .expect("valid");
        let _ = engine.observe_prediction(&p);
    }
    let after = LIVE.load(Ordering::Relaxed);
    let per = (after - before) as f64 / PENDING as f64;
    println!(
        "{label}: {} pending, {:.1} bytes per pending prediction in all, {:.1} beyond its {key_len}-byte key",
        engine.pending_predictions(),
        per,
        per - key_len as f64
    );
}

fn main() {
    measure("no segment", false, false);
    measure("one segment dimension", true, false);
    measure("one segment dimension, 36-byte ids", true, true);
}
