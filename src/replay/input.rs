//! Where `replay` reads its lines from: a file (plain, `.gz` or `.zst`, by its name) or
//! bytes in memory, opened afresh for each pass over it. Lines are split at `\n` (a
//! trailing `\r` dropped) and numbered from 0 as in the file, blank lines included, so a
//! line number in a message is the one an editor shows (plus one).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::Context;

/// One input of a replay.
#[derive(Debug, Clone)]
pub enum Source<'a> {
    Bytes(&'a [u8]),
    File(PathBuf),
}

impl Source<'_> {
    /// A reader from the start (decompressing `.gz` / `.zst` files).
    pub(crate) fn open(&self) -> anyhow::Result<Box<dyn BufRead + '_>> {
        match self {
            Source::Bytes(bytes) => Ok(Box::new(*bytes)),
            Source::File(path) => {
                let file =
                    File::open(path).with_context(|| format!("reading {}", path.display()))?;
                let reader: Box<dyn Read> = match compression(path) {
                    Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(file)),
                    Compression::Zstd => Box::new(
                        zstd::stream::read::Decoder::new(file)
                            .with_context(|| format!("reading {} (zstd)", path.display()))?,
                    ),
                    Compression::None => Box::new(file),
                };
                Ok(Box::new(BufReader::with_capacity(1 << 16, reader)))
            }
        }
    }

    /// How messages name it.
    pub(crate) fn name(&self) -> String {
        match self {
            Source::Bytes(_) => "input".into(),
            Source::File(path) => path.display().to_string(),
        }
    }
}

enum Compression {
    None,
    Gzip,
    Zstd,
}

fn compression(path: &Path) -> Compression {
    match path.extension().and_then(|e| e.to_str()) {
        Some("gz") => Compression::Gzip,
        Some("zst") => Compression::Zstd,
        _ => Compression::None,
    }
}

/// Lines of a reader with their numbers; blank lines are numbered but not returned.
pub(crate) struct Lines<'r> {
    reader: Box<dyn BufRead + 'r>,
    next_index: usize,
    done: bool,
    what: String,
}

impl<'r> Lines<'r> {
    pub(crate) fn new(reader: Box<dyn BufRead + 'r>, what: String) -> Lines<'r> {
        Lines {
            reader,
            next_index: 0,
            done: false,
            what,
        }
    }

    /// The next non-blank line into `buffer` (without its `\n` or `\r\n`), with its
    /// number; `None` at the end.
    pub(crate) fn next_into(&mut self, buffer: &mut Vec<u8>) -> anyhow::Result<Option<usize>> {
        loop {
            if self.done {
                return Ok(None);
            }
            buffer.clear();
            let read = self
                .reader
                .read_until(b'\n', buffer)
                .with_context(|| format!("reading {}", self.what))?;
            if read == 0 {
                self.done = true;
                return Ok(None);
            }
            let index = self.next_index;
            self.next_index += 1;
            if buffer.last() == Some(&b'\n') {
                buffer.pop();
            } else {
                // The last line, without a newline.
                self.done = true;
            }
            if buffer.last() == Some(&b'\r') {
                buffer.pop();
            }
            if !buffer.iter().all(u8::is_ascii_whitespace) {
                return Ok(Some(index));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &[u8]) -> Vec<(usize, String)> {
        let mut lines = Lines::new(Box::new(text), "test".into());
        let mut buffer = Vec::new();
        let mut out = Vec::new();
        while let Some(index) = lines.next_into(&mut buffer).unwrap() {
            out.push((index, String::from_utf8(buffer.clone()).unwrap()));
        }
        out
    }

    #[test]
    fn numbers_lines_as_a_split_at_newlines_does() {
        let text = b"a\r\n\n  \nb\nc";
        let expected: Vec<(usize, String)> = text
            .split(|&b| b == b'\n')
            .enumerate()
            .map(|(i, l)| (i, l.strip_suffix(b"\r").unwrap_or(l)))
            .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
            .map(|(i, l)| (i, String::from_utf8(l.to_vec()).unwrap()))
            .collect();
        assert_eq!(lines(text), expected);
        assert_eq!(lines(b"a\nb\n"), vec![(0, "a".into()), (1, "b".into())]);
        assert!(lines(b"").is_empty());
    }

    #[test]
    fn reads_gzip_and_zstd_files() {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("replay-input-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = b"{\"a\":1}\n{\"a\":2}\n";
        let gz = dir.join("x.jsonl.gz");
        let mut encoder =
            flate2::write::GzEncoder::new(File::create(&gz).unwrap(), flate2::Compression::fast());
        encoder.write_all(text).unwrap();
        encoder.finish().unwrap();
        let zst = dir.join("x.jsonl.zst");
        std::fs::write(&zst, zstd::encode_all(&text[..], 3).unwrap()).unwrap();
        for path in [gz, zst] {
            let source = Source::File(path.clone());
            let mut read = Vec::new();
            source.open().unwrap().read_to_end(&mut read).unwrap();
            assert_eq!(read, text, "{}", path.display());
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
