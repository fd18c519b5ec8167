//! The core: a batched control plane behind the edge.
//!
//! `ingest` drains click events in batches into the durable `click_log` and the in-memory
//! attribution `index`; `attribution` decides which touches a conversion credits and splits
//! the amount between them.

pub mod attribution;
pub mod catalog;
pub mod click_log;
pub mod commission;
pub mod conversions;
pub mod index;
pub mod ingest;
pub mod lifecycle;
