//! What a snapshot may write to local disk on restore: its files are untrusted (restic keeps a
//! sparse giant in a few bytes of repository), so a file is written only up to the size its
//! manifest records, and only when that size fits where it goes. A disk that the live
//! database shares is never filled by a snapshot.

use std::io::Write;
use std::path::Path;

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
    left: u64,
    over: bool,
}

impl<W: Write> Bounded<W> {
    pub fn new(inner: W, limit: Option<u64>) -> Bounded<W> {
        Bounded {
            inner,
            left: limit.unwrap_or(u64::MAX),
            over: false,
        }
    }

    /// Whether more than the limit was offered.
    pub fn over(&self) -> bool {
        self.over
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
        if self.left == 0 {
            self.over = true;
            return Err(std::io::Error::other(
                "more bytes than the manifest records",
            ));
        }
        let take = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.write(&buf[..take])?;
        self.left -= n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The reason for a file that [`Bounded`] stopped.
pub fn larger_than_recorded(path: &str, snapshot: &str, recorded: u64) -> String {
    format!(
        "the file {path} in snapshot {snapshot} is larger than the {recorded} bytes its manifest records: it is not what was backed up (stopped there)"
    )
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
        assert!(w.write(b"h").is_err());
        assert!(w.over());
        assert_eq!(w.into_inner(), b"abcde");
        let mut open = Bounded::new(Vec::new(), None);
        open.write_all(&[0u8; 1 << 16]).unwrap();
        assert!(!open.over());
    }
}
