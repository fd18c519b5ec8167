//! What a backend hands the edge's link table: every link in one streamed read, or only the
//! links changed since a catalog version, read from the store's change log.
//!
//! Every change to the catalog (a program, partner, link or coupon added, changed or removed)
//! appends an entry to the change log in the change's own transaction, so the log's last entry
//! is the catalog's version. A reader at version v reads the entries after v; when the log no
//! longer reaches back to v (it is trimmed to its newest entries), it reads everything again.

use super::{Partner, Program};
use crate::model::{Channel, Status};

/// A link as a backend streams it, borrowed from the row being read.
#[derive(Debug, Clone, Copy)]
pub struct LinkRow<'a> {
    pub row_id: i64,
    pub program_row_id: i64,
    pub partner_row_id: i64,
    pub code: &'a str,
    pub destination: &'a str,
    pub channel: Channel,
    /// `utm_source`, `utm_medium`, `utm_campaign`.
    pub utm: [&'a str; 3],
    /// Unix seconds.
    pub expires_at: Option<i64>,
    pub status: Status,
}

/// What `CatalogStore::read_links` found, handed over before the links it streams.
#[derive(Debug)]
pub struct LinkReadHead {
    /// The catalog version the read reflects.
    pub version: i64,
    /// Every link follows (a full read), or only those changed since the version asked for.
    pub full: bool,
    /// Every program and partner: on a full read, and on a read of changes when any of them
    /// changed.
    pub owners: Option<(Vec<Program>, Vec<Partner>)>,
    /// Whether anything but links changed (programs, partners, coupons): what the core's
    /// catalog reloads for. True on a full read.
    pub others_changed: bool,
    /// How many link rows follow, at most.
    pub links: usize,
}

/// Receives `CatalogStore::read_links`' answer, in order: the head, each code that was taken
/// out or changed hands, then each link as it is now.
pub trait LinkReader {
    /// What the read found, before anything else.
    fn head(&mut self, head: LinkReadHead);
    /// A code a link had before it changed or went (a read of changes only).
    fn removed(&mut self, code: &str);
    /// A link as it is now.
    fn link(&mut self, row: LinkRow<'_>);
}
