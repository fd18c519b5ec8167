//! The attribution index: clicks by id and touches by visitor, in memory, bounded by config.
//!
//! Clicks live in a ring of fixed-size 64-byte records (one cache line) in insertion order;
//! when the ring is full the oldest click is evicted. A record holds the click id, timestamp,
//! verdict, reasons, channel, an interned (program, partner, link) and its visitor's slot.
//!
//! - By id: a fixed-size `table::Table` from a keyed 64-bit hash of the click id to the ring
//!   position; the full id in the record confirms every match.
//! - By visitor: each visitor has its newest position and a count of its clicks still in the
//!   ring; each record links to the same visitor's previous record. Eviction is oldest first
//!   overall, hence oldest first per visitor, so the live records of a visitor are always the
//!   first `len` links of its chain, and a link into an evicted (maybe reused) slot is never
//!   followed. A walk stops after `visitor_touches_max` links: older touches are dropped.
//! - (program, partner, link) triples are interned with reference counts and freed when their
//!   last click is evicted, as are visitors, so every table is bounded by `clicks_max`.
//!
//! The id and visitor tables are allocated for `clicks_max` up front and never grow or rehash
//! (the pages are touched only as they fill). Hashes are keyed with a per-process secret,
//! since visitor ids come from cookies a client controls.

mod slots;
mod table;

use std::collections::HashMap;
use std::sync::Arc;

use slots::Slots;
use table::Table;

use crate::events::ClickEvent;
use crate::model::Channel;
use crate::model::{ClickId, VisitorId, CLICK_ID_BYTES};
use crate::model::{Reason, Reasons, Verdict};

/// One click as the index keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexedClick {
    pub click_id: ClickId,
    pub ts_ms: u64,
    pub program: Arc<str>,
    pub partner: Arc<str>,
    pub link: Arc<str>,
    pub channel: Channel,
    pub verdict: Verdict,
    pub reasons: Reasons,
    pub visitor_id: VisitorId,
}

/// Inserts warmed at a time: enough loads in flight to hide misses, few enough that what they
/// bring in is still in L1/L2 when the inserts run.
const WARM_LEN: usize = 64;

/// Bytes of one ring record.
pub const RECORD_BYTES: usize = std::mem::size_of::<Record>();

const _: () = assert!(Reason::ALL.len() <= 16, "reasons are packed into a u16");
const _: () = assert!(RECORD_BYTES == 64, "a record is one cache line");

/// A click in the ring.
#[derive(Clone, Copy)]
#[repr(align(64))]
struct Record {
    id: [u8; CLICK_ID_BYTES],
    channel: u8,
    verdict: u8,
    /// `Reasons` as bits `1 << Reason as u8`.
    reasons: u16,
    ts_ms: u64,
    /// Slot in `sources`.
    source: u32,
    /// Slot in `visitors`.
    visitor: u32,
    /// Ring position of the same visitor's previous click; only meaningful within the
    /// visitor's `len` (see the module docs).
    prev: u32,
}

/// A visitor with clicks in the ring.
struct Visitor {
    id: VisitorId,
    /// Ring position of its newest click.
    newest: u32,
    /// Its clicks still in the ring.
    len: u32,
}

/// An interned (program, partner, link), counted by the records that use it.
struct Source {
    key: SourceKey,
    refs: u32,
}

type SourceKey = (Arc<str>, Arc<str>, Arc<str>);

/// Heap bytes of a `HashMap` with `capacity`: hashbrown keeps buckets at load factor 7/8,
/// each an entry plus one control byte.
fn map_bytes<K, V>(capacity: usize) -> usize {
    if capacity == 0 {
        return 0;
    }
    (capacity * 8 / 7).next_power_of_two() * (std::mem::size_of::<(K, V)>() + 1)
}

/// Clicks by id and touches by visitor, bounded.
pub struct ClickIndex {
    clicks_max: usize,
    visitor_touches_max: usize,
    ring: Vec<Record>,
    /// Position of the oldest record once the ring is full (the next to be overwritten).
    head: usize,
    /// Keys the id and visitor hashes.
    seed: u64,
    by_id: Table,
    visitors: Slots<Visitor>,
    by_visitor: Table,
    sources: Slots<Source>,
    by_source: HashMap<SourceKey, u32, foldhash::fast::RandomState>,
    evictions: u64,
}

impl ClickIndex {
    /// Holds at most `clicks_max` clicks and `visitor_touches_max` touches per visitor.
    pub fn new(clicks_max: usize, visitor_touches_max: usize) -> ClickIndex {
        // Positions are u32 and the tables take up to 2^32 slots at two per entry.
        let clicks_max = clicks_max.clamp(1, 1 << 31);
        ClickIndex {
            clicks_max,
            visitor_touches_max: visitor_touches_max.max(1),
            ring: Vec::with_capacity(clicks_max),
            head: 0,
            seed: crate::model::secret_seed(),
            by_id: Table::new(clicks_max),
            visitors: Slots::new(),
            by_visitor: Table::new(clicks_max),
            sources: Slots::new(),
            by_source: HashMap::default(),
            evictions: 0,
        }
    }

    /// A new, empty index with this one's limits: what a rebuild from the log (after a
    /// privacy erase rewrote it) fills.
    pub fn empty_like(&self) -> ClickIndex {
        ClickIndex::new(self.clicks_max, self.visitor_touches_max)
    }

    fn id_key(&self, id: &[u8; CLICK_ID_BYTES]) -> u64 {
        xxhash_rust::xxh3::xxh3_64_with_seed(id, self.seed)
    }

    fn visitor_key(&self, v: &VisitorId) -> u64 {
        xxhash_rust::xxh3::xxh3_64_with_seed(&v.0, self.seed)
    }

    fn visitor_slot(&self, key: u64, v: &VisitorId) -> Option<u32> {
        self.by_visitor.find(key, |slot| self.visitors.get(slot).id == *v)
    }

    /// Adds a click; false when its id is already held.
    pub fn insert(&mut self, ev: &ClickEvent) -> bool {
        let keys = (self.id_key(&ev.click_id.0), self.visitor_key(&ev.visitor_id));
        self.insert_keyed(ev, keys)
    }

    /// Adds clicks in order, as `insert` does one by one, calling `each` with each click and
    /// whether it was added. Faster for many: see `warm`.
    pub fn insert_batch<'a>(&mut self, evs: &[&'a ClickEvent], mut each: impl FnMut(&'a ClickEvent, bool)) {
        let mut keys = [(0u64, 0u64); WARM_LEN];
        for chunk in evs.chunks(WARM_LEN) {
            self.warm(chunk, &mut keys);
            for (ev, k) in chunk.iter().zip(keys) {
                each(ev, self.insert_keyed(ev, k));
            }
        }
    }

    /// Computes the chunk's hash keys and reads, without using them, the table slots, visitor
    /// entries and records its inserts (and the evictions they cause) are about to touch. The
    /// tables are far larger than the caches, so each insert would otherwise wait on several
    /// misses in a row; these loads are independent of each other, so the CPU overlaps them.
    fn warm(&self, chunk: &[&ClickEvent], keys: &mut [(u64, u64); WARM_LEN]) {
        let mut sink = 0u64;
        let full = self.ring.len() == self.clicks_max;
        for (i, ev) in chunk.iter().enumerate() {
            let k = (self.id_key(&ev.click_id.0), self.visitor_key(&ev.visitor_id));
            keys[i] = k;
            sink ^= self.by_id.home_slot(k.0);
            let slot = self.by_visitor.home_slot(k.1) as u32;
            if let Some(Some(v)) = self.visitors.items.get(slot.wrapping_sub(1) as usize) {
                sink ^= u64::from(v.len);
            }
            if full {
                let rec = &self.ring[(self.head + i) % self.clicks_max];
                sink ^= self.by_id.home_slot(self.id_key(&rec.id));
                if let Some(Some(v)) = self.visitors.items.get(rec.visitor as usize) {
                    // Its last click leaving: the visitor comes out of the visitor table too.
                    sink ^= if v.len == 1 { self.by_visitor.home_slot(self.visitor_key(&v.id)) } else { u64::from(v.len) };
                }
            }
        }
        std::hint::black_box(sink);
    }

    fn insert_keyed(&mut self, ev: &ClickEvent, (key, vkey): (u64, u64)) -> bool {
        if self.position_by_key(key, &ev.click_id).is_some() {
            return false;
        }
        let pos = if self.ring.len() < self.clicks_max {
            self.ring.push(Record {
                id: [0; CLICK_ID_BYTES],
                channel: 0,
                verdict: 0,
                reasons: 0,
                ts_ms: 0,
                source: 0,
                visitor: 0,
                prev: 0,
            });
            self.ring.len() - 1
        } else {
            let pos = self.head;
            self.evict(pos);
            self.head = (self.head + 1) % self.clicks_max;
            pos
        };
        let source = self.intern(ev);
        let visitor = match self.visitor_slot(vkey, &ev.visitor_id) {
            Some(slot) => slot,
            None => {
                let slot = self.visitors.insert(Visitor { id: ev.visitor_id, newest: u32::MAX, len: 0 });
                self.by_visitor.insert(vkey, slot);
                slot
            }
        };
        let v = self.visitors.get_mut(visitor);
        let prev = if v.len > 0 { v.newest } else { u32::MAX };
        (v.newest, v.len) = (pos as u32, v.len + 1);
        self.ring[pos] = Record {
            id: ev.click_id.0,
            channel: channel_code(ev.channel),
            verdict: ev.verdict as u8,
            reasons: ev.reasons.iter().fold(0, |bits, r| bits | 1 << r as u8),
            ts_ms: ev.ts_ms,
            source,
            visitor,
            prev,
        };
        self.by_id.insert(key, pos as u32);
        debug_assert!(self.ring.len() <= self.clicks_max && self.by_id.len() == self.ring.len());
        debug_assert!(self.by_visitor.len() == self.visitors.len() && self.visitors.len() <= self.ring.len());
        true
    }

    /// Drops the record at `pos` from the id table, its visitor and its source.
    fn evict(&mut self, pos: usize) {
        let rec = self.ring[pos];
        let removed = self.by_id.remove(self.id_key(&rec.id), pos as u32);
        debug_assert!(removed, "every record is in the id table");
        let v = self.visitors.get_mut(rec.visitor);
        debug_assert!(v.len > 0);
        v.len -= 1;
        if v.len == 0 {
            let v = self.visitors.remove(rec.visitor);
            let removed = self.by_visitor.remove(self.visitor_key(&v.id), rec.visitor);
            debug_assert!(removed, "every visitor is in the visitor table");
        }
        let s = self.sources.get_mut(rec.source);
        s.refs -= 1;
        if s.refs == 0 {
            let s = self.sources.remove(rec.source);
            self.by_source.remove(&s.key);
        }
        self.evictions += 1;
    }

    /// The slot of the event's (program, partner, link), with one more reference.
    fn intern(&mut self, ev: &ClickEvent) -> u32 {
        let key = (ev.program.clone(), ev.partner.clone(), ev.link.clone());
        let slot = match self.by_source.get(&key) {
            Some(&slot) => slot,
            None => {
                let slot = self.sources.insert(Source { key: key.clone(), refs: 0 });
                self.by_source.insert(key, slot);
                slot
            }
        };
        self.sources.get_mut(slot).refs += 1;
        slot
    }

    /// Whether a click id is held.
    pub fn contains(&self, id: &ClickId) -> bool {
        self.position(id).is_some()
    }

    fn position(&self, id: &ClickId) -> Option<usize> {
        self.position_by_key(self.id_key(&id.0), id)
    }

    fn position_by_key(&self, key: u64, id: &ClickId) -> Option<usize> {
        self.by_id.find(key, |pos| self.ring[pos as usize].id == id.0).map(|pos| pos as usize)
    }

    /// One click.
    pub fn click(&self, id: &ClickId) -> Option<IndexedClick> {
        self.position(id).map(|pos| self.expand(&self.ring[pos]))
    }

    fn expand(&self, rec: &Record) -> IndexedClick {
        let (program, partner, link) = self.sources.get(rec.source).key.clone();
        let mut reasons = Reasons::default();
        Reason::ALL.into_iter().filter(|r| rec.reasons & 1 << *r as u8 != 0).for_each(|r| reasons.insert(r));
        IndexedClick {
            click_id: ClickId(rec.id),
            ts_ms: rec.ts_ms,
            program,
            partner,
            link,
            channel: CHANNELS[rec.channel as usize],
            verdict: Verdict::ALL[rec.verdict as usize],
            reasons,
            visitor_id: self.visitors.get(rec.visitor).id,
        }
    }

    /// A visitor's touches with `since_ms <= ts_ms <= until_ms`, oldest first. Every touch is
    /// returned, valid or not: the caller says why a flagged one does not count.
    pub fn visitor_touches(&self, visitor: &VisitorId, since_ms: u64, until_ms: u64) -> Vec<IndexedClick> {
        let Some(slot) = self.visitor_slot(self.visitor_key(visitor), visitor) else { return Vec::new() };
        let v = self.visitors.get(slot);
        let mut out = Vec::new();
        let mut pos = v.newest;
        for _ in 0..(v.len as usize).min(self.visitor_touches_max) {
            let rec = &self.ring[pos as usize];
            debug_assert_eq!(rec.visitor, slot, "a visitor's chain stays within its own records");
            if (since_ms..=until_ms).contains(&rec.ts_ms) {
                out.push(self.expand(rec));
            }
            pos = rec.prev;
        }
        // The chain runs newest-inserted first; batches from several edges may interleave
        // slightly out of time order, so sort (stably) by time.
        out.reverse();
        out.sort_by_key(|c| c.ts_ms);
        out
    }

    /// Clicks held.
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// Whether no click is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Visitors with at least one click held.
    pub fn visitors(&self) -> usize {
        self.visitors.len()
    }

    /// Interned (program, partner, link) triples held.
    pub fn sources(&self) -> usize {
        self.sources.len()
    }

    /// Clicks evicted to stay inside `clicks_max`, since creation.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// An estimate of the heap the index holds: tables at their capacity, plus the interned
    /// strings (the allocator's own overhead is not counted).
    pub fn heap_bytes(&self) -> usize {
        let strings: usize = self.sources.items.iter().flatten().map(|s| 3 * 16 + s.key.0.len() + s.key.1.len() + s.key.2.len()).sum();
        self.ring.capacity() * RECORD_BYTES
            + self.by_id.heap_bytes()
            + self.visitors.heap_bytes()
            + self.by_visitor.heap_bytes()
            + self.sources.heap_bytes()
            + map_bytes::<SourceKey, u32>(self.by_source.capacity())
            + strings
    }
}

/// Channels by their code in a record.
const CHANNELS: [Channel; 6] = [Channel::Web, Channel::Social, Channel::Email, Channel::Qr, Channel::Offline, Channel::Marketplace];

/// A channel's code in a record; exhaustive, so a new channel fails to compile until added.
fn channel_code(c: Channel) -> u8 {
    let code = match c {
        Channel::Web => 0,
        Channel::Social => 1,
        Channel::Email => 2,
        Channel::Qr => 3,
        Channel::Offline => 4,
        Channel::Marketplace => 5,
    };
    debug_assert_eq!(CHANNELS[code as usize], c);
    code
}

#[cfg(test)]
pub(crate) mod tests;
