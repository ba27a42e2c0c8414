//! The response body type shared by the strict and the fast paths.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

/// One concrete body type for every response, so the service needs no boxing.
pub(crate) enum ResponseBody {
    /// A complete body sent with a `content-length`.
    Full(Option<Bytes>),
    /// A few pre-built chunks sent with chunked encoding.
    Frames(VecDeque<Bytes>),
    /// Chunks produced by a task; an `Err` aborts the connection mid-body.
    Channel {
        rx: mpsc::Receiver<io::Result<Bytes>>,
        /// Set after each chunk so the next poll returns `Pending` once: hyper flushes its write
        /// buffer whenever the body is pending, which puts every SSE event on the wire by itself.
        just_sent: bool,
    },
}

impl ResponseBody {
    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        ResponseBody::Full(Some(bytes.into()))
    }

    pub(crate) fn channel(rx: mpsc::Receiver<io::Result<Bytes>>) -> Self {
        ResponseBody::Channel {
            rx,
            just_sent: false,
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            ResponseBody::Full(data) => Poll::Ready(data.take().map(|b| Ok(Frame::data(b)))),
            ResponseBody::Frames(frames) => {
                Poll::Ready(frames.pop_front().map(|b| Ok(Frame::data(b))))
            }
            ResponseBody::Channel { rx, just_sent } => {
                if *just_sent {
                    *just_sent = false;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                match rx.poll_recv(cx) {
                    Poll::Ready(Some(Ok(chunk))) => {
                        *just_sent = true;
                        Poll::Ready(Some(Ok(Frame::data(chunk))))
                    }
                    Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
                    Poll::Ready(None) => Poll::Ready(None),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Full(data) => data.is_none(),
            ResponseBody::Frames(frames) => frames.is_empty(),
            ResponseBody::Channel { .. } => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Full(data) => {
                SizeHint::with_exact(data.as_ref().map_or(0, |b| b.len() as u64))
            }
            _ => SizeHint::default(),
        }
    }
}
