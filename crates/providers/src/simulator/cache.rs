//! A simulated prompt cache, so that where a session's turns land shows in its usage.
//!
//! Real prompt caches match content; a conversation's next turn repeats the previous turn's
//! prompt as its prefix. The simulator models exactly that case without hashing prompts: per
//! (model, session, agent) it remembers how many tokens the last request made cacheable, and
//! the next request on the same simulator reads that many tokens back (up to its own cacheable
//! prefix). A session served by another simulator provider finds nothing — which is what session
//! affinity is there to avoid.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Prompt bytes per simulated token (the usual rule of thumb for English and code).
const BYTES_PER_TOKEN: u64 = 4;

/// The size of a prompt and of its cacheable prefix, in bytes of JSON.
///
/// A prompt is read in the order the API caches it — `tools`, then `system`, then `messages` —
/// and its cacheable prefix ends with the last block that carries `cache_control`, as a real
/// cache breakpoint does. Sizes are those of each part's JSON, whatever the key order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PromptShape {
    pub bytes: u64,
    pub cacheable_bytes: u64,
}

impl PromptShape {
    /// Reads a Messages body; an unreadable one counts whole and uncached.
    pub fn of(body: &[u8]) -> Self {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
            return Self::uncached(body.len());
        };
        let mut shape = Self::default();
        let mut add = |part: &serde_json::Value| {
            shape.bytes += part.to_string().len() as u64;
            if part.get("cache_control").is_some() {
                shape.cacheable_bytes = shape.bytes;
            }
        };
        let blocks = |v: Option<&serde_json::Value>| -> Vec<serde_json::Value> {
            match v {
                Some(serde_json::Value::Array(a)) => a.clone(),
                Some(other @ serde_json::Value::String(_)) => vec![other.clone()],
                _ => Vec::new(),
            }
        };
        for t in blocks(v.get("tools")) {
            add(&t);
        }
        for b in blocks(v.get("system")) {
            add(&b);
        }
        for m in blocks(v.get("messages")) {
            for b in blocks(m.get("content")) {
                add(&b);
            }
        }
        shape
    }

    /// A prompt of `len` bytes counted whole and uncached.
    pub fn uncached(len: usize) -> Self {
        Self {
            bytes: len as u64,
            cacheable_bytes: 0,
        }
    }

    /// Input tokens of the prompt (at least one).
    pub fn tokens(&self) -> u64 {
        self.bytes.div_ceil(BYTES_PER_TOKEN).max(1)
    }

    /// Tokens up to and including the last cache breakpoint.
    pub fn cacheable_tokens(&self) -> u64 {
        self.cacheable_bytes.div_ceil(BYTES_PER_TOKEN)
    }
}

/// Entries kept at most; past this, expired entries are swept and, if that is not enough, the
/// cache starts over (a test tool must not grow without bound).
const MAX_ENTRIES: usize = 100_000;

/// How the input of one request splits between fresh, written and read tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheUse {
    /// Tokens after the last breakpoint (never cached).
    pub input_tokens: u64,
    /// Cacheable tokens not found in the cache, written now.
    pub cache_creation_input_tokens: u64,
    /// Tokens read from the cache.
    pub cache_read_input_tokens: u64,
}

#[derive(Debug, Default)]
pub(super) struct PromptCache {
    entries: Mutex<HashMap<String, (u64, Instant)>>,
}

impl PromptCache {
    /// Splits a prompt of `prompt_tokens` whose first `cacheable_tokens` end at a cache
    /// breakpoint. Without a key (no session id) nothing is cached.
    pub fn split(
        &self,
        key: Option<String>,
        prompt_tokens: u64,
        cacheable_tokens: u64,
        ttl: Duration,
    ) -> CacheUse {
        let cacheable = cacheable_tokens.min(prompt_tokens);
        let Some(key) = key.filter(|_| cacheable > 0) else {
            return CacheUse {
                input_tokens: prompt_tokens,
                ..Default::default()
            };
        };
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let read = match entries.get(&key) {
            Some(&(tokens, expires)) if expires > now && tokens <= cacheable => tokens,
            _ => 0,
        };
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&key) {
            entries.retain(|_, (_, expires)| *expires > now);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        // A hit refreshes the entry's lifetime, as a real cache read does.
        entries.insert(key, (cacheable, now + ttl));
        CacheUse {
            input_tokens: prompt_tokens - cacheable,
            cache_creation_input_tokens: cacheable - read,
            cache_read_input_tokens: read,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cacheable_prefix_ends_with_the_last_breakpoint_whatever_the_key_order() {
        let body = br#"{"messages":[{"role":"user","content":[{"cache_control":{"type":"ephemeral"},"text":"abcdefgh","type":"text"}]},{"role":"user","content":"tail of the prompt"}],"model":"m","system":[{"cache_control":{"type":"ephemeral"},"text":"a long system prompt","type":"text"}]}"#;
        let s = PromptShape::of(body);
        let system =
            r#"{"cache_control":{"type":"ephemeral"},"text":"a long system prompt","type":"text"}"#
                .len() as u64;
        let first = r#"{"cache_control":{"type":"ephemeral"},"text":"abcdefgh","type":"text"}"#
            .len() as u64;
        assert_eq!(s.cacheable_bytes, system + first);
        assert_eq!(
            s.bytes,
            system + first + r#""tail of the prompt""#.len() as u64
        );
        assert_eq!(PromptShape::of(b"{").cacheable_bytes, 0);
    }

    #[test]
    fn a_growing_conversation_reads_its_previous_prefix() {
        let c = PromptCache::default();
        let ttl = Duration::from_secs(60);
        let k = || Some("m/s1/".to_string());
        let first = c.split(k(), 1000, 990, ttl);
        assert_eq!(
            first,
            CacheUse {
                input_tokens: 10,
                cache_creation_input_tokens: 990,
                cache_read_input_tokens: 0
            }
        );
        let second = c.split(k(), 1200, 1190, ttl);
        assert_eq!(second.cache_read_input_tokens, 990);
        assert_eq!(second.cache_creation_input_tokens, 200);
        // Another session, or no session, reads nothing.
        assert_eq!(
            c.split(Some("m/s2/".into()), 1200, 1190, ttl)
                .cache_read_input_tokens,
            0
        );
        assert_eq!(c.split(None, 50, 40, ttl).input_tokens, 50);
        // A shorter prompt is not an extension of the cached one.
        assert_eq!(c.split(k(), 500, 490, ttl).cache_read_input_tokens, 0);
        // Expired entries are misses.
        let _ = c.split(Some("m/s3/".into()), 100, 100, Duration::ZERO);
        assert_eq!(
            c.split(Some("m/s3/".into()), 100, 100, ttl)
                .cache_read_input_tokens,
            0
        );
    }
}
