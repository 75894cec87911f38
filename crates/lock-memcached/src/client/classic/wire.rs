//! The stream handed to memcache-async: it counts what was written, bounds what is read, and
//! gathers each command's pieces into one write.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::client::codec::MAX_LINE;
use crate::client::stream::Stream;

/// Checks the server's bytes as they are read: every reply line is at most [`MAX_LINE`]
/// bytes, and every `VALUE` block at most `max_value` bytes (its data is skipped, not
/// parsed).
#[derive(Debug)]
pub(crate) struct ReadScan {
    max_value: usize,
    line: Vec<u8>,
    /// Bytes of a `VALUE` data block (and its CRLF) still to pass.
    skip: usize,
}

impl ReadScan {
    pub(crate) fn new(max_value: usize) -> ReadScan {
        ReadScan {
            max_value,
            line: Vec::new(),
            skip: 0,
        }
    }

    pub(crate) fn feed(&mut self, mut bytes: &[u8]) -> Result<(), String> {
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let (part, rest, complete) = match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => (&bytes[..=i], &bytes[i + 1..], true),
                None => (bytes, &[][..], false),
            };
            if self.line.len() + part.len() > MAX_LINE {
                return Err(format!("a reply line is longer than {MAX_LINE} bytes"));
            }
            self.line.extend_from_slice(part);
            bytes = rest;
            if complete {
                self.end_line()?;
            }
        }
        Ok(())
    }

    fn end_line(&mut self) -> Result<(), String> {
        if let Some(rest) = self.line.strip_prefix(b"VALUE ") {
            // VALUE <key> <flags> <bytes> [<cas>]
            let len = std::str::from_utf8(rest)
                .ok()
                .and_then(|t| t.split_ascii_whitespace().nth(2))
                .and_then(|t| t.parse::<usize>().ok())
                .ok_or_else(|| "a VALUE line without a valid length".to_string())?;
            if len > self.max_value {
                return Err(format!(
                    "a VALUE of {len} bytes exceeds options.max_value ({} bytes)",
                    self.max_value
                ));
            }
            self.skip = len + 2;
        }
        self.line.clear();
        Ok(())
    }
}

/// The stream (plain or TLS) memcache-async reads and writes: counts the bytes written (so a timeout can
/// tell whether the request left), bounds what is read ([`ReadScan`]), and gathers each
/// command's writes until its flush. memcache-async writes a store as three pieces (command
/// line, data, CRLF); with TCP_NODELAY each would leave as its own segment.
#[derive(Debug)]
pub(crate) struct Wire {
    stream: Stream,
    written: Arc<AtomicU64>,
    scan: ReadScan,
    wbuf: Vec<u8>,
    wpos: usize,
}

impl Wire {
    pub(crate) fn new(stream: Stream, written: Arc<AtomicU64>, max_value: usize) -> Wire {
        Wire {
            stream,
            written,
            scan: ReadScan::new(max_value),
            wbuf: Vec::with_capacity(256),
            wpos: 0,
        }
    }

    /// Writes out everything gathered so far.
    fn poll_drain(&mut self, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        while self.wpos < self.wbuf.len() {
            match Pin::new(&mut self.stream).poll_write(cx, &self.wbuf[self.wpos..]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => {
                    self.wpos += n;
                    self.written.fetch_add(n as u64, Ordering::AcqRel);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        self.wbuf.clear();
        self.wpos = 0;
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for Wire {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => match this.scan.feed(&buf.filled()[before..]) {
                Ok(()) => Poll::Ready(Ok(())),
                Err(why) => Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, why))),
            },
            other => other,
        }
    }
}

impl AsyncWrite for Wire {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        // Gathered; memcache-async flushes after every command.
        self.get_mut().wbuf.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.poll_drain(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.stream).poll_flush(cx),
            other => other,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.poll_drain(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.stream).poll_shutdown(cx),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ReadScan;

    #[test]
    fn read_scan_bounds_lines_and_values() {
        let mut scan = ReadScan::new(10);
        // A value within the limit whose data looks like a header is skipped, not parsed.
        assert!(scan.feed(b"VALUE k 0 10 5\r\nVALUE 999\r\nEND\r\n").is_ok());
        // Split anywhere.
        let mut scan = ReadScan::new(10);
        for b in b"VALUE k 0 3 1\r\nabc\r\nEND\r\nSTORED\r\n" {
            assert!(scan.feed(&[*b]).is_ok());
        }
        assert!(scan.line.is_empty() && scan.skip == 0);
        // Too large, malformed, or endless lines are refused before anyone allocates for them.
        assert!(ReadScan::new(10).feed(b"VALUE k 0 11\r\n").is_err());
        assert!(
            ReadScan::new(10)
                .feed(b"VALUE k 0 99999999999999999999999\r\n")
                .is_err()
        );
        assert!(ReadScan::new(10).feed(b"VALUE k 0\r\n").is_err());
        assert!(ReadScan::new(10).feed(&vec![b'x'; 9000]).is_err());
    }
}
