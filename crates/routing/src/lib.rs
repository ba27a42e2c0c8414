//! Route plans: which upstream serves a request, in which order attempts are made.
//!
//! # Layout
//! - `catalog`: model names, aliases and per-provider model ids.
//! - `plan`: the [`Routes`] table compiled from configuration and the [`RoutePlan`] it yields.
//!
//! This slice knows providers by name: `x-tollgate-provider` picks one, otherwise the first
//! configured provider serves. Fallback, balancing and conditions build on the same plan.

pub mod catalog;
pub mod plan;

pub use catalog::{Catalog, ModelEntry, ModelOnProvider};
pub use plan::{RouteError, RoutePlan, Routes};
