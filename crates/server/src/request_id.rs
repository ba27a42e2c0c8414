//! Request ids: UUIDv7 (time-ordered, so the journal sorts by arrival) built without a system
//! call per request.

use std::cell::Cell;

thread_local! {
    /// SplitMix64 state, seeded once per thread from the OS. Ids need uniqueness, not secrecy.
    static STATE: Cell<u64> = Cell::new(u64::from_le_bytes(
        *uuid::Uuid::new_v4().as_bytes().first_chunk::<8>().unwrap_or(&[7; 8]),
    ));
}

fn next_u64() -> u64 {
    STATE.with(|s| {
        let mut z = s.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        s.set(z);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

/// A new request id, `req_` followed by 32 hex digits of a UUIDv7.
pub fn new_request_id(unix_ms: u64) -> String {
    let mut random = [0u8; 10];
    random[..8].copy_from_slice(&next_u64().to_le_bytes());
    random[8..].copy_from_slice(&next_u64().to_le_bytes()[..2]);
    let id = uuid::Builder::from_unix_timestamp_millis(unix_ms, &random).into_uuid();
    format!("req_{}", id.simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_time_ordered() {
        let a = new_request_id(1_000);
        let b = new_request_id(1_000);
        let c = new_request_id(2_000);
        assert_ne!(a, b);
        assert!(a.starts_with("req_") && a.len() == 36);
        assert!(a[4..16] < c[4..16]);
    }
}
