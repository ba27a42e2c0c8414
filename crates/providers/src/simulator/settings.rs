//! How a simulator behaves, and how that changes while the gateway runs.
//!
//! The provider entry gives the base settings. A `control_file`, when configured, is re-read at
//! most every [`CONTROL_CHECK`] while requests arrive; every key it sets replaces the base value
//! (keys it leaves out keep theirs, and removing the file restores the base). That lets a test
//! or an operator raise latency or inject errors into a running gateway without any admin call.
//! In-process callers can use [`SimulatorHandle`](super::SimulatorHandle) instead.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The shortest interval between two reads of the control file.
pub const CONTROL_CHECK: Duration = Duration::from_millis(50);

/// Everything that shapes a simulated answer.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulatorSettings {
    /// Delay before the response head (and, streaming, `message_start`).
    pub ttfb_ms: u64,
    /// Output pace; `0` sends every token at once.
    pub tokens_per_second: f64,
    /// Tokens generated per answer (capped by the request's `max_tokens`).
    pub output_tokens: u64,
    /// Probability of answering each status instead of a message, e.g. `529 → 0.3`.
    pub errors: Vec<(u16, f64)>,
    /// `retry-after` seconds sent with 429 and 529 answers.
    pub retry_after: Option<u64>,
    /// Probability that a stream (or a whole body) is cut after part of it was sent.
    pub midstream_drop_rate: f64,
    /// Length of a stall: streams go silent after their first events, whole answers wait
    /// before their head.
    pub stall_ms: u64,
    /// Probability of a stall.
    pub stall_rate: f64,
    /// Lifetime of a simulated prompt-cache entry.
    pub cache_ttl: Duration,
}

impl Default for SimulatorSettings {
    fn default() -> Self {
        Self {
            ttfb_ms: 0,
            tokens_per_second: 0.0,
            output_tokens: 16,
            errors: Vec::new(),
            retry_after: None,
            midstream_drop_rate: 0.0,
            stall_ms: 0,
            stall_rate: 0.0,
            cache_ttl: Duration::from_secs(300),
        }
    }
}

/// The simulator keys of a provider entry or a control file; absent keys change nothing.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatorPatch {
    pub ttfb_ms: Option<u64>,
    pub tokens_per_second: Option<f64>,
    pub output_tokens: Option<u64>,
    /// Status code (as a string key, TOML tables need one) → probability.
    pub errors: Option<BTreeMap<String, f64>>,
    pub retry_after: Option<u64>,
    pub midstream_drop_rate: Option<f64>,
    pub stall_ms: Option<u64>,
    pub stall_rate: Option<f64>,
    pub cache_ttl_secs: Option<u64>,
}

fn rate(field: &str, v: f64) -> Result<f64, String> {
    if v.is_finite() && (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{field} must be between 0 and 1, not {v}"))
    }
}

impl SimulatorPatch {
    /// `base` with every key of this patch applied, validated.
    pub fn apply(&self, base: &SimulatorSettings) -> Result<SimulatorSettings, String> {
        let mut s = base.clone();
        if let Some(v) = self.ttfb_ms {
            s.ttfb_ms = v;
        }
        if let Some(v) = self.tokens_per_second {
            if !v.is_finite() || v < 0.0 {
                return Err(format!("tokens_per_second must be 0 or more, not {v}"));
            }
            s.tokens_per_second = v;
        }
        if let Some(v) = self.output_tokens {
            s.output_tokens = v;
        }
        if let Some(errors) = &self.errors {
            let mut parsed = Vec::with_capacity(errors.len());
            let mut total = 0.0;
            for (status, p) in errors {
                let code: u16 = status
                    .trim()
                    .parse()
                    .ok()
                    .filter(|c| (400..=599).contains(c))
                    .ok_or_else(|| {
                        format!("errors: '{status}' is not an HTTP error status (400-599)")
                    })?;
                let p = rate(&format!("errors.{status}"), *p)?;
                total += p;
                parsed.push((code, p));
            }
            if total > 1.0 + 1e-9 {
                return Err(format!("errors: the rates add up to {total}, more than 1"));
            }
            s.errors = parsed;
        }
        if let Some(v) = self.retry_after {
            s.retry_after = Some(v);
        }
        if let Some(v) = self.midstream_drop_rate {
            s.midstream_drop_rate = rate("midstream_drop_rate", v)?;
        }
        if let Some(v) = self.stall_ms {
            s.stall_ms = v;
        }
        if let Some(v) = self.stall_rate {
            s.stall_rate = rate("stall_rate", v)?;
        }
        if let Some(v) = self.cache_ttl_secs {
            s.cache_ttl = Duration::from_secs(v);
        }
        Ok(s)
    }
}

/// The control file and what was last read from it.
#[derive(Debug)]
pub(super) struct ControlFile {
    pub path: PathBuf,
    state: Mutex<ControlState>,
}

#[derive(Debug)]
struct ControlState {
    checked: Option<Instant>,
    contents: Option<Vec<u8>>,
}

impl ControlFile {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            state: Mutex::new(ControlState {
                checked: None,
                contents: None,
            }),
        }
    }

    /// New settings when the file changed since the last look (`None` when it did not, or
    /// when it was looked at less than [`CONTROL_CHECK`] ago). A file that does not parse is
    /// logged and ignored, so a half-written edit never takes the simulator down.
    pub fn poll(&self, base: &SimulatorSettings) -> Option<SimulatorSettings> {
        let mut st = match self.state.try_lock() {
            Ok(st) => st,
            // Another request is reading the file right now; it will apply what it finds.
            Err(_) => return None,
        };
        let now = Instant::now();
        if st
            .checked
            .is_some_and(|t| now.duration_since(t) < CONTROL_CHECK)
        {
            return None;
        }
        st.checked = Some(now);
        let contents = std::fs::read(&self.path).ok();
        if contents == st.contents {
            return None;
        }
        st.contents = contents.clone();
        let Some(bytes) = contents else {
            return Some(base.clone());
        };
        let parsed = std::str::from_utf8(&bytes)
            .map_err(|e| e.to_string())
            .and_then(|t| toml::from_str::<SimulatorPatch>(t).map_err(|e| e.to_string()))
            .and_then(|p| p.apply(base));
        match parsed {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(file = %self.path.display(), error = %e, "simulator control file ignored");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_validate_rates_and_statuses() {
        let base = SimulatorSettings::default();
        let p: SimulatorPatch = toml::from_str(
            "ttfb_ms = 5\nerrors = { \"529\" = 0.3, \"500\" = 0.05 }\nretry_after = 2",
        )
        .expect("parses");
        let s = p.apply(&base).expect("valid");
        assert_eq!(s.ttfb_ms, 5);
        assert_eq!(s.errors, vec![(500, 0.05), (529, 0.3)]);
        assert_eq!(s.retry_after, Some(2));
        for bad in [
            "errors = { \"200\" = 0.1 }",
            "errors = { \"529\" = 0.7, \"500\" = 0.7 }",
            "midstream_drop_rate = 1.5",
            "tokens_per_second = -1.0",
        ] {
            let p: SimulatorPatch = toml::from_str(bad).expect("parses");
            assert!(p.apply(&base).is_err(), "{bad}");
        }
        assert!(toml::from_str::<SimulatorPatch>("ttfb = 1").is_err());
    }

    #[test]
    fn control_file_changes_apply_and_removal_restores_the_base() {
        let path = std::env::temp_dir().join(format!(
            "tollgate-sim-control-{}-{:?}.toml",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_file(&path);
        let base = SimulatorSettings::default();
        let c = ControlFile::new(path.clone());
        assert_eq!(c.poll(&base), None, "no file, nothing read yet");
        std::fs::write(&path, "ttfb_ms = 250").expect("write");
        std::thread::sleep(CONTROL_CHECK);
        assert_eq!(c.poll(&base).map(|s| s.ttfb_ms), Some(250));
        assert_eq!(c.poll(&base), None, "checked too recently");
        std::thread::sleep(CONTROL_CHECK);
        std::fs::write(&path, "ttfb_ms = [").expect("write");
        assert_eq!(c.poll(&base), None, "a broken file is ignored");
        std::fs::remove_file(&path).expect("remove");
        std::thread::sleep(CONTROL_CHECK);
        assert_eq!(c.poll(&base), Some(base.clone()));
    }
}
