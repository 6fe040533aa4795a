//! Handling what others wrote: files read with a bound (regular files only, symlinks refused
//! where asked), and text shown with its control characters escaped.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// How a file may be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// The last path component may be a symlink (a runtime's bundle, a config file).
    Follow,
    /// The last path component must not be a symlink (files in a directory others may share).
    Refuse,
}

/// Opens a regular file for reading: never blocks on a FIFO, refuses devices, sockets and
/// FIFOs (whose size says nothing of what a read returns), and with [`Links::Refuse`] a
/// symlink.
pub fn open_regular(path: &Path, links: Links) -> io::Result<File> {
    let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC;
    if links == Links::Refuse {
        flags |= libc::O_NOFOLLOW;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                io::Error::new(io::ErrorKind::InvalidInput, "is a symbolic link")
            } else {
                e
            }
        })?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("is {what}, not a regular file"),
        ));
    }
    Ok(file)
}

/// Reads a regular file (see [`open_regular`]) of at most `max` bytes; a larger one is an error
/// of kind `FileTooLarge`, found without reading past the bound.
pub fn read_file(path: &Path, max: u64, links: Links) -> io::Result<Vec<u8>> {
    let file = open_regular(path, links)?;
    read_bounded(file, max)
}

/// Reads at most `max` bytes from `r`; more is an error of kind `FileTooLarge`.
pub fn read_bounded(r: impl Read, max: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    r.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("larger than {max} bytes"),
        ));
    }
    Ok(bytes)
}

/// A message of several lines of our own, each escaped as [`escape`] does: for a report whose
/// line breaks we wrote and whose parts from outside hold none (a document's syntax
/// problems, one per line).
pub fn escape_lines(s: &str) -> String {
    s.split('\n')
        .map(|l| escape(l).to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Text from outside (a registry, a spec, a runtime) shown on one line: control characters
/// (newlines, escape sequences, NUL, DEL, C1 controls, bidirectional overrides) are written
/// as `\n`, `\u{1b}`, ... so that nothing read can forge a log line or drive a terminal.
/// Printable text, quotes included, is shown as is.
pub fn escape(s: &str) -> Escaped<'_> {
    Escaped(s)
}

/// See [`escape`]; a `String` with `.to_string()`.
#[derive(Clone, Copy)]
pub struct Escaped<'a>(&'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        if !s.chars().any(needs_escape) {
            return f.write_str(s);
        }
        for c in s.chars() {
            match c {
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                c if needs_escape(c) => write!(f, "\\u{{{:x}}}", c as u32)?,
                c => f.write_fmt(format_args!("{c}"))?,
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}')
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// `escape` into an owned string.
pub fn escaped(s: &str) -> String {
    escape(s).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escaped("plain text: \"ok\" é"), "plain text: \"ok\" é");
        assert_eq!(
            escaped("a\nb\r\tc\u{1b}[31mred\u{0}\u{7f}\u{85}"),
            "a\\nb\\r\\tc\\u{1b}[31mred\\u{0}\\u{7f}\\u{85}"
        );
        assert_eq!(escaped("x\u{202e}y\u{2028}"), "x\\u{202e}y\\u{2028}");
    }

    #[test]
    fn only_regular_files_within_the_bound() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f");
        std::fs::write(&f, "12345").unwrap();
        assert_eq!(read_file(&f, 5, Links::Refuse).unwrap(), b"12345");
        let e = read_file(&f, 4, Links::Refuse).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        assert!(read_file(&link, 5, Links::Follow).is_ok());
        let e = read_file(&link, 5, Links::Refuse).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        let e = read_file(Path::new("/dev/zero"), 5, Links::Follow).unwrap_err();
        assert!(e.to_string().contains("a device"), "{e}");
        let e = read_file(t.path(), 5, Links::Follow).unwrap_err();
        assert!(e.to_string().contains("a directory"), "{e}");
        let fifo = t.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo only creates a file.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // Must not block (nobody writes the FIFO).
        let e = read_file(&fifo, 5, Links::Follow).unwrap_err();
        assert!(e.to_string().contains("a FIFO"), "{e}");
    }
}
