//! The body of a simulated answer: prepared frames released on a schedule, optionally cut.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Sleep;

/// The connection a simulated answer pretended to use was cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulatedDrop;

impl std::fmt::Display for SimulatedDrop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("simulated connection drop")
    }
}

impl std::error::Error for SimulatedDrop {}

/// Frames with the pause that precedes each; after the last one the body ends, or fails with
/// [`SimulatedDrop`] when it was set to be cut.
pub struct SimBody {
    frames: VecDeque<(Duration, Bytes)>,
    cut: bool,
    timer: Option<Pin<Box<Sleep>>>,
    done: bool,
}

impl std::fmt::Debug for SimBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimBody")
            .field("frames_left", &self.frames.len())
            .field("cut", &self.cut)
            .finish()
    }
}

impl SimBody {
    /// A body releasing `frames` in order; `cut` makes it fail after the last.
    pub fn new(frames: VecDeque<(Duration, Bytes)>, cut: bool) -> Self {
        Self {
            frames,
            cut,
            timer: None,
            done: false,
        }
    }

    /// One whole body, at once.
    pub fn whole(bytes: Bytes) -> Self {
        Self::new(VecDeque::from([(Duration::ZERO, bytes)]), false)
    }
}

impl Body for SimBody {
    type Data = Bytes;
    type Error = SimulatedDrop;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, SimulatedDrop>>> {
        let this = self.get_mut();
        let Some(&(pause, _)) = this.frames.front() else {
            if this.done {
                return Poll::Ready(None);
            }
            this.done = true;
            return Poll::Ready(this.cut.then_some(Err(SimulatedDrop)));
        };
        if !pause.is_zero() {
            let timer = this
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(pause)));
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.timer = None;
        }
        match this.frames.pop_front() {
            Some((_, data)) => Poll::Ready(Some(Ok(Frame::data(data)))),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || (self.frames.is_empty() && !self.cut)
    }

    fn size_hint(&self) -> SizeHint {
        if self.cut {
            return SizeHint::default();
        }
        let n: usize = self.frames.iter().map(|(_, b)| b.len()).sum();
        SizeHint::with_exact(n as u64)
    }
}
