//! Size limits every request passes.

/// The largest request body the gateway accepts, after decoding.
pub const DEFAULT_MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Whether a body of `len` bytes fits under `max`.
pub fn body_fits(len: usize, max: usize) -> bool {
    len <= max
}
