//! The SSE scanner on arbitrary bytes: never panics, and finds the same events however the
//! stream is cut into chunks.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_wire::sse::SseScanner;

fn events(chunks: &[&[u8]]) -> Vec<(String, Vec<u8>)> {
    let mut scanner = SseScanner::new();
    let mut out = Vec::new();
    for chunk in chunks {
        scanner.feed(chunk, |e| out.push((e.name.to_owned(), e.data.to_vec())));
    }
    out
}

fuzz_target!(|input: &[u8]| {
    let Some((&seed, data)) = input.split_first() else {
        return;
    };
    let cut = usize::from(seed) * data.len() / 255;
    let whole = events(&[data]);
    let (a, b) = data.split_at(cut);
    assert_eq!(events(&[a, b]), whole, "cut at {cut}");
    let bytewise: Vec<&[u8]> = data.chunks(1).collect();
    assert_eq!(events(&bytewise), whole, "byte by byte");
});
