//! The operators' side of webhooks, shared by the API and the CLI: register, list, remove and
//! rotate endpoints; list deliveries with their attempts; replay events. Each call is one
//! store transaction on tokio's blocking pool; a write to an endpoint records its actor's audit
//! entry in it.

use std::sync::{Arc, Mutex};

use super::endpoint::{register, Endpoint, EndpointError, Registration};
use super::signature::{Secret, ROTATION_OVERLAP_MS};
use super::ssrf::Policy;
use super::store::{DeliveryFilter, DeliveryView, NewDelivery, StoreError, WebhookStore};
use crate::audit::{Actor, Stamp};

/// Why an operator's call failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The request breaks a rule (the URL, the types, the partner).
    #[error(transparent)]
    Invalid(#[from] EndpointError),
    #[error("webhook endpoint {0:?} not found")]
    NoEndpoint(String),
    #[error("webhook event {0:?} has no delivery to replay")]
    NoEvent(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Outbox rows a replay reads per transaction.
const REPLAY_BATCH: usize = 1000;

/// A store connection behind a lock, and the SSRF policy registrations are checked against.
pub struct Admin {
    store: Arc<Mutex<Box<dyn WebhookStore>>>,
    policy: Policy,
}

impl Admin {
    pub fn new(store: Box<dyn WebhookStore>, policy: Policy) -> Admin {
        Admin { store: Arc::new(Mutex::new(store)), policy }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn WebhookStore) -> Result<T, AdminError> + Send + 'static,
    ) -> Result<T, AdminError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = store.lock().unwrap_or_else(|e| e.into_inner());
            f(guard.as_mut())
        })
        .await
        .map_err(|e| AdminError::Store(StoreError::Storage(format!("the webhook store task failed: {e}"))))?
    }

    /// Registers an endpoint, recorded as `actor`'s; the answer holds its secret, which is
    /// never shown again.
    pub async fn add(&self, reg: &Registration, now_ms: u64, actor: &Actor) -> Result<Endpoint, AdminError> {
        let endpoint = register(reg, &self.policy, now_ms).await?;
        let (stored, stamp) = (endpoint.clone(), Stamp::new(actor.clone(), now_ms));
        self.blocking(move |s| Ok(s.insert_endpoint(&stored, &stamp)?)).await?;
        tracing::info!(endpoint = %endpoint.id, url = %endpoint.url, "registered a webhook endpoint");
        Ok(endpoint)
    }

    pub async fn list(&self) -> Result<Vec<Endpoint>, AdminError> {
        self.blocking(|s| Ok(s.endpoints()?)).await
    }

    pub async fn get(&self, id: &str) -> Result<Endpoint, AdminError> {
        let id = id.to_owned();
        self.blocking(move |s| s.endpoint(&id)?.ok_or(AdminError::NoEndpoint(id))).await
    }

    /// Removes an endpoint with its deliveries, recorded as `actor`'s at `now_ms`.
    pub async fn remove(&self, id: &str, now_ms: u64, actor: &Actor) -> Result<(), AdminError> {
        let (id, stamp) = (id.to_owned(), Stamp::new(actor.clone(), now_ms));
        self.blocking(move |s| if s.delete_endpoint(&id, &stamp)? { Ok(()) } else { Err(AdminError::NoEndpoint(id)) }).await
    }

    /// Gives an endpoint a new secret; the old one signs too for `ROTATION_OVERLAP_MS`. Returns
    /// the endpoint and its new secret, shown once.
    pub async fn rotate(&self, id: &str, now_ms: u64, actor: &Actor) -> Result<(Endpoint, Secret), AdminError> {
        let secret = Secret::generate().map_err(EndpointError::from)?;
        let (id, fresh, stamp) = (id.to_owned(), secret.clone(), Stamp::new(actor.clone(), now_ms));
        let endpoint = self
            .blocking(move |s| {
                if !s.rotate_secret(&id, &fresh, now_ms.saturating_add(ROTATION_OVERLAP_MS), &stamp)? {
                    return Err(AdminError::NoEndpoint(id));
                }
                s.endpoint(&id)?.ok_or(AdminError::NoEndpoint(id))
            })
            .await?;
        tracing::info!(endpoint = %endpoint.id, "rotated a webhook endpoint's secret");
        Ok((endpoint, secret))
    }

    /// Enables an endpoint that a `410` or five days of failures disabled. Its pending
    /// deliveries are sent again; the events it was disabled through were never fanned out to
    /// it, and `replay_since` its `status_ms` (when it was disabled, as the caller read it
    /// before) sends them.
    pub async fn enable(&self, id: &str, now_ms: u64, actor: &Actor) -> Result<Endpoint, AdminError> {
        let (id, stamp) = (id.to_owned(), Stamp::new(actor.clone(), now_ms));
        let endpoint = self
            .blocking(move |s| {
                if !s.enable(&id, now_ms, &stamp)? {
                    return Err(AdminError::NoEndpoint(id));
                }
                s.endpoint(&id)?.ok_or(AdminError::NoEndpoint(id))
            })
            .await?;
        tracing::info!(endpoint = %endpoint.id, "enabled a webhook endpoint");
        Ok(endpoint)
    }

    /// Deliveries with their attempts, newest first.
    pub async fn deliveries(&self, filter: DeliveryFilter) -> Result<Vec<DeliveryView>, AdminError> {
        self.blocking(move |s| Ok(s.deliveries(&filter)?)).await
    }

    /// Sends an event again to every endpoint it was delivered (or not) to, from the start of
    /// the schedule; returns how many deliveries. With `partner`, only to that partner's
    /// endpoints, and an event none of them had is not found.
    pub async fn replay_event(&self, event_id: &str, partner: Option<&str>, now_ms: u64) -> Result<u64, AdminError> {
        let id = event_id.to_owned();
        let partner = partner.map(str::to_owned);
        self.blocking(move |s| {
            let mut deliveries = s.deliveries_of_event(&id)?;
            if let Some(p) = &partner {
                let mut own = std::collections::HashMap::new();
                for d in &deliveries {
                    if !own.contains_key(&d.endpoint_id) {
                        let mine = s.endpoint(&d.endpoint_id)?.is_some_and(|e| e.partner.as_deref() == Some(p.as_str()));
                        own.insert(d.endpoint_id.clone(), mine);
                    }
                }
                deliveries.retain(|d| own[&d.endpoint_id]);
            }
            if deliveries.is_empty() {
                return Err(AdminError::NoEvent(id));
            }
            Ok(s.requeue(&deliveries, now_ms)?)
        })
        .await
    }

    /// Sends every event since `since_ms` that the endpoint wants (by type and partner) again,
    /// whether it was delivered or not; returns how many.
    pub async fn replay_since(&self, endpoint_id: &str, since_ms: i64, now_ms: u64) -> Result<u64, AdminError> {
        let id = endpoint_id.to_owned();
        self.blocking(move |s| {
            let endpoint = s.endpoint(&id)?.ok_or_else(|| AdminError::NoEndpoint(id.clone()))?;
            let (mut after, mut total) = (0i64, 0u64);
            loop {
                let events = s.events_after(after, REPLAY_BATCH)?;
                let Some(last) = events.last() else { break };
                after = last.seq;
                let wanted: Vec<NewDelivery> = events
                    .iter()
                    .filter(|e| e.occurred_ms >= since_ms && endpoint.wants(e.kind, e.partner.as_deref()))
                    .filter_map(|e| {
                        let event_id = e.outbox().id().ok()?.to_string();
                        Some(NewDelivery { endpoint_id: id.clone(), seq: e.seq, event_id, kind: e.kind })
                    })
                    .collect();
                total += s.requeue(&wanted, now_ms)?;
            }
            Ok(total)
        })
        .await
    }
}
