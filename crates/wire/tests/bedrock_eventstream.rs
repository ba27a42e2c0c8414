//! Event-stream framing against an independent frame writer: exact bytes, every split point,
//! every corrupted byte.

use bytes::Bytes;
use tollgate_wire::bedrock::{
    BedrockEvent, EventStreamDecoder, EventStreamError, encode_chunk_frame, encode_exception_frame,
};

/// CRC-32 (IEEE), written out here so the test does not share code with the codec.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    crc ^ 0xFFFF_FFFF
}

/// One frame with string headers, laid out by hand from the event-stream specification.
fn frame(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    for (name, value) in headers {
        h.push(name.len() as u8);
        h.extend_from_slice(name.as_bytes());
        h.push(7);
        h.extend_from_slice(&(value.len() as u16).to_be_bytes());
        h.extend_from_slice(value.as_bytes());
    }
    let total = (16 + h.len() + payload.len()) as u32;
    let mut out = Vec::new();
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&(h.len() as u32).to_be_bytes());
    let prelude_crc = crc32(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(payload);
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

fn b64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn chunk(json: &str) -> Vec<u8> {
    frame(
        &[
            (":event-type", "chunk"),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        format!("{{\"bytes\":\"{}\"}}", b64(json.as_bytes())).as_bytes(),
    )
}

fn sample_stream() -> (Vec<u8>, Vec<BedrockEvent>) {
    let jsons = [
        r#"{"type":"message_start","message":{"id":"msg_bdrk_1","usage":{"input_tokens":3}}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"héllo ☃"}}"#,
        r#"{}"#,
    ];
    let mut bytes = Vec::new();
    let mut events = Vec::new();
    for j in jsons {
        bytes.extend_from_slice(&chunk(j));
        events.push(BedrockEvent::Chunk(Bytes::from(j.to_owned())));
    }
    bytes.extend_from_slice(&frame(
        &[
            (":exception-type", "modelStreamErrorException"),
            (":content-type", "application/json"),
            (":message-type", "exception"),
        ],
        br#"{"message":"Model stream error","originalStatusCode":529,"originalMessage":"Overloaded"}"#,
    ));
    events.push(BedrockEvent::Exception {
        kind: "modelStreamErrorException".into(),
        message: "Model stream error".into(),
    });
    (bytes, events)
}

#[test]
fn encoders_write_exactly_what_the_specification_lays_out() {
    let json = r#"{"type":"message_stop"}"#;
    assert_eq!(&encode_chunk_frame(json.as_bytes())[..], &chunk(json)[..]);
    assert_eq!(
        &encode_exception_frame("throttlingException", "Too many requests")[..],
        &frame(
            &[
                (":exception-type", "throttlingException"),
                (":content-type", "application/json"),
                (":message-type", "exception"),
            ],
            br#"{"message":"Too many requests"}"#,
        )[..]
    );
}

#[test]
fn round_trip_at_every_split_point() {
    let (bytes, expected) = sample_stream();
    for cut in 0..=bytes.len() {
        let mut d = EventStreamDecoder::new();
        let mut got = d.feed(&bytes[..cut]).unwrap();
        got.extend(d.feed(&bytes[cut..]).unwrap());
        d.finish().unwrap();
        assert_eq!(got, expected, "cut at {cut}");
    }
}

#[test]
fn round_trip_byte_by_byte_and_in_three_pieces() {
    let (bytes, expected) = sample_stream();
    let mut d = EventStreamDecoder::new();
    let mut got = Vec::new();
    for b in &bytes {
        got.extend(d.feed(std::slice::from_ref(b)).unwrap());
    }
    d.finish().unwrap();
    assert_eq!(got, expected);

    // Pairs of cuts over a shorter stream: frames split in three, or several per piece.
    let short: Vec<u8> = bytes[..bytes.len() / 2].to_vec();
    let mut d = EventStreamDecoder::new();
    let whole = d.feed(&short).unwrap();
    for a in (0..short.len()).step_by(3) {
        for b in (a..=short.len()).step_by(5) {
            let mut d = EventStreamDecoder::new();
            let mut got = d.feed(&short[..a]).unwrap();
            got.extend(d.feed(&short[a..b]).unwrap());
            got.extend(d.feed(&short[b..]).unwrap());
            assert_eq!(got, whole, "cuts {a} {b}");
        }
    }
}

#[test]
fn every_corrupted_byte_is_rejected() {
    let (bytes, expected) = sample_stream();
    for i in 0..bytes.len() {
        for mask in [0x01u8, 0x80, 0xFF] {
            let mut bad = bytes.clone();
            bad[i] ^= mask;
            let mut d = EventStreamDecoder::new();
            let outcome = d.feed(&bad).and_then(|events| d.finish().map(|()| events));
            assert!(
                outcome.is_err(),
                "flipping byte {i} with {mask:#x} went unnoticed: {outcome:?}"
            );
            // Whatever was decoded before the damage is a prefix of the real stream.
            if let Ok(events) = EventStreamDecoder::new().feed(&bad) {
                assert!(expected.starts_with(&events), "byte {i}");
            }
        }
    }
}

#[test]
fn crc_failures_are_errors_not_waits() {
    let (bytes, _) = sample_stream();
    let mut bad = bytes.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x10;
    let mut d = EventStreamDecoder::new();
    let events = d.feed(&bad).unwrap();
    assert_eq!(
        events.len(),
        3,
        "frames before the damaged one still arrive"
    );
    let err = d.feed(b"more").unwrap_err();
    assert!(
        matches!(err, EventStreamError::Frame(ref m) if m.contains("checksum")),
        "{err}"
    );

    let mut bad = bytes.clone();
    bad[9] ^= 0x10; // prelude CRC of the first frame
    let err = EventStreamDecoder::new().feed(&bad[..12]).unwrap_err();
    assert!(
        matches!(err, EventStreamError::PreludeChecksum { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("prelude checksum"));
}

#[test]
fn a_frame_without_message_type_is_an_event() {
    let f = frame(&[(":event-type", "chunk")], br#"{"bytes":"e30="}"#);
    assert_eq!(
        EventStreamDecoder::new().feed(&f).unwrap(),
        vec![BedrockEvent::Chunk(Bytes::from_static(b"{}"))]
    );
    let f = frame(
        &[(":message-type", "event"), (":event-type", "chunk")],
        b"{}",
    );
    assert_eq!(
        EventStreamDecoder::new().feed(&f).unwrap(),
        vec![BedrockEvent::Chunk(Bytes::new())]
    );
}
