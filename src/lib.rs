//! clickgate: an edge proxy for referral and QR links that catches click fraud on the way
//! through, and the attribution and commission core behind it.
//!
//! # Layout
//!
//! - `model`: the shared vocabulary (click and visitor ids, verdicts and reasons, channels,
//!   currencies, redirect destinations, secrets). It imports nothing of ours.
//! - `config`: the TOML config, defaulted and validated. It imports nothing of ours either.
//! - `edge`: the data plane. `edge::handler` answers `/r/{code}` and `/q/{code}`,
//!   `edge::checks` is the fraud-check pipeline, `edge::links` the in-memory link table,
//!   `edge::server` the listeners.
//! - `events`: `ClickEvent`, the bounded queue the edge hands events to, and the local spool.
//! - The domain, one module per part of the core: `ingest` (into the durable `click_log` and
//!   the attribution `index`), `attribution`, `catalog` (programs, partners, links and coupons:
//!   their rules, their store trait, and the core's snapshot), `commission`, `lifecycle` (commissions through pending, approved, paid),
//!   `conversions` (the writer and its views) and `ledger` (double-entry, hash-chained).
//! - `payouts`: payout runs (plan, lock, resume, the ledger's pending transfers) and their providers
//!   (Stripe Connect transfers, PayPal and Wise CSV exports), and the payout schedule.
//! - `webhooks`: events and their envelope, Standard Webhooks signatures, retries, the SSRF guard,
//!   endpoints and the delivery worker.
//! - `audit`: the audit log of every write through the API or the CLI (actors, actions, the
//!   redaction of sensitive fields) and its store trait.
//! - `fraud`: fraud alerts raised from ingested clicks (a partner's flagged share, link surges).
//! - `privacy`: the data key that seals personal data at rest (AES-256-GCM, bound to its row),
//!   the keyed hash of customer references, and what a privacy erase targets and answers.
//! - `storage`: one module per backend (`sqlite`, `pg`), implementing the domain's store traits.
//! - `api`: the JSON API (conversions, clicks, postbacks, CSV import, reports).
//! - `cluster`: the JetStream publisher and the core's durable consumer (cluster mode).
//! - `metrics` and `admin`: Prometheus families and the admin listener.
//! - `app`: process wiring.
//! - `cli`: the command line, one file per subcommand, among them `cli::check` (the pipeline
//!   replayed over a JSON-lines log) and `cli::attribute` (the models over JSON-lines journeys).
//! - `testing`: support for the tests (a PostgreSQL schema of their own, a local Stripe); not an API.

pub mod access;
pub mod admin;
pub mod api;
pub mod app;
pub mod attribution;
pub mod audit;
pub mod catalog;
pub mod cli;
pub mod click_log;
pub mod cluster;
pub mod commission;
pub mod config;
pub mod conversions;
pub mod edge;
pub mod events;
pub mod fraud;
pub mod index;
pub mod ingest;
pub mod ledger;
pub mod lifecycle;
pub mod metrics;
pub mod model;
pub mod payouts;
pub mod privacy;
pub mod storage;
#[doc(hidden)]
pub mod testing;
pub mod webhooks;
