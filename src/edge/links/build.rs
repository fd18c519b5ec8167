//! Making tables: `TableBuilder` for a whole catalog, streamed (one link at a time; no list of
//! the store's rows is kept), and `LinkTable::apply` for a batch of changes, which rebuilds only
//! the shards the batch touches.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::shard::{Entry, Shard};
use super::{LinkSpec, LinkTable, Owners, PartnerEntry, PartnerSpec, ProgramEntry, ProgramSpec};
use crate::edge::checks::ProgramRules;
use crate::model::destination;

type Hasher = foldhash::fast::RandomState;

/// Links per shard that a full build aims at: small enough that rebuilding a shard for one
/// changed link is cheap, large enough that the shard pointers copied per batch are few.
const LINKS_PER_SHARD: usize = 64;

/// Fewest shards a table has.
const SHARDS_MIN: usize = 16;

/// The strings links share (destination prefixes, tag sets), one copy each. The thread that
/// updates a table keeps it from one update to the next, and starts a new one at each full
/// build so strings no link uses any more are let go.
#[derive(Debug, Default)]
pub struct Interner {
    strings: HashSet<Arc<str>, Hasher>,
}

impl Interner {
    fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.strings.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        self.strings.insert(a.clone());
        a
    }

    /// How many distinct strings it holds.
    pub fn len(&self) -> usize {
        self.strings.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.strings.is_empty()
    }
}

fn countries(list: &[String]) -> Box<[[u8; 2]]> {
    list.iter().filter_map(|c| c.as_bytes().try_into().ok()).collect()
}

/// Programs and partners in their slots: `prev`'s slots are kept, new ones appended, and those
/// no longer in the lists emptied.
fn owners(prev: Option<&Owners>, programs: &[ProgramSpec<'_>], partners: &[PartnerSpec<'_>]) -> Owners {
    let mut o = Owners::default();
    if let Some(p) = prev {
        o.program_slots = p.program_slots.clone();
        o.partner_slots = p.partner_slots.clone();
        o.programs = vec![None; p.programs.len()];
        o.partners = vec![None; p.partners.len()];
    }
    for p in programs {
        let slot = *o.program_slots.entry(p.row_id).or_insert_with(|| {
            o.programs.push(None);
            (o.programs.len() - 1) as u32
        });
        let rules = ProgramRules {
            country_allow: countries(p.country_allow),
            country_deny: countries(p.country_deny),
            blocked_action: p.blocked_action,
        };
        o.programs[slot as usize] =
            Some(ProgramEntry { id: Arc::from(p.id), fallback: Arc::from(p.fallback_url), rules: Arc::new(rules), active: p.active });
    }
    for p in partners {
        let slot = *o.partner_slots.entry(p.row_id).or_insert_with(|| {
            o.partners.push(None);
            (o.partners.len() - 1) as u32
        });
        o.partners[slot as usize] = Some(PartnerEntry { row_id: p.row_id, id: Arc::from(p.id), active: p.active });
    }
    o
}

/// Turns link specs into entries, their tails appended to one arena.
struct Drafter<'i> {
    seed: u64,
    interner: &'i mut Interner,
    arena: String,
    utm: String,
}

/// How much of a destination's base is shared with other links: the scheme, the host and the
/// path up to its last `/`, before any query.
fn prefix_len(base: &str) -> usize {
    let path_end = base.find('?').unwrap_or(base.len());
    let authority = base.find("://").map_or(0, |i| i + 3);
    base[authority..path_end].rfind('/').map_or(path_end, |i| authority + i + 1)
}

impl Drafter<'_> {
    /// The link's hash and entry, or `None` (logged if it is a bad destination) when it cannot
    /// be served: its program or partner is unknown, or its destination no longer parses.
    fn draft(&mut self, owners: &Owners, l: &LinkSpec<'_>) -> Option<(u64, Entry)> {
        let program = *owners.program_slots.get(&l.program_row_id)?;
        let partner = *owners.partner_slots.get(&l.partner_row_id)?;
        // The catalog validated this destination at creation; parse again to split it.
        let Ok(dest) = destination::parse(l.destination) else {
            tracing::error!(code = %l.code, "stored destination no longer parses; link skipped");
            return None;
        };
        let base = dest.base;
        let sep = if base.contains('?') {
            if base.ends_with(['?', '&']) {
                ""
            } else {
                "&"
            }
        } else {
            "?"
        };
        self.utm.clear();
        for (k, v) in [("utm_source", l.utm[0]), ("utm_medium", l.utm[1]), ("utm_campaign", l.utm[2])] {
            if !v.is_empty() {
                self.utm.push_str(k);
                self.utm.push('=');
                self.utm.push_str(v);
                self.utm.push('&');
            }
        }
        let cut = prefix_len(base);
        let tail = u32::try_from(self.arena.len()).ok()?;
        self.arena.push_str(&base[cut..]);
        self.arena.push_str(sep);
        self.arena.push_str(dest.fragment);
        let entry = Entry {
            code: Arc::from(l.code),
            origin: self.interner.intern(&base[..cut]),
            utm: self.interner.intern(&self.utm),
            expires_at_ms: l.expires_at_s.map_or(u64::MAX, |s| (s.max(0) as u64).saturating_mul(1000)),
            link_id: l.link_id,
            program,
            partner,
            tail,
            // A destination is at most `DESTINATION_BYTES_MAX` (2048) bytes.
            tail_len: (base.len() - cut + sep.len()) as u16,
            fragment_len: dest.fragment.len() as u16,
            channel: l.channel,
            active: l.active,
            sep: !sep.is_empty(),
        };
        Some((xxhash_rust::xxh3::xxh3_64_with_seed(l.code.as_bytes(), self.seed), entry))
    }
}

/// The shard count for `links` links: a power of two, about `LINKS_PER_SHARD` links each.
fn shard_count(links: usize) -> usize {
    links.div_ceil(LINKS_PER_SHARD).next_power_of_two().max(SHARDS_MIN)
}

/// Builds a table's shards from drafts whose tails are in `arena`. Of two drafts with one
/// code, the later wins.
fn distribute(mut drafts: Vec<(u64, Option<Entry>)>, arena: &str, shards: usize) -> (Box<[Arc<Shard>]>, usize) {
    let mask = shards as u64 - 1;
    let shard = |h: u64| ((h >> 32) & mask) as usize;
    // A counting sort by shard: two passes over the drafts' hashes and one gather, where
    // sorting the drafts themselves would move each of them twenty times.
    let mut starts = vec![0u32; shards + 1];
    let mut bytes = vec![0usize; shards];
    for (h, e) in &drafts {
        starts[shard(*h) + 1] += 1;
        bytes[shard(*h)] += e.as_ref().map_or(0, Entry::bytes);
    }
    for s in 0..shards {
        starts[s + 1] += starts[s];
    }
    let mut next = starts.clone();
    let mut order = vec![0u32; drafts.len()];
    for (i, (h, _)) in drafts.iter().enumerate() {
        let at = &mut next[shard(*h)];
        order[*at as usize] = i as u32;
        *at += 1;
    }
    let mut out = Vec::with_capacity(shards);
    let mut len = 0;
    for s in 0..shards {
        let run = &mut order[starts[s] as usize..starts[s + 1] as usize];
        // Stable, so drafts of one code keep their order and `Shard::build` keeps the last.
        run.sort_by_key(|&i| drafts[i as usize].0 as u32);
        let items = run.iter().filter_map(|&i| {
            let (h, e) = &mut drafts[i as usize];
            Some((*h as u32, e.take()?, arena))
        });
        let shard = Shard::build(items, run.len(), bytes[s]);
        len += shard.len();
        out.push(Arc::new(shard));
    }
    (out.into_boxed_slice(), len)
}

/// Builds a table from a whole catalog: programs and partners first, then each link, streamed.
pub struct TableBuilder<'i> {
    version: i64,
    owners: Owners,
    drafts: Vec<(u64, Option<Entry>)>,
    drafter: Drafter<'i>,
}

impl<'i> TableBuilder<'i> {
    /// A builder for the catalog at `version`; `links_hint` is how many links will follow.
    pub fn new(
        version: i64,
        programs: &[ProgramSpec<'_>],
        partners: &[PartnerSpec<'_>],
        links_hint: usize,
        interner: &'i mut Interner,
    ) -> TableBuilder<'i> {
        TableBuilder {
            version,
            owners: owners(None, programs, partners),
            drafts: Vec::with_capacity(links_hint),
            drafter: Drafter { seed: crate::model::secret::secret_seed(), interner, arena: String::new(), utm: String::new() },
        }
    }

    /// Adds one link; a link that cannot be served is left out.
    pub fn push(&mut self, l: &LinkSpec<'_>) {
        if let Some((h, e)) = self.drafter.draft(&self.owners, l) {
            self.drafts.push((h, Some(e)));
        }
    }

    /// The table.
    pub fn finish(self) -> LinkTable {
        let shards = shard_count(self.drafts.len());
        let (shards, len) = distribute(self.drafts, &self.drafter.arena, shards);
        LinkTable { version: self.version, seed: self.drafter.seed, shards, owners: Arc::new(self.owners), len }
    }
}

/// A batch of catalog changes, which `LinkTable::apply` applies whole.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    /// The catalog version after the batch.
    pub version: i64,
    /// Codes that went or changed hands (a link deleted, or its code changed): each is taken
    /// out before the batch's links are put in.
    pub removed: &'a [String],
    /// Every program and partner, when any of them changed.
    pub owners: Option<(&'a [ProgramSpec<'a>], &'a [PartnerSpec<'a>])>,
}

/// What a batch does to one shard.
#[derive(Default)]
struct Touch<'b> {
    out: Vec<&'b str>,
    put: Vec<(u64, Entry)>,
}

impl LinkTable {
    /// A new table: this one with the batch applied. `links` are the batch's links as they are
    /// now (added or changed); one that cannot be served is taken out. Only the shards the
    /// batch touches are rebuilt; the others are shared with this table.
    pub fn apply<'a>(&self, batch: &Batch<'_>, links: impl IntoIterator<Item = LinkSpec<'a>>, interner: &mut Interner) -> LinkTable {
        let owners = match batch.owners {
            Some((programs, partners)) => Arc::new(owners(Some(&self.owners), programs, partners)),
            None => self.owners.clone(),
        };
        let mut drafter = Drafter { seed: self.seed, interner, arena: String::new(), utm: String::new() };
        let mut touched: HashMap<usize, Touch<'_>, Hasher> = HashMap::default();
        for code in batch.removed {
            touched.entry(self.shard_of(self.hash(code))).or_default().out.push(code);
        }
        // Each link's code is taken out first too, so a link that can no longer be served goes.
        let mut codes: Vec<(usize, Arc<str>)> = Vec::new();
        for l in links {
            let shard = self.shard_of(self.hash(l.code));
            match drafter.draft(&owners, &l) {
                Some(d) => touched.entry(shard).or_default().put.push(d),
                None => codes.push((shard, Arc::from(l.code))),
            }
        }
        for (shard, code) in &codes {
            touched.entry(*shard).or_default().out.push(code);
        }
        let mut shards = self.shards.clone();
        let mut len = self.len;
        for (s, touch) in touched {
            let old = &self.shards[s];
            let gone = |e: &Entry| touch.out.contains(&&*e.code) || touch.put.iter().any(|(_, p)| p.code == e.code);
            let mut items: Vec<(u32, Entry, &str)> =
                old.entries.iter().enumerate().filter(|(_, e)| !gone(e)).map(|(i, e)| (old.key(i), e.clone(), old.arena())).collect();
            items.extend(touch.put.into_iter().map(|(h, e)| (h as u32, e, drafter.arena.as_str())));
            // Stable: of two drafts of one code, the later stays last and wins.
            items.sort_by_key(|(k, _, _)| *k);
            let (n, bytes) = (items.len(), items.iter().map(|(_, e, _)| e.bytes()).sum());
            let shard = Shard::build(items.into_iter(), n, bytes);
            len = len - old.len() + shard.len();
            shards[s] = Arc::new(shard);
        }
        let table = LinkTable { version: batch.version, seed: self.seed, shards, owners, len };
        let want = shard_count(table.len);
        // Shards that grew (or shrank) fourfold since the last build are redistributed.
        if want >= table.shards.len() * 4 || want * 4 <= table.shards.len() {
            return table.reshard(want);
        }
        table
    }

    /// The same links in `shards` shards.
    fn reshard(&self, shards: usize) -> LinkTable {
        let mut arena = String::new();
        let mut drafts = Vec::with_capacity(self.len);
        for shard in self.shards.iter() {
            for e in shard.entries.iter() {
                let (tail, fragment) = shard.tail(e);
                let mut e = e.clone();
                e.tail = arena.len() as u32;
                arena.push_str(tail);
                arena.push_str(fragment);
                drafts.push((self.hash(&e.code), Some(e)));
            }
        }
        let (shards, len) = distribute(drafts, &arena, shards);
        LinkTable { version: self.version, seed: self.seed, shards, owners: self.owners.clone(), len }
    }
}
