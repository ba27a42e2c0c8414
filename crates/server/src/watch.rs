//! Keeps this process's snapshots in step with the store when someone else writes to it: in a
//! cluster every replica shares one Postgres, so a key revoked through one replica's admin API
//! must stop working on all of them.
//!
//! The store keeps a change counter that every write to a cached table moves (database
//! triggers, so writes by hand count too). A plain thread reads it every `poll_interval_ms` —
//! one indexed single-row read — and rebuilds identities, policies and provider credentials
//! when it moved. The counter is read *before* the snapshots, so a write landing during a
//! rebuild is caught by the next poll. On a single SQLite node the admin API already refreshes
//! at once; the watcher then only notices hand edits.

use crate::state::AppState;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tollgate_store::StoreError;

/// Starts the watcher. `seen` is the counter read before the current snapshots were built.
/// The thread ends by itself once the state is dropped.
pub fn spawn(state: &Arc<AppState>, seen: i64, every: Duration) -> std::io::Result<()> {
    let weak = Arc::downgrade(state);
    std::thread::Builder::new()
        .name("tollgate-store-watch".into())
        .spawn(move || watch(weak, seen, every))
        .map(|_| ())
}

fn watch(state: Weak<AppState>, mut seen: i64, every: Duration) {
    // Failures are logged when they start and when they end, not on every poll.
    let mut failing = false;
    loop {
        std::thread::sleep(every);
        let Some(state) = state.upgrade() else {
            return;
        };
        let outcome = state.store.change_seq().and_then(|seq| {
            if seq != seen {
                match state.refresh_all() {
                    Ok(()) => {
                        tracing::debug!(from = seen, to = seq, "store changed; snapshots rebuilt");
                    }
                    // Another replica rotated the master key: that lasts until this one is
                    // restarted with the new key, so say so once per change instead of
                    // rebuilding every poll. Keys and policies were rebuilt all the same.
                    Err(StoreError::Secret(e)) => {
                        tracing::error!(error = %e, "provider credentials changed but cannot be decrypted with this replica's master key; the ones decrypted before stay in use until it restarts with the current TOLLGATE_MASTER_KEY");
                    }
                    Err(e) => return Err(e),
                }
                seen = seq;
            }
            Ok(())
        });
        match outcome {
            Ok(()) if failing => {
                failing = false;
                tracing::warn!("store reachable again; snapshots are current");
            }
            Ok(()) => {}
            Err(e) if !failing => {
                failing = true;
                tracing::error!(error = %e, "cannot follow store changes; requests are served from the last snapshots until it recovers");
            }
            Err(_) => {}
        }
    }
}
