//! The link table: every link with its redirect strings precomputed, in a two-level table of
//! small shards. A request hashes its code once, picks a shard and binary-searches it; it takes
//! no lock and touches no database.
//!
//! A table is never changed in place. `LinkTable::apply` makes a new one that shares every
//! shard the batch did not touch and rebuilds the few it did, so a change to k links costs
//! O(k) shard rebuilds plus one copy of the shard pointers; the edge swaps the new table in
//! whole (`ArcSwap`), so a request sees a batch entirely or not at all.
//!
//! A link is kept compact: its code, ids and status inline, its destination split into an
//! interned prefix (scheme, host and directory, which links share) and its own tail in the
//! shard's arena, and its UTM tags as one interned `utm_...&` string. The `Location` prefix is
//! those three slices, copied one after another.

mod build;
mod shard;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;

use super::checks::ProgramRules;
use crate::model::{BlockedAction, Channel};
pub use build::{Batch, Interner, TableBuilder};
use shard::{Entry, Shard};

/// A program as the link table needs it.
#[derive(Debug, Clone, Copy)]
pub struct ProgramSpec<'a> {
    /// The program's row in the store, which its links name.
    pub row_id: i64,
    pub id: &'a str,
    pub fallback_url: &'a str,
    pub country_allow: &'a [String],
    pub country_deny: &'a [String],
    pub blocked_action: BlockedAction,
    /// False when the program is paused or expired.
    pub active: bool,
}

/// A partner as the link table needs it.
#[derive(Debug, Clone, Copy)]
pub struct PartnerSpec<'a> {
    /// The partner's row in the store: what its links name and its click ids carry.
    pub row_id: i64,
    pub id: &'a str,
    /// False when the partner is paused or expired.
    pub active: bool,
}

/// A link as the catalog stores it.
#[derive(Debug, Clone, Copy)]
pub struct LinkSpec<'a> {
    /// The link's numeric id, carried in its click ids.
    pub link_id: u32,
    pub program_row_id: i64,
    pub partner_row_id: i64,
    pub code: &'a str,
    /// A destination that passed `destination::check` when the link was created.
    pub destination: &'a str,
    pub channel: Channel,
    /// `utm_source`, `utm_medium`, `utm_campaign`, checked at creation; empty ones are left out.
    pub utm: [&'a str; 3],
    /// Unix seconds after which the link counts as expired.
    pub expires_at_s: Option<i64>,
    /// False when the link is paused or expired.
    pub active: bool,
}

/// A link as the edge serves it: a view into the table, copied out by `LinkTable::get`.
#[derive(Debug, Clone, Copy)]
pub struct EdgeLink<'t> {
    pub link_id: u32,
    /// The partner's numeric id, carried in click ids.
    pub partner_id: u32,
    pub code: &'t Arc<str>,
    pub program: &'t Arc<str>,
    pub partner: &'t Arc<str>,
    pub channel: Channel,
    /// False when the link, its program or its partner is paused or expired.
    pub active: bool,
    /// Unix ms after which the link counts as expired.
    pub expires_at_ms: u64,
    /// `#fragment` or empty, appended last.
    pub fragment: &'t str,
    pub fallback: &'t Arc<str>,
    pub rules: &'t ProgramRules,
    /// The interned start of the destination, its own tail (with `?` or `&` when tags follow)
    /// and the interned `utm_...&` tags.
    origin: &'t str,
    tail: &'t str,
    /// Whether `tail` ends with the separator that comes before the tags and the click id.
    sep: bool,
    utm: &'t str,
}

impl EdgeLink<'_> {
    /// The length of `destination[?&]utm_...&cgid=`, the longer of the two prefixes.
    pub fn location_len(&self) -> usize {
        self.origin.len() + self.tail.len() + self.utm.len() + "cgid=".len()
    }

    /// Appends `destination[?&]utm_...&cgid=`: the click id follows.
    pub fn push_location_prefix(&self, out: &mut String) {
        out.push_str(self.origin);
        out.push_str(self.tail);
        out.push_str(self.utm);
        out.push_str("cgid=");
    }

    /// Appends `destination[?&]utm_...` without a click id (blocked clicks).
    pub fn push_location_plain(&self, out: &mut String) {
        out.push_str(self.origin);
        if self.utm.is_empty() {
            let sep = usize::from(self.sep);
            out.push_str(self.tail.get(..self.tail.len().saturating_sub(sep)).unwrap_or(self.tail));
        } else {
            out.push_str(self.tail);
            out.push_str(self.utm.strip_suffix('&').unwrap_or(self.utm));
        }
    }
}

/// A program's share of every link of it.
#[derive(Debug, Clone)]
struct ProgramEntry {
    id: Arc<str>,
    fallback: Arc<str>,
    rules: Arc<ProgramRules>,
    active: bool,
}

/// A partner's share of every link of theirs.
#[derive(Debug, Clone)]
struct PartnerEntry {
    row_id: i64,
    id: Arc<str>,
    active: bool,
}

/// Programs and partners by slot: a link names its program's and partner's slots, so a
/// program paused changes this, not its links. Slots stay put across updates.
#[derive(Debug, Default)]
struct Owners {
    programs: Vec<Option<ProgramEntry>>,
    partners: Vec<Option<PartnerEntry>>,
    program_slots: HashMap<i64, u32, foldhash::fast::RandomState>,
    partner_slots: HashMap<i64, u32, foldhash::fast::RandomState>,
}

/// All links by code, at one catalog version.
#[derive(Debug)]
pub struct LinkTable {
    /// The catalog version the table reflects (the store's change log).
    version: i64,
    /// The secret seed of the code hash, kept by every table made from this one.
    seed: u64,
    /// A power of two; a code's shard is the high half of its hash modulo this.
    shards: Box<[Arc<Shard>]>,
    owners: Arc<Owners>,
    len: usize,
}

impl Default for LinkTable {
    fn default() -> Self {
        TableBuilder::new(0, &[], &[], 0, &mut Interner::default()).finish()
    }
}

impl LinkTable {
    /// Builds the table from the catalog's programs, partners and links at `version`. Links
    /// whose program or partner is unknown are left out; a destination that no longer parses
    /// is logged and left out.
    pub fn build<'a>(
        version: i64,
        programs: &[ProgramSpec<'_>],
        partners: &[PartnerSpec<'_>],
        links: impl IntoIterator<Item = LinkSpec<'a>>,
    ) -> LinkTable {
        let mut interner = Interner::default();
        let mut b = TableBuilder::new(version, programs, partners, 0, &mut interner);
        for l in links {
            b.push(&l);
        }
        b.finish()
    }

    fn hash(&self, code: &str) -> u64 {
        xxhash_rust::xxh3::xxh3_64_with_seed(code.as_bytes(), self.seed)
    }

    fn shard_of(&self, hash: u64) -> usize {
        (hash >> 32) as usize & (self.shards.len() - 1)
    }

    /// The link for a code.
    pub fn get(&self, code: &str) -> Option<EdgeLink<'_>> {
        let hash = self.hash(code);
        let shard = &self.shards[self.shard_of(hash)];
        let at = shard.find(hash as u32, code)?;
        self.view(shard, &shard.entries[at])
    }

    fn view<'t>(&'t self, shard: &'t Shard, e: &'t Entry) -> Option<EdgeLink<'t>> {
        let program = self.owners.programs.get(e.program as usize)?.as_ref()?;
        let partner = self.owners.partners.get(e.partner as usize)?.as_ref()?;
        let (tail, fragment) = shard.tail(e);
        Some(EdgeLink {
            link_id: e.link_id,
            partner_id: partner.row_id as u32,
            code: &e.code,
            program: &program.id,
            partner: &partner.id,
            channel: e.channel,
            active: e.active && program.active && partner.active,
            expires_at_ms: e.expires_at_ms,
            fragment,
            fallback: &program.fallback,
            rules: &program.rules,
            origin: &e.origin,
            tail,
            sep: e.sep,
            utm: &e.utm,
        })
    }

    /// Every link the edge would serve, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = EdgeLink<'_>> {
        self.shards.iter().flat_map(move |s| s.entries.iter().filter_map(move |e| self.view(s, e)))
    }

    /// The catalog version the table reflects.
    pub fn version(&self) -> i64 {
        self.version
    }

    /// How many links the table holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many shards the table has (a power of two).
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }
}
