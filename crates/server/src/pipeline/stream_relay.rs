//! Relaying an upstream SSE stream: bytes pass through untouched, frame by frame, while a
//! scanner watches them for usage and the end of the message.
//!
//! When the client and the upstream speak different dialects, a `decode` transform turns the
//! upstream's framing into Anthropic SSE (which the scanner watches) and an `encode` transform
//! turns that into the client's framing; on a same-dialect path both are absent and frames are
//! handed on without a copy.
//!
//! The journal record is written before the frame holding `message_stop` is handed on (or, for
//! a stream that ends otherwise, before the end is), so a response the client received whole
//! is always on record. An upstream failure after the stream began reaches the client as an
//! Anthropic `event: error`, never as a clean end without `message_stop`.

use super::settle::Recorder;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::time::{Instant, Sleep};
use tollgate_providers::{BodyError, ResponseBody};
use tollgate_routing::Lease;
use tollgate_wire::anthropic::{StreamWatch, error_event};
use tollgate_wire::openai::{ChatStreamWatch, openai_error_body};
use tollgate_wire::sse::SseScanner;

/// OpenAI's error `type` for the gateway's own stream failures.
fn openai_kind(anthropic_kind: &str) -> &'static str {
    match anthropic_kind {
        "rate_limit_error" => "rate_limit_error",
        "invalid_request_error" => "invalid_request_error",
        _ => "server_error",
    }
}

/// Rewrites a byte stream from one framing to another, incrementally. Incomplete input is kept
/// for the next call, never an error.
pub trait StreamTransform: Send {
    /// Converts one chunk; the output may be empty.
    fn feed(&mut self, chunk: &[u8]) -> Result<Bytes, String>;
    /// Flushes at the end of the input.
    fn finish(&mut self) -> Bytes;
    /// Authoritative totals the upstream reported outside the Anthropic events (Bedrock's
    /// invocation metrics); they override what the scanner read.
    fn billed_usage(&self) -> Option<tollgate_wire::Usage> {
        None
    }
}

/// What the forward phase read of a stream before the relay took it over.
pub struct ReadAhead {
    /// Data frames, in the order they came.
    pub frames: Vec<Bytes>,
    /// How the upstream body went on after them, when that was already known.
    pub then: Option<AfterFrames>,
}

/// The end of an upstream body, read before the relay reached it.
pub enum AfterFrames {
    /// The body ended cleanly.
    End,
    /// The body failed.
    Failed(BodyError),
}

impl ReadAhead {
    /// Frames with nothing known after them.
    pub fn frames(frames: Vec<Bytes>) -> Self {
        Self { frames, then: None }
    }
}

/// The response body of a relayed stream.
pub struct StreamRelay {
    /// `None` once the message is complete and the rest of the body was handed to a drain task.
    upstream: Option<ResponseBody>,
    /// Frames the forward phase read before handing the stream over (the start of a stream it
    /// looked at while another attempt could still replace it, and what the upstream had
    /// already sent); they go out first, through the same transforms and scanner as the rest.
    prefix: VecDeque<Bytes>,
    /// How the upstream went on after the prefix, if that was read too; it stands in for the
    /// next poll of the upstream.
    after_prefix: Option<AfterFrames>,
    /// The attempt's hold on its target: in flight until the stream ends, and told when the
    /// stream fails.
    lease: Option<Lease>,
    decode: Option<Box<dyn StreamTransform>>,
    encode: Option<Box<dyn StreamTransform>>,
    /// A Chat Completions stream for a Chat client: watched in its own dialect instead of the
    /// scanner, and passed on as it is.
    chat: Option<ChatStreamWatch>,
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
    pub fn new(upstream: ResponseBody, recorder: Recorder, idle: Duration, status: u16) -> Self {
        Self {
            upstream: Some(upstream),
            prefix: VecDeque::new(),
            after_prefix: None,
            lease: None,
            decode: None,
            encode: None,
            chat: None,
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

    /// Adds dialect conversion on either side of the scanner.
    pub fn with_transforms(
        mut self,
        decode: Option<Box<dyn StreamTransform>>,
        encode: Option<Box<dyn StreamTransform>>,
    ) -> Self {
        self.decode = decode;
        self.encode = encode;
        self
    }

    /// Relays a Chat Completions stream to a Chat client unconverted, reading usage, the end and
    /// errors in that dialect.
    pub fn with_chat_watch(mut self, watch: ChatStreamWatch) -> Self {
        self.chat = Some(watch);
        self
    }

    /// What was already read from the upstream: sent before anything else.
    pub fn with_read_ahead(mut self, ahead: ReadAhead) -> Self {
        self.prefix = ahead.frames.into();
        self.after_prefix = ahead.then;
        self
    }

    /// Holds the attempt's lease until the stream ends.
    pub fn with_lease(mut self, lease: Lease) -> Self {
        self.lease = Some(lease);
        self
    }

    /// Passes Anthropic SSE through the client-side transform.
    fn encode_for_client(&mut self, anthropic: Bytes) -> Bytes {
        match self.encode.as_mut() {
            None => anthropic,
            Some(enc) => enc.feed(&anthropic).unwrap_or_default(),
        }
    }

    fn settle(&mut self, failure: Option<(String, String)>) {
        // A failure of the upstream (not of the client) counts against the target's health.
        let upstream_failed = failure
            .as_ref()
            .map_or(self.watch.facts.error.is_some(), |(kind, _)| {
                kind != "client_closed_request"
            });
        if upstream_failed && let Some(lease) = self.lease.as_mut() {
            lease.failure(Duration::ZERO, false);
        }
        self.recorder
            .finish_response(self.status, &self.watch.facts, self.bytes_out, failure);
    }

    /// One upstream chunk: decoded, watched, encoded for the client, recorded.
    fn on_data(&mut self, data: Bytes) -> Frame<Bytes> {
        if let Some(chat) = self.chat.as_mut() {
            let out = chat.feed(data, &mut self.watch.facts);
            return self.hand_on(out);
        }
        let anthropic = match self.decode.as_mut() {
            None => data,
            Some(dec) => match dec.feed(&data) {
                Ok(b) => b,
                Err(e) => {
                    let msg = format!("the provider's stream could not be read: {e}");
                    return self.fail("api_error", msg);
                }
            },
        };
        let watch = &mut self.watch;
        self.scanner.feed(&anthropic, |ev| watch.observe(&ev));
        let out = self.encode_for_client(anthropic);
        self.hand_on(out)
    }

    /// Counts and records what goes to the client; settles once the message is complete.
    fn hand_on(&mut self, out: Bytes) -> Frame<Bytes> {
        self.bytes_out += out.len() as u64;
        self.recorder.capture_response(&out);
        if self.watch.facts.complete {
            self.settle(None);
            if self.decode.is_none() && self.encode.is_none() && self.chat.is_none() {
                self.end_with_this_frame();
            }
        }
        Frame::data(out)
    }

    /// Ends the client's stream with the frame that completed the message.
    ///
    /// Nothing follows `message_stop` in a Messages stream, but the upstream's end of body
    /// reaches this task only after another turn of the client connection's task. Waiting for it
    /// cost one more `writev(2)` to the client per stream, and the client one more wake-up,
    /// just for the chunked terminator. Ending here lets hyper send the last events and the
    /// terminator together; the rest of the upstream body is read to its end in a task of its
    /// own, so that the connection still returns to the pool.
    fn end_with_this_frame(&mut self) {
        self.ended = true;
        let Some(rest) = self.upstream.take() else {
            return;
        };
        if self.after_prefix.take().is_some() {
            // The body's end was read ahead already: nothing is left to drain.
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(drain(rest, self.idle));
        }
    }

    /// Ends the stream with an error in the client's dialect, recording why.
    fn fail(&mut self, kind: &str, message: String) -> Frame<Bytes> {
        let mut frame = if self.chat.is_some() {
            // How OpenAI itself reports a failure inside a stream.
            let body = openai_error_body(openai_kind(kind), &message, None);
            [&b"data: "[..], &body, b"\n\n"].concat()
        } else {
            self.encode_for_client(error_event(kind, &message)).to_vec()
        };
        if let Some(enc) = self.encode.as_mut() {
            frame.extend_from_slice(&enc.finish());
        }
        let frame = Bytes::from(frame);
        self.bytes_out += frame.len() as u64;
        self.settle(Some((kind.to_string(), message)));
        self.ended = true;
        Frame::data(frame)
    }
}

/// Reads what is left of an upstream body and drops it, keeping nothing: an upstream that
/// went on sending after `message_stop` costs no memory. Gives up (dropping the connection
/// instead of pooling it) once `limit` has passed.
async fn drain(mut rest: ResponseBody, limit: Duration) {
    use http_body_util::BodyExt as _;
    let _ = tokio::time::timeout(limit, async {
        while let Some(Ok(_)) = rest.frame().await {}
    })
    .await;
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
        if let Some(data) = this.prefix.pop_front() {
            return Poll::Ready(Some(Ok(this.on_data(data))));
        }
        let Some(upstream) = this.upstream.as_mut() else {
            this.ended = true;
            return Poll::Ready(None);
        };
        let polled = match this.after_prefix.take() {
            Some(AfterFrames::End) => Poll::Ready(None),
            Some(AfterFrames::Failed(e)) => Poll::Ready(Some(Err(e))),
            None => Pin::new(upstream).poll_frame(cx),
        };
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                // Trailers carry nothing a client of these APIs reads; they pass as an empty
                // data frame, which hyper does not write.
                let data = frame.into_data().unwrap_or_default();
                let deadline = Instant::now() + this.idle;
                this.idle_timer.as_mut().reset(deadline);
                Poll::Ready(Some(Ok(this.on_data(data))))
            }
            Poll::Ready(Some(Err(e))) => {
                let msg = format!("the provider's stream failed: {e}");
                Poll::Ready(Some(Ok(this.fail("api_error", msg))))
            }
            Poll::Ready(None) => {
                if let Some(chat) = this.chat.as_mut() {
                    let tail = chat.finish(&mut this.watch.facts);
                    if !tail.is_empty() {
                        return Poll::Ready(Some(Ok(this.hand_on(tail))));
                    }
                }
                if let Some(dec) = this.decode.as_mut() {
                    let tail = dec.finish();
                    if !tail.is_empty() {
                        let watch = &mut this.watch;
                        this.scanner.feed(&tail, |ev| watch.observe(&ev));
                        let out = this.encode_for_client(tail);
                        this.decode = None;
                        this.bytes_out += out.len() as u64;
                        return Poll::Ready(Some(Ok(Frame::data(out))));
                    }
                }
                this.ended = true;
                if this.watch.facts.complete || this.watch.facts.error.is_some() {
                    // Complete, or already ended by the upstream's own `event: error`.
                    this.settle(None);
                    if let Some(enc) = this.encode.as_mut() {
                        let tail = enc.finish();
                        if !tail.is_empty() {
                            this.bytes_out += tail.len() as u64;
                            return Poll::Ready(Some(Ok(Frame::data(tail))));
                        }
                    }
                    return Poll::Ready(None);
                }
                let msg = if this.chat.is_some() {
                    "the provider's stream ended before [DONE]".to_string()
                } else {
                    "the provider's stream ended before message_stop".to_string()
                };
                Poll::Ready(Some(Ok(this.fail("api_error", msg))))
            }
            Poll::Pending => {
                ready!(this.idle_timer.as_mut().poll(cx));
                let msg = format!(
                    "the provider's stream was silent for {}",
                    super::forward::human(this.idle)
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
