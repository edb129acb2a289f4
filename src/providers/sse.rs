//! Incremental Server-Sent Events parser.
//!
//! Bytes go in as they arrive, in chunks split anywhere (even inside a `\r\n`); complete events
//! come out with their exact original bytes (`raw`), so a passthrough proxy forwards them
//! unchanged, and their `event` name and joined `data` for whoever reads them. Per the SSE spec:
//! lines end in `\n`, `\r\n` or `\r`; an empty line ends an event; `data:` lines join with `\n`;
//! one space after the colon is dropped; comment lines (`:`) and other fields are kept in `raw`
//! but not interpreted. Invariant: concatenating every `raw` returned (plus `finish`) gives back
//! exactly the bytes pushed.

use bytes::{Bytes, BytesMut};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The event's bytes as received, its terminating blank line included.
    pub raw: Bytes,
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

#[derive(Debug, Default)]
pub struct Parser {
    buf: BytesMut,
    /// Bytes of `buf` already split into complete lines of the current event.
    scanned: usize,
    /// Fields of the event being read.
    event: Option<String>,
    data: Option<String>,
    /// Largest event we accept before reporting an error (a malformed or hostile stream).
    limit: usize,
}

/// An upstream sent an event larger than the parser's limit.
#[derive(Debug, thiserror::Error)]
#[error("server-sent event larger than {0} bytes")]
pub struct TooLarge(pub usize);

impl Parser {
    /// A parser accepting events up to `limit` bytes.
    pub fn new(limit: usize) -> Parser {
        Parser {
            limit,
            ..Parser::default()
        }
    }

    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete event, if the bytes pushed so far hold one.
    pub fn next_event(&mut self) -> Result<Option<Event>, TooLarge> {
        loop {
            let Some((line_end, next)) = find_line_end(&self.buf, self.scanned, false) else {
                if self.buf.len() > self.limit {
                    return Err(TooLarge(self.limit));
                }
                return Ok(None);
            };
            let blank = line_end == self.scanned;
            if blank {
                let raw = self.buf.split_to(next).freeze();
                self.scanned = 0;
                // A keep-alive comment or stray blank line comes out as an event with no data:
                // it is still forwarded.
                return Ok(Some(Event {
                    raw,
                    event: self.event.take(),
                    data: self.data.take().unwrap_or_default(),
                }));
            }
            let line = self.buf.get(self.scanned..line_end).unwrap_or_default();
            field(&mut self.event, &mut self.data, line);
            self.scanned = next;
        }
    }

    /// At end of stream: whatever is left, as a final event (an unterminated event is still
    /// delivered so nothing the upstream sent is lost).
    pub fn finish(&mut self) -> Option<Event> {
        while let Some((line_end, next)) = find_line_end(&self.buf, self.scanned, true) {
            if line_end == self.scanned {
                break;
            }
            let line = self.buf.get(self.scanned..line_end).unwrap_or_default();
            field(&mut self.event, &mut self.data, line);
            self.scanned = next;
        }
        if self.scanned < self.buf.len() {
            let line = self.buf.get(self.scanned..).unwrap_or_default();
            field(&mut self.event, &mut self.data, line);
        }
        if self.buf.is_empty() {
            return None;
        }
        let raw = self.buf.split().freeze();
        self.scanned = 0;
        Some(Event {
            raw,
            event: self.event.take(),
            data: self.data.take().unwrap_or_default(),
        })
    }
}

/// Apply one field line to the event being read.
fn field(event: &mut Option<String>, data: &mut Option<String>, line: &[u8]) {
    let (name, value) = match line.iter().position(|b| *b == b':') {
        Some(0) => return, // comment
        Some(i) => {
            let value = line.get(i + 1..).unwrap_or_default();
            let value = value.strip_prefix(b" ").unwrap_or(value);
            (line.get(..i).unwrap_or_default(), value)
        }
        None => (line, &b""[..]),
    };
    let value = String::from_utf8_lossy(value);
    match name {
        b"data" => match data {
            Some(d) => {
                d.push('\n');
                d.push_str(&value);
            }
            None => *data = Some(value.into_owned()),
        },
        b"event" => *event = Some(value.into_owned()),
        _ => {}
    }
}

/// From `start`, the end of the first line and the start of the next. A `\r` at the very end
/// of the buffer is undecided (a `\n` may follow) unless `at_eof`.
fn find_line_end(buf: &[u8], start: usize, at_eof: bool) -> Option<(usize, usize)> {
    let rest = buf.get(start..)?;
    let i = rest.iter().position(|b| *b == b'\n' || *b == b'\r')?;
    let end = start + i;
    match buf.get(end) {
        Some(b'\n') => Some((end, end + 1)),
        _ => match buf.get(end + 1) {
            Some(b'\n') => Some((end, end + 2)),
            Some(_) => Some((end, end + 1)),
            None if at_eof => Some((end, end + 1)),
            None => None,
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    const STREAM: &[u8] = b"data: {\"a\":1}\n\n: keep-alive\n\nevent: message_start\r\ndata: {\"b\":\r\ndata: 2}\r\n\r\nid: 7\rdata:x\r\rdata: [DONE]\n\n";

    fn parse_all(chunks: &[&[u8]]) -> Vec<Event> {
        let mut p = Parser::new(1 << 20);
        let mut out = Vec::new();
        for c in chunks {
            p.push(c);
            while let Some(e) = p.next_event().unwrap() {
                out.push(e);
            }
        }
        out.extend(p.finish());
        out
    }

    #[test]
    fn parses_fields_and_line_endings() {
        let events = parse_all(&[STREAM]);
        let data: Vec<&str> = events.iter().map(|e| e.data.as_str()).collect();
        assert_eq!(data, ["{\"a\":1}", "", "{\"b\":\n2}", "x", "[DONE]"]);
        assert_eq!(events[2].event.as_deref(), Some("message_start"));
        let raw: Vec<u8> = events.iter().flat_map(|e| e.raw.to_vec()).collect();
        assert_eq!(raw, STREAM);
    }

    #[test]
    fn same_events_at_every_split_point() {
        let whole = parse_all(&[STREAM]);
        for i in 0..=STREAM.len() {
            let (a, b) = STREAM.split_at(i);
            assert_eq!(parse_all(&[a, b]), whole, "split at {i}");
        }
        for i in 0..=STREAM.len() {
            for j in i..=STREAM.len() {
                let parts = [&STREAM[..i], &STREAM[i..j], &STREAM[j..]];
                assert_eq!(parse_all(&parts), whole, "split at {i},{j}");
            }
        }
        let bytes: Vec<&[u8]> = STREAM.chunks(1).collect();
        assert_eq!(parse_all(&bytes), whole);
    }

    #[test]
    fn unterminated_final_event_is_delivered() {
        let events = parse_all(&[b"data: a\n\ndata: tail"]);
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].data, "tail");
        assert_eq!(&events[1].raw[..], b"data: tail");
    }

    #[test]
    fn oversized_event_is_an_error() {
        let mut p = Parser::new(8);
        p.push(b"data: 0123456789");
        assert!(p.next_event().is_err());
    }
}
