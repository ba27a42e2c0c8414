//! Properties over arbitrary input: nothing in the Bedrock codecs panics, valid streams survive
//! any chunking, any single damaged byte is caught, envelopes keep every other member.

use proptest::prelude::*;
use tollgate_wire::bedrock::{
    BedrockEvent, BedrockStreamWatch, EventStreamDecoder, SseToEventStream,
    bedrock_body_to_messages, chunk_to_sse, encode_chunk_frame, encode_exception_frame,
    messages_to_bedrock_body, parse_bedrock_path, read_error_response, read_invocation_metrics,
    strip_invocation_metrics,
};

/// Splits `bytes` at the given fractions of its length.
fn pieces<'a>(bytes: &'a [u8], cuts: &[f64]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts
        .iter()
        .map(|f| ((bytes.len() as f64) * f) as usize)
        .map(|p| p.min(bytes.len()))
        .collect();
    points.sort_unstable();
    let mut out = Vec::new();
    let mut start = 0;
    for p in points {
        out.push(&bytes[start..p]);
        start = p;
    }
    out.push(&bytes[start..]);
    out
}

fn event_strategy() -> impl Strategy<Value = (bool, String, String)> {
    (any::<bool>(), "[a-zA-Z]{1,30}", any::<String>())
}

fn encode(events: &[(bool, String, String)]) -> (Vec<u8>, Vec<BedrockEvent>) {
    let mut wire = Vec::new();
    let mut expected = Vec::new();
    for (is_chunk, kind, text) in events {
        if *is_chunk {
            let json = serde_json::json!({"type": kind, "text": text}).to_string();
            wire.extend_from_slice(&encode_chunk_frame(json.as_bytes()));
            expected.push(BedrockEvent::Chunk(json.into()));
        } else {
            wire.extend_from_slice(&encode_exception_frame(kind, text));
            expected.push(BedrockEvent::Exception {
                kind: kind.clone(),
                message: text.clone(),
            });
        }
    }
    (wire, expected)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(
        bytes in proptest::collection::vec(any::<u8>(), 0..2048),
        cuts in proptest::collection::vec(0.0f64..1.0, 0..6),
    ) {
        let mut d = EventStreamDecoder::new();
        let mut watch = BedrockStreamWatch::new();
        for piece in pieces(&bytes, &cuts) {
            if let Ok(events) = d.feed(piece) {
                for e in &events {
                    watch.observe(e);
                    if let BedrockEvent::Chunk(json) = e {
                        let _ = chunk_to_sse(json);
                    }
                }
            }
        }
        let _ = d.finish();
        let _ = watch.facts();
    }

    #[test]
    fn framed_garbage_never_panics(
        headers in proptest::collection::vec(any::<u8>(), 0..64),
        payload in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        // Valid lengths and CRCs around arbitrary header and payload bytes reach deeper than
        // random bytes, which almost always fail the prelude CRC.
        let total = (16 + headers.len() + payload.len()) as u32;
        let mut f = Vec::new();
        f.extend_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&(headers.len() as u32).to_be_bytes());
        let crc = crc32(&f);
        f.extend_from_slice(&crc.to_be_bytes());
        f.extend_from_slice(&headers);
        f.extend_from_slice(&payload);
        let crc = crc32(&f);
        f.extend_from_slice(&crc.to_be_bytes());
        let mut d = EventStreamDecoder::new();
        let _ = d.feed(&f);
        let _ = d.finish();
    }

    #[test]
    fn valid_streams_survive_any_chunking(
        events in proptest::collection::vec(event_strategy(), 0..8),
        cuts in proptest::collection::vec(0.0f64..1.0, 0..8),
    ) {
        let (wire, expected) = encode(&events);
        let mut d = EventStreamDecoder::new();
        let mut got = Vec::new();
        for piece in pieces(&wire, &cuts) {
            got.extend(d.feed(piece).unwrap());
        }
        prop_assert!(d.finish().is_ok());
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn any_damaged_byte_is_caught(
        events in proptest::collection::vec(event_strategy(), 1..5),
        at in 0.0f64..1.0,
        mask in 1u8..=255,
    ) {
        let (mut wire, _) = encode(&events);
        let i = ((wire.len() as f64) * at) as usize % wire.len();
        wire[i] ^= mask;
        let mut d = EventStreamDecoder::new();
        let outcome = d.feed(&wire).and_then(|_| d.finish());
        prop_assert!(outcome.is_err());
    }

    #[test]
    fn sse_reframing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let mut conv = SseToEventStream::new();
        let frames = conv.feed(&bytes);
        // Whatever it writes is a well-formed event stream.
        let mut d = EventStreamDecoder::new();
        prop_assert!(d.feed(&frames).is_ok());
        prop_assert!(d.finish().is_ok());
    }

    #[test]
    fn envelopes_never_panic_on_arbitrary_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        text in any::<String>(),
        status in any::<u16>(),
    ) {
        let _ = messages_to_bedrock_body(&bytes, std::slice::from_ref(&text));
        let _ = bedrock_body_to_messages(&bytes, &text, true);
        let _ = chunk_to_sse(&bytes);
        let _ = read_invocation_metrics(&bytes);
        let _ = strip_invocation_metrics(&bytes);
        let _ = read_error_response(status, Some(&text), &bytes);
        let _ = parse_bedrock_path(&text);
        let _ = parse_bedrock_path(&format!("/model/{text}/invoke"));
    }

    #[test]
    fn envelopes_keep_every_other_member(
        members in proptest::collection::btree_map("[a-z_]{1,12}", json_leaf(), 0..12),
        model in "[a-z0-9.:@-]{1,40}",
        stream in any::<bool>(),
        betas in proptest::collection::vec("[a-z0-9-]{1,20}", 0..4),
    ) {
        let mut body = serde_json::Map::new();
        body.insert("model".into(), model.clone().into());
        body.insert("stream".into(), stream.into());
        for (k, v) in &members {
            if !matches!(k.as_str(), "model" | "stream" | "anthropic_version" | "anthropic_beta") {
                body.insert(k.clone(), v.clone());
            }
        }
        let raw = serde_json::Value::Object(body.clone()).to_string();
        let req = messages_to_bedrock_body(raw.as_bytes(), &betas).unwrap();
        prop_assert_eq!(&req.model, &model);
        prop_assert_eq!(req.stream, stream);
        let (back, got_betas) = bedrock_body_to_messages(&req.body, &req.model, req.stream).unwrap();
        let mut unique = Vec::new();
        for b in &betas {
            if !unique.contains(b) {
                unique.push(b.clone());
            }
        }
        prop_assert_eq!(got_betas, unique);
        let back: serde_json::Value = serde_json::from_slice(&back).unwrap();
        prop_assert_eq!(back, serde_json::Value::Object(body));
    }
}

fn json_leaf() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<String>().prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map("[a-z]{1,4}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

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
