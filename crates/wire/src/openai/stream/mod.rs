//! Stream conversion in both directions, one SSE event at a time: Chat Completions chunks into
//! Anthropic Messages events (`to_messages`) and Messages events into Chat Completions chunks
//! (`to_chat`). Nothing waits for the end of the stream; events split across network chunks are
//! held by the SSE scanner.

mod to_chat;
mod to_messages;

pub use to_chat::MessagesToChatStream;
pub use to_messages::ChatToMessagesStream;

use crate::sse::{SseEvent, SseScanner};
use bytes::Bytes;

/// Where a converted stream stands; once it is done or failed, further input is ignored so that
/// nothing follows the terminal event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Streaming,
    Done,
    Failed,
}

/// One direction's conversion: what each upstream event becomes, and the client's error when
/// the stream cannot be completed.
trait Translate {
    fn event(&mut self, ev: &SseEvent<'_>, out: &mut Vec<u8>);
    fn error(&mut self, out: &mut Vec<u8>, kind: &str, message: &str);
    fn end(&self) -> End;
}

/// An upstream stream under conversion: the SSE scanner, which holds events split across
/// network chunks, and the direction's state.
#[derive(Debug)]
struct Converting<T> {
    scanner: SseScanner,
    state: T,
}

impl<T: Translate> Converting<T> {
    fn new(state: T) -> Self {
        Self {
            scanner: SseScanner::new(),
            state,
        }
    }

    /// The client bytes that the next bytes of the upstream stream complete (possibly none).
    fn feed(&mut self, chunk: &[u8]) -> Bytes {
        let mut out = Vec::new();
        let Self { scanner, state } = self;
        scanner.feed(chunk, |ev| state.event(&ev, &mut out));
        if scanner.overflowed() && state.end() == End::Streaming {
            state.error(
                &mut out,
                "api_error",
                "the upstream sent an oversize stream event",
            );
        }
        Bytes::from(out)
    }

    /// The last client bytes once the upstream stream has ended. A final event the upstream did
    /// not terminate (`data: [DONE]` without `\n\n`) is still taken; a stream that never
    /// reached its terminal event (`terminal` names it) ends with an error.
    fn finish(&mut self, terminal: &str) -> Bytes {
        let mut out = Vec::new();
        let Self { scanner, state } = self;
        scanner.feed(b"\n\n", |ev| state.event(&ev, &mut out));
        if state.end() == End::Streaming {
            state.error(
                &mut out,
                "api_error",
                &format!("the upstream stream ended before {terminal}"),
            );
        }
        Bytes::from(out)
    }
}
