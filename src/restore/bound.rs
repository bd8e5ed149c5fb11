//! What a snapshot may write to local disk on restore: its files are untrusted (restic keeps a
//! sparse giant in a few bytes of repository), so a file is written only up to the size its
//! manifest records, and only when that size fits where it goes. A disk that the live
//! database shares is never filled by a snapshot.

use std::io::Write;
use std::path::Path;

use crate::restic::{Restic, ResticError};
use crate::restore::Contents;

/// The size a manifest records for a dump, when it records one (older manifests: 0).
pub fn recorded(bytes: u64) -> Option<u64> {
    (bytes > 0).then_some(bytes)
}

/// Fails, in the words of a full disk (callers name the place, the size and the fix), when
/// `need` bytes are more than `dir`'s filesystem has free.
pub fn room(dir: &Path, need: u64) -> Result<(), String> {
    match crate::space::free_bytes(dir) {
        Some(free) if need > free => Err(format!(
            "found before writing it: it needs {} there, more than is free (no space left on device)",
            crate::units::human_bytes(need)
        )),
        _ => Ok(()),
    }
}

/// A writer that takes at most `limit` bytes (none: no bound), then fails and says so in
/// [`Bounded::over`].
pub struct Bounded<W: Write> {
    inner: W,
    limit: Option<u64>,
    written: u64,
    over: bool,
}

impl<W: Write> Bounded<W> {
    pub fn new(inner: W, limit: Option<u64>) -> Bounded<W> {
        Bounded {
            inner,
            limit,
            written: 0,
            over: false,
        }
    }

    /// Whether more than the limit was offered.
    pub fn over(&self) -> bool {
        self.over
    }

    /// Bytes taken so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    pub fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: Write> Write for Bounded<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let left = self.limit.map_or(u64::MAX, |l| l - self.written);
        if left == 0 {
            self.over = true;
            return Err(std::io::Error::other(
                "more bytes than the manifest records",
            ));
        }
        let take = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.write(&buf[..take])?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Why [`dump`] stopped.
#[derive(Debug)]
pub enum Stop {
    /// The file is larger than its manifest records (the reason, naming it).
    Larger(String),
    Restic(ResticError),
}

/// `restic dump` of the snapshot's `path` into `sink`, stopped past the `bytes` the manifest
/// records for it (0: not recorded, no bound). Returns the sink.
///
/// Fails when the file is larger than recorded, or restic fails.
pub fn dump<W: Write>(
    restic: &Restic,
    contents: &Contents,
    path: &str,
    bytes: u64,
    sink: W,
) -> Result<W, Stop> {
    let mut bounded = Bounded::new(sink, recorded(bytes));
    let dumped = restic.dump(contents.id(), path, &mut bounded);
    if bounded.over() {
        return Err(Stop::Larger(format!(
            "the file {path} in snapshot {} is larger than the {bytes} bytes its manifest records: it is not what was backed up (stopped there)",
            contents.short()
        )));
    }
    dumped.map_err(Stop::Restic)?;
    Ok(bounded.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bounded_writer_takes_up_to_its_limit_and_refuses_the_rest() {
        let mut w = Bounded::new(Vec::new(), Some(5));
        assert_eq!(w.write(b"abc").unwrap(), 3);
        assert_eq!(w.write(b"defg").unwrap(), 2);
        assert!(!w.over());
        assert_eq!(w.written(), 5);
        assert!(w.write(b"h").is_err());
        assert!(w.over());
        assert_eq!(w.into_inner(), b"abcde");
        let mut open = Bounded::new(Vec::new(), None);
        open.write_all(&[0u8; 1 << 16]).unwrap();
        assert!(!open.over());
        assert_eq!(open.written(), 1 << 16);
    }
}
