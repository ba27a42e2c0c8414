//! Token usage as reported by the upstream, in Anthropic's terms (the richest of the dialects).

use serde::{Deserialize, Serialize};

/// Token counts of one response. Cache writes are split by TTL because they are priced apart;
/// `cache_creation_input_tokens` is their total as the API reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
    /// Part of `cache_creation_input_tokens` written with the 5-minute TTL.
    pub cache_creation_5m_input_tokens: u64,
    /// Part of `cache_creation_input_tokens` written with the 1-hour TTL.
    pub cache_creation_1h_input_tokens: u64,
}

impl Usage {
    /// All input-side tokens: uncached input plus cache writes and reads. Long-context pricing
    /// tiers are selected on this total.
    pub fn total_input_tokens(&self) -> u64 {
        self.input_tokens
            .saturating_add(self.cache_creation_input_tokens)
            .saturating_add(self.cache_read_input_tokens)
    }

    /// Cache-write tokens billed at the 5-minute rate: the TTL split when the upstream gives one,
    /// otherwise every write (the API default TTL is 5 minutes).
    pub fn cache_write_5m(&self) -> u64 {
        let split = self
            .cache_creation_5m_input_tokens
            .saturating_add(self.cache_creation_1h_input_tokens);
        if split == 0 {
            self.cache_creation_input_tokens
        } else {
            self.cache_creation_5m_input_tokens
        }
    }

    /// Cache-write tokens billed at the 1-hour rate.
    pub fn cache_write_1h(&self) -> u64 {
        self.cache_creation_1h_input_tokens
    }
}
