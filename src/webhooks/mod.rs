//! Webhooks: the pure foundations of delivering events to partners' and operators' endpoints
//! as the Standard Webhooks spec describes them.
//!
//! - `event`: the closed set of event types, the `{"type","timestamp","data"}` envelope, and
//!   ids derived from an event's cause, so a retried transaction writes the same event.
//! - `signature`: `whsec_` secrets, `v1,<base64>` HMAC-SHA256 signatures, several at once
//!   during a rotation, and the receiver's verification.
//! - `schedule`: the retry schedule with jitter, `Retry-After`, and what an answer means
//!   (delivered, gone, failed), and when failures disable an endpoint.
//! - `ssrf`: the guard on where a webhook may connect: the URL, every resolved address, and the
//!   operator's allowlist.
//! - `outbox`: `OutboxTx`, which a backend implements to write events in the transaction of
//!   their change.
//! - `endpoint`: registered endpoints, checked at registration; `store`: `WebhookStore`, the
//!   endpoints, deliveries and attempts a backend keeps; `admin`: what the API and the CLI do
//!   with them.
//! - `delivery`: the worker that fans the outbox out to endpoints and sends each delivery,
//!   over `delivery::http`, with its pure decisions in `delivery::plan`.
//!
//! Nothing here reads the clock or a random generator it was not handed, except
//! `Secret::generate` and endpoint ids (the OS's generator), and the network I/O is in
//! `ssrf::resolve_and_check` (one DNS lookup) and `delivery::http` alone.

pub mod admin;
pub mod delivery;
pub mod endpoint;
pub mod event;
pub mod outbox;
pub mod schedule;
pub mod signature;
pub mod ssrf;
pub mod store;

pub use admin::{Admin, AdminError};
pub use endpoint::{Endpoint, EndpointError, Registration};
pub use event::{Envelope, EventError, EventId, EventType};
pub use outbox::{emit, OutboxError, OutboxEvent, OutboxTx};
pub use schedule::{classify, next_attempt_ms, Failure, Outcome, Response};
pub use signature::{Headers, Secret, SignatureError};
pub use ssrf::{check_url, resolve_and_check, Policy, Refusal, SsrfError, WebhookUrl};
pub use store::{StoreError, WebhookStore};
