//! Session affinity by rendezvous (highest-random-weight) hashing.
//!
//! Each target gets a score from a hash of (session, agent, target name); the targets are
//! ranked by score. Every replica computes the same ranking from the request alone — no shared
//! table, no process memory — and when a target leaves (unhealthy, removed) only the sessions
//! it ranked first move, each to its own next-ranked target. Weights enter the way weighted
//! rendezvous hashing does it: the rank key is `-ln(u) / weight`, which picks a target with
//! probability proportional to its weight across sessions.
//!
//! The hash is written out here (FNV-1a, then the SplitMix64 finaliser) rather than taken from
//! `std`, whose hasher may change between Rust releases: replicas built apart must still agree.

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The stable key of a session (and, for subagents, the agent within it).
pub fn session_key(session_id: &str, agent_id: Option<&str>) -> u64 {
    let h = fnv(FNV_OFFSET, session_id.as_bytes());
    // A separator byte no header value contains, so ("ab", "c") and ("a", "bc") differ.
    let h = fnv(h, &[0xff]);
    fnv(h, agent_id.unwrap_or("").as_bytes())
}

/// A number in (0, 1) fixed by the session and the target name.
pub fn unit(key: u64, target: &str) -> f64 {
    let h = mix(fnv(key, target.as_bytes()));
    // 53 random bits, offset by half a step so neither 0 nor 1 is produced.
    ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

/// The rank key of weighted rendezvous hashing (and of weighted random order when `u` is
/// random): the smallest wins.
pub fn rank_key(u: f64, weight: u32) -> f64 {
    -u.ln() / f64::from(weight.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_spread() {
        let k = session_key("0b7e1c2a-4d5f-4e6a-8b9c-0d1e2f3a4b5c", None);
        assert_ne!(
            k,
            session_key("0b7e1c2a-4d5f-4e6a-8b9c-0d1e2f3a4b5c", Some("a1"))
        );
        assert_ne!(session_key("ab", Some("c")), session_key("a", Some("bc")));
        // Fixed values: a change here breaks agreement between replicas of different builds.
        assert_eq!(session_key("s", None), 637_761_857_196_271_751);
        assert!((unit(session_key("s", None), "t") - 0.907_926_547_430_173_9).abs() < 1e-15);

        // Over many sessions, two equal targets split about evenly and a 3:1 weight shows.
        let (mut even, mut weighted) = (0u32, 0u32);
        for i in 0..10_000 {
            let k = session_key(&format!("session-{i}"), None);
            if unit(k, "a") > unit(k, "b") {
                even += 1;
            }
            if rank_key(unit(k, "a"), 3) < rank_key(unit(k, "b"), 1) {
                weighted += 1;
            }
        }
        assert!((4_700..5_300).contains(&even), "{even}");
        assert!((7_250..7_750).contains(&weighted), "{weighted}");
    }
}
