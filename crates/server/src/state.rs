//! What every request can reach: snapshots, the journal, the upstream client.

use crate::config::Config;
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tollgate_govern::admission::Counters;
use tollgate_govern::limits::Clock;
use tollgate_govern::policy_set::PolicySet;
use tollgate_govern::{Identities, IdentitySnapshot};
use tollgate_ledger::PriceTable;
use tollgate_ledger::journal::{Journal, JournalReader};
use tollgate_providers::betas::BetaTable;
use tollgate_providers::{UpstreamClient, UpstreamClientOptions};
use tollgate_routing::{Catalog, Routes};
use tollgate_store::{Store, StoreError};

/// Shared gateway state. Hot-path reads are lock-free snapshots; the store is only touched by
/// admin calls and by the watcher that rebuilds the snapshots when the store changes.
pub struct AppState {
    pub config: Config,
    pub identities: Identities,
    pub store: Arc<Store>,
    pub journal: Journal,
    pub journal_reader: Arc<JournalReader>,
    pub prices: PriceTable,
    pub routes: Routes,
    pub catalog: Catalog,
    /// The beta table of each provider (built-in rules plus that provider's overrides).
    pub betas: HashMap<String, BetaTable>,
    pub client_options: UpstreamClientOptions,
    pub limits: Limits,
    /// Every policy (config and store), swapped whole on change.
    pub policies: ArcSwap<PolicySet>,
    /// Where budgets, rate limits, sessions and concurrency count.
    pub counters: Counters,
    /// The time source of admission (injected in tests that cross period boundaries).
    pub clock: Arc<dyn Clock>,
    /// Where budget, hard-cap and loop alerts go.
    pub alerts: crate::alerts::Alerts,
    /// Provider credentials held by the gateway, decrypted in memory.
    pub vault: crate::vault::Vault,
    /// Held while a snapshot is read and swapped, so an older read never replaces a newer one
    /// (an admin call's refresh and the store watcher's can overlap).
    pub refreshing: std::sync::Mutex<()>,
}

thread_local! {
    /// One upstream client per worker thread: pooled connections then live on the same
    /// single-threaded runtime as the requests that use them, so no request wakes another
    /// thread.
    static CLIENT: std::cell::OnceCell<UpstreamClient> = const { std::cell::OnceCell::new() };
}

/// Limits copied out of the configuration in the units the hot path uses.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub request_body_timeout: Duration,
    pub upstream_idle_timeout: Duration,
    /// Bodies are stored in the journal up to this size; `None` when storing is off.
    pub body_capture: Option<usize>,
}

impl AppState {
    /// This thread's upstream client (created on first use).
    pub fn upstream_client(&self) -> UpstreamClient {
        CLIENT.with(|c| {
            c.get_or_init(|| tollgate_providers::client::build_client(&self.client_options))
                .clone()
        })
    }

    /// Rebuilds the identity snapshot from the store; called after every key or user change so
    /// it takes effect on the next request.
    pub fn refresh_identities(&self) -> Result<(), StoreError> {
        let _one = self.refreshing.lock().unwrap_or_else(|e| e.into_inner());
        let keys = self.store.active_identities()?;
        self.identities.replace(IdentitySnapshot::new(keys));
        Ok(())
    }

    /// Rebuilds the policy snapshot from the config and the store; called after every policy,
    /// team, user or key change so it applies to the next request.
    pub fn refresh_policies(&self) -> Result<(), StoreError> {
        let _one = self.refreshing.lock().unwrap_or_else(|e| e.into_inner());
        let stored = self.store.list_policies()?;
        self.policies
            .store(Arc::new(compile_policies(&self.config, stored)));
        Ok(())
    }

    /// Rebuilds every snapshot taken from the store: identities, policies and provider
    /// credentials. Each is swapped whole as soon as it is read; one that fails leaves its old
    /// snapshot in place and the first error is returned after the others were tried.
    pub fn refresh_all(&self) -> Result<(), StoreError> {
        let ids = self.refresh_identities();
        let policies = self.refresh_policies();
        let vault = self.vault.refresh(&self.store);
        ids.and(policies).and(vault)
    }
}

/// The policy set of the config's `[[policies]]` plus the stored ones. Config policies get the
/// id `cfg:NAME` (their name, else their scope) so their counters survive reordering the file.
pub fn compile_policies(config: &Config, stored: Vec<tollgate_store::PolicyRow>) -> PolicySet {
    let mut seen = std::collections::HashSet::new();
    let from_config = config.policies.iter().map(|spec| {
        let base = format!("cfg:{}", spec.display_name());
        let mut id = base.clone();
        let mut n = 1;
        while !seen.insert(id.clone()) {
            n += 1;
            id = format!("{base}#{n}");
        }
        (id, spec.clone())
    });
    let from_config: Vec<_> = from_config.collect();
    PolicySet::new(
        from_config
            .into_iter()
            .chain(stored.into_iter().map(|r| (r.id, r.spec))),
    )
}
