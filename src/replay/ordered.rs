//! One input file's lines in event-time order, in bounded memory.
//!
//! A line's time is its record's event time; a line that does not decode takes the time
//! of the valid line before it in its file (so it keeps its place). Lines are ordered by
//! (time, line number). A file already in that order (what `generate` and most log exports
//! write) is read as it goes. Any other is sorted externally: runs of at most
//! [`RUN_BYTES`] of lines are sorted in memory and spilled to temporary files (in
//! `$TMPDIR`), then merged; the files are removed when done. Memory is a run, not the file.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::PathBuf;

use anyhow::Context;

use feedback_loop_core::record::{Decoder, Envelope, Input};

use super::input::{Lines, Source};

/// Bytes of lines sorted in memory at a time.
pub(crate) const RUN_BYTES: usize = 64 << 20;

/// A line with its place in the order.
#[derive(Debug)]
pub(crate) struct Keyed {
    pub ts: i64,
    pub index: usize,
    pub bytes: Vec<u8>,
}

/// The event time of each line of a file, in file order.
pub(crate) struct Timed<'s> {
    lines: Lines<'s>,
    decoder: &'s Decoder,
    input: Input,
    previous_ts: i64,
}

impl<'s> Timed<'s> {
    pub(crate) fn new(
        source: &'s Source<'_>,
        decoder: &'s Decoder,
        input: Input,
    ) -> anyhow::Result<Timed<'s>> {
        Ok(Timed {
            lines: Lines::new(source.open()?, source.name()),
            decoder,
            input,
            previous_ts: i64::MIN,
        })
    }

    pub(crate) fn next(&mut self) -> anyhow::Result<Option<Keyed>> {
        let mut bytes = Vec::new();
        let Some(index) = self.lines.next_into(&mut bytes)? else {
            return Ok(None);
        };
        let ts = match self.decoder.decode(self.input, &bytes, Envelope::default()) {
            Ok(record) => record.ts(),
            Err(_) => self.previous_ts,
        };
        self.previous_ts = ts;
        Ok(Some(Keyed { ts, index, bytes }))
    }
}

/// A file's lines in (time, line) order.
pub(crate) enum Ordered<'s> {
    /// The file is in order: read as it goes.
    InOrder(Timed<'s>),
    /// Sorted runs, merged.
    Merged(RunMerge),
}

impl<'s> Ordered<'s> {
    /// `in_order`: whether a pass over the file found it in order.
    pub(crate) fn new(
        source: &'s Source<'_>,
        decoder: &'s Decoder,
        input: Input,
        in_order: bool,
    ) -> anyhow::Result<Ordered<'s>> {
        let timed = Timed::new(source, decoder, input)?;
        if in_order {
            Ok(Ordered::InOrder(timed))
        } else {
            Ok(Ordered::Merged(RunMerge::sort(timed, RUN_BYTES)?))
        }
    }

    pub(crate) fn next(&mut self) -> anyhow::Result<Option<Keyed>> {
        match self {
            Ordered::InOrder(timed) => timed.next(),
            Ordered::Merged(merge) => merge.next(),
        }
    }
}

/// Sorted runs (spilled files, the last one in memory) and their merge.
pub(crate) struct RunMerge {
    runs: Vec<Run>,
    heads: BinaryHeap<Reverse<(i64, usize, usize)>>,
    /// The head line of each run, by run.
    pending: Vec<Option<Keyed>>,
}

enum Run {
    Spilled {
        reader: BufReader<File>,
        path: PathBuf,
    },
    Memory(std::vec::IntoIter<Keyed>),
}

impl Run {
    fn next(&mut self) -> anyhow::Result<Option<Keyed>> {
        match self {
            Run::Memory(lines) => Ok(lines.next()),
            Run::Spilled { reader, path } => {
                let mut header = [0u8; 20];
                match reader.read_exact(&mut header) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
                    Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
                }
                let ts = i64::from_le_bytes(header[0..8].try_into().unwrap_or_default());
                let index = u64::from_le_bytes(header[8..16].try_into().unwrap_or_default());
                let len = u32::from_le_bytes(header[16..20].try_into().unwrap_or_default());
                let mut bytes = vec![0; len as usize];
                reader
                    .read_exact(&mut bytes)
                    .with_context(|| format!("reading {}", path.display()))?;
                Ok(Some(Keyed {
                    ts,
                    index: index as usize,
                    bytes,
                }))
            }
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Run::Spilled { path, .. } = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl RunMerge {
    /// Reads all of `timed`, `run_bytes` at a time, sorting and spilling each run.
    pub(crate) fn sort(mut timed: Timed<'_>, run_bytes: usize) -> anyhow::Result<RunMerge> {
        let mut runs = Vec::new();
        let mut run: Vec<Keyed> = Vec::new();
        let mut bytes = 0;
        while let Some(line) = timed.next()? {
            bytes += line.bytes.len() + 32;
            run.push(line);
            if bytes >= run_bytes {
                runs.push(spill(std::mem::take(&mut run))?);
                bytes = 0;
            }
        }
        run.sort_unstable_by_key(|l| (l.ts, l.index));
        runs.push(Run::Memory(run.into_iter()));
        let mut merge = RunMerge {
            pending: (0..runs.len()).map(|_| None).collect(),
            runs,
            heads: BinaryHeap::new(),
        };
        for i in 0..merge.runs.len() {
            merge.refill(i)?;
        }
        Ok(merge)
    }

    fn refill(&mut self, run: usize) -> anyhow::Result<()> {
        if let Some(line) = self.runs[run].next()? {
            self.heads.push(Reverse((line.ts, line.index, run)));
            self.pending[run] = Some(line);
        }
        Ok(())
    }

    fn next(&mut self) -> anyhow::Result<Option<Keyed>> {
        let Some(Reverse((_, _, run))) = self.heads.pop() else {
            return Ok(None);
        };
        let line = self.pending[run].take();
        self.refill(run)?;
        Ok(line)
    }
}

/// Sorts a run and writes it to a temporary file.
fn spill(mut run: Vec<Keyed>) -> anyhow::Result<Run> {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    run.sort_unstable_by_key(|l| (l.ts, l.index));
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!(
        "feedback-loop-replay-{}-{n}.run",
        std::process::id()
    ));
    let file = File::create(&path).with_context(|| {
        format!(
            "creating {} (a sorted run; TMPDIR moves it)",
            path.display()
        )
    })?;
    let mut writer = BufWriter::new(file);
    for line in &run {
        writer.write_all(&line.ts.to_le_bytes())?;
        writer.write_all(&(line.index as u64).to_le_bytes())?;
        let len = u32::try_from(line.bytes.len()).context("a line longer than 4 GiB")?;
        writer.write_all(&len.to_le_bytes())?;
        writer.write_all(&line.bytes)?;
    }
    writer
        .flush()
        .with_context(|| format!("writing {}", path.display()))?;
    let reader =
        BufReader::new(File::open(&path).with_context(|| format!("reading {}", path.display()))?);
    Ok(Run::Spilled { reader, path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_merge_into_the_order_of_a_whole_sort() {
        let config = crate::config::from_toml_str(
            "[[models]]\nname = \"m\"\ntask = \"binary\"\npositive_class = \"1\"\n",
        )
        .unwrap();
        let decoder = Decoder::new(&config);
        // Times out of order, repeats, and bad lines (which follow the line before them).
        let mut text = String::new();
        let mut state = 7u64;
        for i in 0..500 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let ts = 1_767_225_600_000 + ((state >> 33) % 50) as i64 * 1000;
            if i % 37 == 0 {
                text.push_str("{not json\n");
            } else {
                text.push_str(&format!(
                    "{{\"id\":\"r{i}\",\"model\":\"m\",\"timestamp\":{ts},\"prediction\":1}}\n"
                ));
            }
        }
        let source = Source::Bytes(text.as_bytes());
        let mut whole = Vec::new();
        let mut timed = Timed::new(&source, &decoder, Input::Predictions).unwrap();
        while let Some(line) = timed.next().unwrap() {
            whole.push(line);
        }
        whole.sort_by_key(|l| (l.ts, l.index));
        // Tiny runs: many spilled files.
        let timed = Timed::new(&source, &decoder, Input::Predictions).unwrap();
        let mut merge = RunMerge::sort(timed, 2000).unwrap();
        assert!(merge.runs.len() > 5, "{} runs", merge.runs.len());
        let mut merged = Vec::new();
        while let Some(line) = merge.next().unwrap() {
            merged.push(line);
        }
        let key = |l: &Keyed| (l.ts, l.index, l.bytes.clone());
        assert_eq!(
            merged.iter().map(key).collect::<Vec<_>>(),
            whole.iter().map(key).collect::<Vec<_>>()
        );
    }
}
