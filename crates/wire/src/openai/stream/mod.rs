//! Stream conversion in both directions, one SSE event at a time: Chat Completions chunks into
//! Anthropic Messages events (`to_messages`) and Messages events into Chat Completions chunks
//! (`to_chat`). Nothing waits for the end of the stream; events split across network chunks are
//! held by the SSE scanner.

mod to_chat;
mod to_messages;

pub use to_chat::MessagesToChatStream;
pub use to_messages::ChatToMessagesStream;

use crate::sse::{SseEvent, SseScanner};

/// Where a converted stream stands; once it is done or failed, further input is ignored so that
/// nothing follows the terminal event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Streaming,
    Done,
    Failed,
}

/// Sends a last blank line through the scanner so that a final event the upstream did not
/// terminate (`data: [DONE]` without `\n\n`) is still seen.
fn flush_tail(scanner: &mut SseScanner, on_event: impl FnMut(SseEvent<'_>)) {
    scanner.feed(b"\n\n", on_event);
}
