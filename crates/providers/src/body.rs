//! The body of an upstream answer: bytes from the network, or bytes the simulator makes up.
//!
//! An enum rather than a boxed body keeps the network path free of an allocation and a virtual
//! call per frame; errors, which are rare, are boxed.

use crate::simulator::SimBody;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Why an upstream body ended before its end.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// The response body of any upstream.
#[derive(Debug)]
pub enum ResponseBody {
    /// A response read from the network.
    Http(Incoming),
    /// A response made by a `simulator` provider.
    Simulated(SimBody),
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            ResponseBody::Http(b) => Pin::new(b)
                .poll_frame(cx)
                .map(|f| f.map(|r| r.map_err(|e| Box::new(e) as BodyError))),
            ResponseBody::Simulated(b) => Pin::new(b)
                .poll_frame(cx)
                .map(|f| f.map(|r| r.map_err(|e| Box::new(e) as BodyError))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Http(b) => b.is_end_stream(),
            ResponseBody::Simulated(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Http(b) => b.size_hint(),
            ResponseBody::Simulated(b) => b.size_hint(),
        }
    }
}
