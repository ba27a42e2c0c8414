//! The alert delivery log: one row per alert and webhook, kept until delivered or given up, so
//! pending deliveries survive a restart (at-least-once).

use crate::Store;
use crate::db::{Row, args};
use crate::entities::now;
use crate::error::StoreError;
use serde::Serialize;

/// One delivery of one alert to one webhook.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AlertDelivery {
    pub id: i64,
    pub created_at: String,
    /// The webhook's name (never its URL, which may hold a secret).
    pub webhook: String,
    pub kind: String,
    pub event: serde_json::Value,
    /// `pending`, `delivered` or `failed` (gave up).
    pub status: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub delivered_at: Option<String>,
}

fn row(r: &Row) -> Result<AlertDelivery, StoreError> {
    let event: String = r.get(4)?;
    Ok(AlertDelivery {
        id: r.get(0)?,
        created_at: r.get(1)?,
        webhook: r.get(2)?,
        kind: r.get(3)?,
        event: serde_json::from_str(&event).unwrap_or(serde_json::Value::Null),
        status: r.get(5)?,
        attempts: r.get(6)?,
        last_error: r.get(7)?,
        delivered_at: r.get(8)?,
    })
}

const SELECT: &str = "SELECT id, created_at, webhook, kind, event, status, attempts, last_error, delivered_at FROM alert_deliveries";

impl Store {
    /// Records a delivery to make; returns its id.
    pub fn add_alert_delivery(
        &self,
        webhook: &str,
        kind: &str,
        event: &serde_json::Value,
    ) -> Result<i64, StoreError> {
        self.db()
            .query_one(
                "INSERT INTO alert_deliveries (created_at, webhook, kind, event, status)
                 VALUES (?1, ?2, ?3, ?4, 'pending') RETURNING id",
                args![now(), webhook, kind, event.to_string()],
            )?
            .get(0)
    }

    /// Records one attempt: delivered, failed for good, or still pending with its error.
    pub fn record_alert_attempt(
        &self,
        id: i64,
        status: &str,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let delivered_at = (status == "delivered").then(now);
        self.db().exec(
            "UPDATE alert_deliveries SET status = ?2, attempts = attempts + 1, last_error = ?3,
             delivered_at = COALESCE(?4, delivered_at) WHERE id = ?1",
            args![id, status, error, delivered_at],
        )?;
        Ok(())
    }

    /// Deliveries not yet made, oldest first (resumed at start).
    pub fn pending_alert_deliveries(&self) -> Result<Vec<AlertDelivery>, StoreError> {
        self.db()
            .query(
                &format!("{SELECT} WHERE status = 'pending' ORDER BY id"),
                args![],
            )?
            .iter()
            .map(row)
            .collect()
    }

    /// The newest deliveries first.
    pub fn alert_deliveries(&self, limit: u32) -> Result<Vec<AlertDelivery>, StoreError> {
        self.db()
            .query(&format!("{SELECT} ORDER BY id DESC LIMIT ?1"), args![limit])?
            .iter()
            .map(row)
            .collect()
    }
}
