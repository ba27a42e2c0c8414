//! The Messages stream watch on arbitrary SSE bytes: never panics, and learns the same facts
//! however the stream is cut.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_wire::anthropic::{ResponseFacts, StreamWatch, read_response};
use tollgate_wire::sse::SseScanner;

fn watch(chunks: &[&[u8]]) -> ResponseFacts {
    let mut scanner = SseScanner::new();
    let mut watch = StreamWatch::default();
    for chunk in chunks {
        scanner.feed(chunk, |e| watch.observe(&e));
    }
    watch.facts
}

fuzz_target!(|input: &[u8]| {
    let Some((&seed, data)) = input.split_first() else {
        return;
    };
    let cut = usize::from(seed) * data.len() / 255;
    let (a, b) = data.split_at(cut);
    assert_eq!(watch(&[a, b]), watch(&[data]), "cut at {cut}");
    let _ = read_response(data);
});
