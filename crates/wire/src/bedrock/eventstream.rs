//! AWS event-stream frames as InvokeModelWithResponseStream uses them: an incremental decoder
//! for upstream responses and encoders for answering Bedrock clients.
//!
//! # Format
//! A frame is `total_len: u32 BE | headers_len: u32 BE | prelude_crc: u32 BE | headers | payload |
//! message_crc: u32 BE`; both CRCs are CRC-32 (IEEE), the first over the 8 length bytes, the
//! second over everything before it. Each header is `name_len: u8 | name | type: u8 | value`;
//! Bedrock uses only string values (type 7: `len: u16 BE | UTF-8`). The frame kinds Bedrock sends:
//!
//! | `:message-type` | other headers | payload |
//! |---|---|---|
//! | `event` | `:event-type: chunk`, `:content-type: application/json` | `{"bytes":"<base64 of one Anthropic stream event JSON>"}` (unknown members such as padding are ignored) |
//! | `exception` | `:exception-type: throttlingException` (a member of the `ResponseStream` union), `:content-type: application/json` | `{"message":"…"}` (`modelStreamErrorException` adds `originalStatusCode`, `originalMessage`) |
//! | `error` | `:error-code`, `:error-message` | empty |
//!
//! Frame parsing and CRC checks are delegated to `aws-smithy-eventstream`, the AWS SDK's own
//! codec; this module buffers partial frames, bounds frame sizes and interprets the headers.

use aws_smithy_eventstream::frame::{read_message_from, write_message_to};
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use bytes::Bytes;
use serde::Deserialize;
use std::fmt;

/// Largest header block accepted, as in botocore.
pub const MAX_HEADERS_BYTES: u32 = 128 * 1024;
/// Largest payload accepted, as in botocore. Bedrock's own chunk limit (1 MB of event JSON,
/// about 1.4 MB once base64-encoded) is well below it.
pub const MAX_PAYLOAD_BYTES: u32 = 24 * 1024 * 1024;

const PRELUDE_BYTES: usize = 12;
/// Prelude plus trailing message CRC: the smallest possible frame.
const FRAME_OVERHEAD: u32 = 16;

/// One decoded frame of a Bedrock response stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BedrockEvent {
    /// A `chunk` event: the Anthropic stream event JSON, base64-decoded. Empty when the frame
    /// carried no `bytes`.
    Chunk(Bytes),
    /// An `exception` frame (or a protocol `error` frame): `:exception-type` (`:error-code`) and
    /// the message from the payload (`:error-message`).
    Exception { kind: String, message: String },
    /// Any other event, kept raw.
    Other { event_type: String, payload: Bytes },
}

/// Why a byte stream is not a valid Bedrock event stream. Every variant is fatal: the stream
/// cannot be resynchronised after a damaged frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventStreamError {
    /// The prelude CRC does not match: the length fields cannot be trusted.
    PreludeChecksum { expected: u32, actual: u32 },
    /// The prelude announces lengths that are impossible or over the limits.
    BadLength { total: u32, headers: u32 },
    /// The frame itself is damaged (message CRC, header encoding), as reported by the codec.
    Frame(String),
    /// A `chunk` payload is not `{"bytes":"<base64>"}`.
    Chunk(String),
    /// The stream ended inside a frame.
    Truncated { buffered: usize },
}

impl fmt::Display for EventStreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PreludeChecksum { expected, actual } => write!(
                f,
                "event-stream prelude checksum 0x{actual:08X} does not match 0x{expected:08X}"
            ),
            Self::BadLength { total, headers } => write!(
                f,
                "event-stream frame lengths are invalid (total {total}, headers {headers})"
            ),
            Self::Frame(m) => write!(f, "event-stream frame is invalid: {m}"),
            Self::Chunk(m) => write!(f, "event-stream chunk payload is invalid: {m}"),
            Self::Truncated { buffered } => {
                write!(
                    f,
                    "event stream ended inside a frame ({buffered} bytes buffered)"
                )
            }
        }
    }
}

impl std::error::Error for EventStreamError {}

/// Splits an event-stream byte stream into [`BedrockEvent`]s, buffering only an unfinished frame.
///
/// The proxy hands every chunk it receives to [`feed`](Self::feed) as it arrives; a frame split
/// across chunks is a state, not an error. After the first error the decoder stays failed and
/// reports that error again; events completed before it in the same chunk are still returned
/// first, so nothing the upstream finished sending is lost.
#[derive(Debug, Default)]
pub struct EventStreamDecoder {
    buf: Vec<u8>,
    failed: Option<EventStreamError>,
}

impl EventStreamDecoder {
    /// A decoder with an empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one chunk and returns the events it completes.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<BedrockEvent>, EventStreamError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let mut events = Vec::new();
        let outcome = if self.buf.is_empty() {
            // Common case: whole frames per chunk, decoded without copying into the buffer.
            decode_frames(chunk, &mut events).map(|used| self.buf.extend_from_slice(&chunk[used..]))
        } else {
            self.buf.extend_from_slice(chunk);
            decode_frames(&self.buf, &mut events).map(|used| {
                self.buf.drain(..used);
            })
        };
        match outcome {
            Ok(()) => Ok(events),
            Err(e) => {
                self.failed = Some(e.clone());
                self.buf = Vec::new();
                if events.is_empty() {
                    Err(e)
                } else {
                    Ok(events)
                }
            }
        }
    }

    /// Call at the end of the stream: an error if it ended inside a frame or had failed.
    pub fn finish(&self) -> Result<(), EventStreamError> {
        match &self.failed {
            Some(e) => Err(e.clone()),
            None if self.buf.is_empty() => Ok(()),
            None => Err(EventStreamError::Truncated {
                buffered: self.buf.len(),
            }),
        }
    }

    /// Bytes held for an unfinished frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

/// Decodes every complete frame at the start of `buf`; returns how many bytes they used.
fn decode_frames(buf: &[u8], events: &mut Vec<BedrockEvent>) -> Result<usize, EventStreamError> {
    let mut pos = 0;
    while let Some(rest) = buf.get(pos..)
        && let Some(total) = frame_len(rest)?
    {
        let Some(frame) = rest.get(..total) else {
            break;
        };
        let message =
            read_message_from(frame).map_err(|e| EventStreamError::Frame(e.to_string()))?;
        events.push(interpret(&message)?);
        pos += total;
    }
    Ok(pos)
}

/// The length of the frame starting `buf`, once its prelude is complete and checked.
fn frame_len(buf: &[u8]) -> Result<Option<usize>, EventStreamError> {
    let Some(prelude) = buf.get(..PRELUDE_BYTES) else {
        return Ok(None);
    };
    let word =
        |i: usize| u32::from_be_bytes([prelude[i], prelude[i + 1], prelude[i + 2], prelude[i + 3]]);
    let (total, headers, crc) = (word(0), word(4), word(8));
    // Checked before trusting the lengths, so a damaged prelude fails at once instead of
    // making the decoder wait for megabytes that will never come.
    let expected = crc32(&prelude[..8]);
    if expected != crc {
        return Err(EventStreamError::PreludeChecksum {
            expected,
            actual: crc,
        });
    }
    let fits = total >= FRAME_OVERHEAD
        && headers <= MAX_HEADERS_BYTES
        && headers <= total - FRAME_OVERHEAD
        && total - FRAME_OVERHEAD - headers <= MAX_PAYLOAD_BYTES;
    if !fits {
        return Err(EventStreamError::BadLength { total, headers });
    }
    Ok(usize::try_from(total).ok())
}

#[derive(Deserialize)]
struct PayloadPart {
    bytes: Option<String>,
}

#[derive(Deserialize)]
struct ExceptionBody {
    message: Option<String>,
    #[serde(rename = "Message")]
    message_upper: Option<String>,
}

/// Standard base64, tolerant of missing padding.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn interpret(message: &Message) -> Result<BedrockEvent, EventStreamError> {
    let header = |name: &str| {
        message
            .headers()
            .iter()
            .find(|h| h.name().as_str() == name)
            .and_then(|h| h.value().as_string().ok())
            .map(|s| s.as_str().to_owned())
    };
    let payload = message.payload();
    // The spec requires `:message-type`; botocore treats a frame without it as an event.
    match header(":message-type").as_deref().unwrap_or("event") {
        "event" => {
            let event_type = header(":event-type").unwrap_or_default();
            if event_type != "chunk" {
                return Ok(BedrockEvent::Other {
                    event_type,
                    payload: payload.clone(),
                });
            }
            let part: PayloadPart = serde_json::from_slice(payload)
                .map_err(|e| EventStreamError::Chunk(e.to_string()))?;
            let json = match part.bytes {
                Some(b64) => BASE64
                    .decode(b64.as_bytes())
                    .map_err(|e| EventStreamError::Chunk(format!("bytes: {e}")))?,
                None => Vec::new(),
            };
            Ok(BedrockEvent::Chunk(Bytes::from(json)))
        }
        "exception" => {
            let kind = header(":exception-type").unwrap_or_default();
            let message = match serde_json::from_slice::<ExceptionBody>(payload) {
                Ok(ExceptionBody {
                    message: Some(m), ..
                })
                | Ok(ExceptionBody {
                    message_upper: Some(m),
                    ..
                }) => m,
                _ => String::from_utf8_lossy(payload).into_owned(),
            };
            Ok(BedrockEvent::Exception { kind, message })
        }
        "error" => Ok(BedrockEvent::Exception {
            kind: header(":error-code").unwrap_or_default(),
            message: header(":error-message").unwrap_or_default(),
        }),
        other => Ok(BedrockEvent::Other {
            event_type: header(":event-type").unwrap_or_else(|| other.to_owned()),
            payload: payload.clone(),
        }),
    }
}

/// A `chunk` event frame carrying one Anthropic stream event JSON, exactly as Bedrock frames it:
/// headers `:event-type: chunk`, `:content-type: application/json`, `:message-type: event` (in
/// that order) and payload `{"bytes":"<base64>"}`.
pub fn encode_chunk_frame(anthropic_event_json: &[u8]) -> Bytes {
    let b64 = base64::engine::general_purpose::STANDARD.encode(anthropic_event_json);
    let mut payload = Vec::with_capacity(b64.len() + 12);
    payload.extend_from_slice(b"{\"bytes\":\"");
    payload.extend_from_slice(b64.as_bytes());
    payload.extend_from_slice(b"\"}");
    encode(
        vec![
            string_header(":event-type", "chunk"),
            string_header(":content-type", "application/json"),
            string_header(":message-type", "event"),
        ],
        payload,
    )
}

/// An `exception` frame: headers `:exception-type: <kind>`, `:content-type: application/json`,
/// `:message-type: exception` and payload `{"message":"…"}`. `kind` should be a member of the
/// `ResponseStream` union (see [`stream_exception_name`](super::stream_exception_name)) or SDKs
/// cannot name the error.
pub fn encode_exception_frame(kind: &str, message: &str) -> Bytes {
    let payload = format!("{{\"message\":{}}}", super::envelope::json_string(message));
    // A header value holds at most 32767 bytes; exception names are short, but the frame must
    // stay encodable whatever the caller passes.
    let kind = truncate_utf8(kind, 255);
    encode(
        vec![
            string_header(":exception-type", kind),
            string_header(":content-type", "application/json"),
            string_header(":message-type", "exception"),
        ],
        payload.into_bytes(),
    )
}

fn string_header(name: &'static str, value: &str) -> Header {
    Header::new(name, HeaderValue::String(value.to_owned().into()))
}

fn encode(headers: Vec<Header>, payload: Vec<u8>) -> Bytes {
    let message = Message::new_from_parts(headers, payload);
    let mut out = Vec::with_capacity(message.payload().len() + 96);
    // Fails only for a payload over 4 GiB, which no caller can build from one SSE event; an
    // empty result then ends the client's stream without a frame rather than panicking.
    match write_message_to(&message, &mut out) {
        Ok(()) => Bytes::from(out),
        Err(_) => Bytes::new(),
    }
}

fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// CRC-32 (IEEE 802.3, reflected), bitwise: only the 8-byte prelude goes through it, the codec
/// checks whole frames with its own table-driven implementation.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8]) -> Vec<BedrockEvent> {
        let mut d = EventStreamDecoder::new();
        let events = d.feed(bytes).unwrap();
        d.finish().unwrap();
        events
    }

    #[test]
    fn crc32_matches_the_reference_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn chunk_frame_has_bedrock_layout_and_decodes() {
        let frame = encode_chunk_frame(br#"{"type":"ping"}"#);
        // Header block as Bedrock sends it (observed bytes start with these names in this order).
        let headers = b"\x0b:event-type\x07\x00\x05chunk\x0d:content-type\x07\x00\x10application/json\x0d:message-type\x07\x00\x05event";
        assert_eq!(&frame[12..12 + headers.len()], headers);
        assert_eq!(
            u32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]) as usize,
            headers.len()
        );
        let payload = &frame[12 + headers.len()..frame.len() - 4];
        assert_eq!(payload, br#"{"bytes":"eyJ0eXBlIjoicGluZyJ9"}"#);
        assert_eq!(
            decode_all(&frame),
            vec![BedrockEvent::Chunk(Bytes::from_static(
                br#"{"type":"ping"}"#
            ))]
        );
    }

    #[test]
    fn exception_and_error_frames_decode() {
        let frame = encode_exception_frame("throttlingException", "Too many \"requests\"");
        assert_eq!(
            decode_all(&frame),
            vec![BedrockEvent::Exception {
                kind: "throttlingException".into(),
                message: "Too many \"requests\"".into()
            }]
        );
        let mut out = Vec::new();
        let m = Message::new_from_parts(
            vec![
                string_header(":message-type", "error"),
                string_header(":error-code", "InternalFailure"),
                string_header(":error-message", "boom"),
            ],
            Vec::new(),
        );
        write_message_to(&m, &mut out).unwrap();
        assert_eq!(
            decode_all(&out),
            vec![BedrockEvent::Exception {
                kind: "InternalFailure".into(),
                message: "boom".into()
            }]
        );
    }

    #[test]
    fn unknown_events_and_padding_members_pass() {
        let mut out = Vec::new();
        let m = Message::new_from_parts(
            vec![
                string_header(":message-type", "event"),
                string_header(":event-type", "initial-response"),
            ],
            b"{}".to_vec(),
        );
        write_message_to(&m, &mut out).unwrap();
        let m = Message::new_from_parts(
            vec![
                string_header(":message-type", "event"),
                string_header(":event-type", "chunk"),
            ],
            br#"{"bytes":"eyJ0eXBlIjoicGluZyJ9","p":"abcdefghij"}"#.to_vec(),
        );
        write_message_to(&m, &mut out).unwrap();
        assert_eq!(
            decode_all(&out),
            vec![
                BedrockEvent::Other {
                    event_type: "initial-response".into(),
                    payload: Bytes::from_static(b"{}")
                },
                BedrockEvent::Chunk(Bytes::from_static(br#"{"type":"ping"}"#)),
            ]
        );
    }

    #[test]
    fn bad_chunk_payloads_are_errors() {
        for payload in [&b"not json"[..], br#"{"bytes":"!!!"}"#, br#"{"bytes":3}"#] {
            let m = Message::new_from_parts(
                vec![
                    string_header(":message-type", "event"),
                    string_header(":event-type", "chunk"),
                ],
                payload.to_vec(),
            );
            let mut out = Vec::new();
            write_message_to(&m, &mut out).unwrap();
            let err = EventStreamDecoder::new().feed(&out).unwrap_err();
            assert!(matches!(err, EventStreamError::Chunk(_)), "{err}");
        }
    }

    #[test]
    fn damaged_preludes_fail_fast() {
        let mut frame = encode_chunk_frame(b"{}").to_vec();
        frame[2] ^= 0x40;
        let err = EventStreamDecoder::new().feed(&frame[..12]).unwrap_err();
        assert!(
            matches!(err, EventStreamError::PreludeChecksum { .. }),
            "{err}"
        );

        // A valid prelude announcing a frame beyond the limits.
        let mut prelude = Vec::new();
        prelude.extend_from_slice(&(MAX_PAYLOAD_BYTES + 1024).to_be_bytes());
        prelude.extend_from_slice(&0u32.to_be_bytes());
        let crc = crc32(&prelude);
        prelude.extend_from_slice(&crc.to_be_bytes());
        let err = EventStreamDecoder::new().feed(&prelude).unwrap_err();
        assert!(matches!(err, EventStreamError::BadLength { .. }), "{err}");
    }

    #[test]
    fn decoder_stays_failed_but_returns_earlier_events_first() {
        let good = encode_chunk_frame(br#"{"type":"ping"}"#);
        let mut bad = encode_chunk_frame(br#"{"type":"ping"}"#).to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let mut stream = good.to_vec();
        stream.extend_from_slice(&bad);
        let mut d = EventStreamDecoder::new();
        assert_eq!(d.feed(&stream).unwrap().len(), 1);
        assert!(matches!(d.feed(&good), Err(EventStreamError::Frame(_))));
        assert!(d.finish().is_err());
    }

    #[test]
    fn truncated_stream_is_reported_at_finish() {
        let frame = encode_chunk_frame(br#"{"type":"ping"}"#);
        let mut d = EventStreamDecoder::new();
        assert!(d.feed(&frame[..frame.len() - 1]).unwrap().is_empty());
        assert_eq!(d.buffered(), frame.len() - 1);
        assert_eq!(
            d.finish(),
            Err(EventStreamError::Truncated {
                buffered: frame.len() - 1
            })
        );
        assert_eq!(d.feed(&frame[frame.len() - 1..]).unwrap().len(), 1);
        assert!(d.finish().is_ok());
    }

    #[test]
    fn long_exception_kinds_are_cut_to_stay_encodable() {
        let kind = "é".repeat(40_000);
        let frame = encode_exception_frame(&kind, "m");
        match &decode_all(&frame)[..] {
            [BedrockEvent::Exception { kind: k, .. }] => assert_eq!(k.len(), 254),
            other => panic!("{other:?}"),
        }
    }
}
