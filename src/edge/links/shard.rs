//! One shard of the link table: a few dozen links sorted by their code's hash, with the bytes
//! of their destinations' tails in one arena. A shard is built once and never changed; an
//! update builds a new one.

use std::sync::Arc;

use crate::model::Channel;

/// One link, inline but for its code and the interned strings it shares with other links.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub code: Arc<str>,
    /// The destination's scheme, host and directory, interned.
    pub origin: Arc<str>,
    /// `utm_source=...&utm_medium=...&utm_campaign=...&` (the tags set), interned; may be empty.
    pub utm: Arc<str>,
    pub expires_at_ms: u64,
    pub link_id: u32,
    /// Slots in the table's `Owners`.
    pub program: u32,
    pub partner: u32,
    /// Where the destination's tail (then its separator, then its fragment) starts in the
    /// arena of the shard, or of the builder while the entry is a draft.
    pub tail: u32,
    /// The tail's length with its separator.
    pub tail_len: u16,
    pub fragment_len: u16,
    pub channel: Channel,
    /// The link's own status; its program's and partner's are looked up when it is served.
    pub active: bool,
    /// Whether the tail ends with a `?` or `&` for the tags and click id that follow.
    pub sep: bool,
}

impl Entry {
    /// The arena bytes the entry owns: its tail, separator and fragment.
    pub fn bytes(&self) -> usize {
        usize::from(self.tail_len) + usize::from(self.fragment_len)
    }
}

/// Links sorted by `keys` (the low half of each code's hash), with their tails in `arena`.
#[derive(Debug, Default)]
pub(super) struct Shard {
    keys: Box<[u32]>,
    pub entries: Box<[Entry]>,
    arena: Box<str>,
}

impl Shard {
    /// Builds a shard from `n` entries sorted by key, each with the arena its tail is in now.
    /// `arena_len` is the sum of their `bytes()`, so the arena is allocated once. Of two
    /// entries with one code, the later is kept.
    pub fn build<'a>(items: impl Iterator<Item = (u32, Entry, &'a str)>, n: usize, arena_len: usize) -> Shard {
        let mut keys: Vec<u32> = Vec::with_capacity(n);
        let mut entries: Vec<Entry> = Vec::with_capacity(n);
        let mut arena = String::with_capacity(arena_len);
        for (key, mut e, from) in items {
            let start = e.tail as usize;
            e.tail = arena.len() as u32;
            arena.push_str(from.get(start..start + e.bytes()).unwrap_or(""));
            let same = (0..keys.len()).rev().take_while(|&i| keys[i] == key).find(|&i| entries[i].code == e.code);
            match same {
                Some(i) => entries[i] = e,
                None => {
                    keys.push(key);
                    entries.push(e);
                }
            }
        }
        debug_assert!(keys.windows(2).all(|w| w[0] <= w[1]), "a shard's keys are sorted");
        Shard { keys: keys.into_boxed_slice(), entries: entries.into_boxed_slice(), arena: arena.into_boxed_str() }
    }

    /// The index of the link with this key and code.
    pub fn find(&self, key: u32, code: &str) -> Option<usize> {
        let from = self.keys.partition_point(|k| *k < key);
        (from..self.keys.len()).take_while(|&i| self.keys[i] == key).find(|&i| &*self.entries[i].code == code)
    }

    /// The key of the entry at `i`.
    pub fn key(&self, i: usize) -> u32 {
        self.keys[i]
    }

    /// An entry's tail (with its separator) and fragment.
    pub fn tail(&self, e: &Entry) -> (&str, &str) {
        let start = e.tail as usize;
        let mid = start + usize::from(e.tail_len);
        let end = mid + usize::from(e.fragment_len);
        (self.arena.get(start..mid).unwrap_or(""), self.arena.get(mid..end).unwrap_or(""))
    }

    /// The whole arena, which every entry's `tail` points into.
    pub fn arena(&self) -> &str {
        &self.arena
    }

    /// How many links the shard holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}
