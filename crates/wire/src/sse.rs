//! An incremental Server-Sent Events scanner that watches a byte stream pass by.
//!
//! # Format
//! Events are lines of `field: value` ended by a blank line; both `\n` and `\r\n` line ends are
//! valid. The scanner never changes the bytes it sees: the proxy forwards every chunk as it
//! arrives and only hands a copy to [`SseScanner::feed`]. An event split across chunks is an
//! incomplete frame held in a small buffer, not an error.

/// One complete event: its `event:` name (empty when absent) and its `data:` lines joined by `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent<'a> {
    pub name: &'a str,
    pub data: std::borrow::Cow<'a, [u8]>,
}

/// Splits a byte stream into SSE events, buffering only the unfinished tail.
#[derive(Debug, Default)]
pub struct SseScanner {
    tail: Vec<u8>,
    /// Set once an event outgrew [`MAX_EVENT_BYTES`]; scanning stops, forwarding does not.
    overflowed: bool,
}

/// Events larger than this are not inspected (the stream itself still passes through).
pub const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

impl SseScanner {
    /// A scanner with an empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// True when an oversize event made the scanner give up.
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Feeds one chunk and calls `on_event` for every event it completes.
    pub fn feed(&mut self, chunk: &[u8], mut on_event: impl FnMut(SseEvent<'_>)) {
        if self.overflowed {
            return;
        }
        if self.tail.is_empty() {
            let used = scan(chunk, &mut on_event);
            self.keep(&chunk[used..]);
        } else {
            self.tail.extend_from_slice(chunk);
            let buf = std::mem::take(&mut self.tail);
            let used = scan(&buf, &mut on_event);
            self.keep(&buf[used..]);
        }
    }

    fn keep(&mut self, rest: &[u8]) {
        if rest.len() > MAX_EVENT_BYTES {
            self.overflowed = true;
            self.tail = Vec::new();
        } else {
            self.tail.clear();
            self.tail.extend_from_slice(rest);
        }
    }
}

/// Scans complete events in `buf`, returning how many bytes were consumed.
fn scan(buf: &[u8], on_event: &mut impl FnMut(SseEvent<'_>)) -> usize {
    let mut start = 0;
    while let Some(end) = find_event_end(&buf[start..]) {
        let (body_len, sep_len) = end;
        parse_event(&buf[start..start + body_len], on_event);
        start += body_len + sep_len;
    }
    start
}

/// Finds the blank line that ends the first event: returns (event length, separator length).
fn find_event_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut from = 0;
    while let Some(i) = memchr::memchr(b'\n', &buf[from..]) {
        let nl = from + i;
        let next = nl + 1;
        if next < buf.len() && buf[next] == b'\n' {
            return Some((nl, 2));
        }
        if next + 1 < buf.len() && buf[next] == b'\r' && buf[next + 1] == b'\n' {
            return Some((nl, 3));
        }
        from = next;
    }
    None
}

fn parse_event(raw: &[u8], on_event: &mut impl FnMut(SseEvent<'_>)) {
    let mut name: &[u8] = b"";
    let mut data: Option<std::borrow::Cow<'_, [u8]>> = None;
    // Lines found with memchr: a `data:` line is most of an event, and a byte-by-byte split
    // over it was most of the scanner's time.
    let mut rest = raw;
    while !rest.is_empty() {
        let (line, next) = match memchr::memchr(b'\n', rest) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &b""[..]),
        };
        rest = next;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let (field, value) = match memchr::memchr(b':', line) {
            Some(0) => continue, // comment
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"event" => name = value,
            b"data" => {
                data = Some(match data {
                    None => std::borrow::Cow::Borrowed(value),
                    Some(prev) => {
                        let mut joined = prev.into_owned();
                        joined.push(b'\n');
                        joined.extend_from_slice(value);
                        std::borrow::Cow::Owned(joined)
                    }
                })
            }
            _ => {}
        }
    }
    if name.is_empty() && data.is_none() {
        return;
    }
    on_event(SseEvent {
        name: std::str::from_utf8(name).unwrap_or(""),
        data: data.unwrap_or(std::borrow::Cow::Borrowed(b"")),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(chunks: &[&[u8]]) -> Vec<(String, String)> {
        let mut s = SseScanner::new();
        let mut out = Vec::new();
        for c in chunks {
            s.feed(c, |e| {
                out.push((
                    e.name.to_string(),
                    String::from_utf8_lossy(&e.data).into_owned(),
                ))
            });
        }
        out
    }

    #[test]
    fn events_split_anywhere_are_reassembled() {
        let stream = b"event: a\ndata: {\"x\":1}\n\nevent: b\r\ndata: 2\r\n\r\n: comment\n\ndata: x\ndata: y\n\n";
        let whole = collect(&[stream]);
        assert_eq!(
            whole,
            vec![
                ("a".into(), "{\"x\":1}".into()),
                ("b".into(), "2".into()),
                ("".into(), "x\ny".into())
            ]
        );
        for cut in 0..stream.len() {
            assert_eq!(
                collect(&[&stream[..cut], &stream[cut..]]),
                whole,
                "cut {cut}"
            );
        }
    }

    #[test]
    fn incomplete_event_is_held_not_emitted() {
        assert!(collect(&[b"event: a\ndata: 1\n"]).is_empty());
    }
}
