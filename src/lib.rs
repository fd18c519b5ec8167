//! clickgate: an edge proxy for referral and QR links that catches click fraud on the way
//! through, and the attribution and commission core behind it.
//!
//! # Layout
//!
//! - `edge`: the data plane. `edge::handler` answers `/r/{code}` and `/q/{code}`,
//!   `edge::checks` is the fraud-check pipeline, `edge::links` the in-memory link table,
//!   `edge::click_id` signed click and visitor ids, `edge::server` the listeners.
//! - `events`: `ClickEvent`, the bounded queue the edge hands events to, and the local spool.
//! - `core`: the durable click log, the attribution index, attribution, conversions and the
//!   commission rules.
//! - `ledger`: the double-entry, hash-chained ledger over SQLite and PostgreSQL.
//! - `api`: the JSON API (conversions, clicks, postbacks, CSV import, reports).
//! - `cluster`: the JetStream publisher and the core's durable consumer (cluster mode).
//! - `attribute`: `clickgate attribute`, the models over JSON-lines journeys.
//! - `store`: programs, partners and links in the embedded SQLite file.
//! - `config`: the TOML config, defaulted and validated.
//! - `metrics` and `admin`: Prometheus families and the admin listener.
//! - `check`: `clickgate check`, the pipeline replayed over a JSON-lines log.
//! - `app` and `cli`: process wiring and the command line.
//! - `testing`: support for the tests (a PostgreSQL schema of their own); not an API.

pub mod admin;
pub mod api;
pub mod app;
pub mod attribute;
pub mod attribution;
pub mod catalog;
pub mod check;
pub mod cli;
pub mod click_log;
pub mod cluster;
pub mod commission;
pub mod config;
pub mod conversions;
pub mod edge;
pub mod events;
pub mod index;
pub mod ingest;
pub mod ledger;
pub mod lifecycle;
pub mod metrics;
pub mod store;
#[doc(hidden)]
pub mod testing;
