//! Relaying an upstream SSE stream: bytes pass through untouched, frame by frame, while a
//! scanner watches them for usage and the end of the message.
//!
//! The journal record is written before the frame holding `message_stop` is handed on (or, for
//! a stream that ends otherwise, before the end is), so a response the client received whole
//! is always on record. An upstream failure after the stream began reaches the client as an
//! Anthropic `event: error`, never as a clean end without `message_stop`.

use super::settle::Recorder;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::time::{Instant, Sleep};
use tollgate_wire::anthropic::{StreamWatch, error_event};
use tollgate_wire::sse::SseScanner;

/// The response body of a relayed stream.
pub struct StreamRelay {
    upstream: Incoming,
    scanner: SseScanner,
    watch: StreamWatch,
    recorder: Recorder,
    status: u16,
    bytes_out: u64,
    idle: Duration,
    idle_timer: Pin<Box<Sleep>>,
    /// The stream is over; only `None` remains to be returned.
    ended: bool,
}

impl StreamRelay {
    /// Wraps an upstream body; `recorder` holds the request's unfinished journal record.
    pub fn new(upstream: Incoming, recorder: Recorder, idle: Duration, status: u16) -> Self {
        Self {
            upstream,
            scanner: SseScanner::new(),
            watch: StreamWatch::default(),
            recorder,
            status,
            bytes_out: 0,
            idle,
            idle_timer: Box::pin(tokio::time::sleep(idle)),
            ended: false,
        }
    }

    fn settle(&mut self, failure: Option<(String, String)>) {
        self.recorder
            .finish_response(self.status, &self.watch.facts, self.bytes_out, failure);
    }

    /// Ends the stream with an `event: error` frame, recording why.
    fn fail(&mut self, kind: &str, message: String) -> Frame<Bytes> {
        let frame = error_event(kind, &message);
        self.bytes_out += frame.len() as u64;
        self.settle(Some((kind.to_string(), message)));
        self.ended = true;
        Frame::data(frame)
    }
}

impl Body for StreamRelay {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.upstream).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes_out += data.len() as u64;
                    let watch = &mut this.watch;
                    this.scanner.feed(data, |ev| watch.observe(&ev));
                    this.recorder.capture_response(data);
                    let deadline = Instant::now() + this.idle;
                    this.idle_timer.as_mut().reset(deadline);
                    if this.watch.facts.complete {
                        this.settle(None);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                let msg = format!("the provider's stream failed: {e}");
                Poll::Ready(Some(Ok(this.fail("api_error", msg))))
            }
            Poll::Ready(None) => {
                this.ended = true;
                if this.watch.facts.complete || this.watch.facts.error.is_some() {
                    // Complete, or already ended by the upstream's own `event: error`.
                    this.settle(None);
                    return Poll::Ready(None);
                }
                let msg = "the provider's stream ended before message_stop".to_string();
                Poll::Ready(Some(Ok(this.fail("api_error", msg))))
            }
            Poll::Pending => {
                ready!(this.idle_timer.as_mut().poll(cx));
                let msg = format!(
                    "the provider's stream was silent for {} s",
                    this.idle.as_secs()
                );
                Poll::Ready(Some(Ok(this.fail("api_error", msg))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl Drop for StreamRelay {
    /// The client went away mid-stream: record what was used so far.
    fn drop(&mut self) {
        if !self.ended && !self.watch.facts.complete {
            self.settle(Some((
                "client_closed_request".into(),
                "the client closed the connection before the stream ended".into(),
            )));
        }
    }
}
