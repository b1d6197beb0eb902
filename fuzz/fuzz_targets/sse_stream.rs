//! The SDK's config stream parser (`tailor::refresh::SseParser`) on arbitrary bytes: it never
//! panics, never yields an event larger than its limit, and gives the same events and the same
//! verdict however the bytes are split into chunks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tailor::refresh::SseParser;

/// Feeds `stream` in chunks of the given sizes (cycled); the config events and whether it failed.
fn run(stream: &[u8], max: usize, sizes: &[usize]) -> (Vec<Vec<u8>>, bool) {
    let mut parser = SseParser::new(max);
    let mut events = Vec::new();
    let mut rest = stream;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].clamp(1, rest.len());
        i += 1;
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        if parser
            .feed(chunk, |data| events.push(data.to_vec()))
            .is_err()
        {
            return (events, true);
        }
    }
    (events, false)
}

fuzz_target!(|data: &[u8]| {
    // Header: 2 bytes of limit (1..=65536), 4 bytes of chunk sizes; the rest is the stream.
    if data.len() < 6 {
        return;
    }
    let max = usize::from(u16::from_le_bytes([data[0], data[1]])) + 1;
    let sizes: Vec<usize> = data[2..6].iter().map(|&b| usize::from(b) + 1).collect();
    let stream = &data[6..];
    let (whole, whole_failed) = run(stream, max, &[stream.len().max(1)]);
    for event in &whole {
        assert!(
            !event.is_empty() && event.len() <= max,
            "event of {} bytes",
            event.len()
        );
    }
    let (chunked, chunked_failed) = run(stream, max, &sizes);
    assert_eq!(whole, chunked, "chunking changed the events");
    assert_eq!(whole_failed, chunked_failed, "chunking changed the verdict");
    let (bytewise, bytewise_failed) = run(stream, max, &[1]);
    assert_eq!(whole, bytewise);
    assert_eq!(whole_failed, bytewise_failed);
});
