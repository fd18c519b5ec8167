//! The attribution index. Skeleton: the implementation lands with the ingest work.

use std::sync::Arc;

use crate::edge::checks::{Reasons, Verdict};
use crate::edge::click_id::{ClickId, VisitorId};
use crate::events::ClickEvent;
use crate::store::Channel;

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

/// Clicks by id and touches by visitor, bounded.
pub struct ClickIndex {}

impl ClickIndex {
    /// Holds at most `clicks_max` clicks and `visitor_touches_max` touches per visitor.
    pub fn new(clicks_max: usize, visitor_touches_max: usize) -> ClickIndex {
        let _ = (clicks_max, visitor_touches_max);
        unimplemented!()
    }

    /// Adds a click; false when its id is already held.
    pub fn insert(&mut self, ev: &ClickEvent) -> bool {
        let _ = ev;
        unimplemented!()
    }

    /// Whether a click id is held.
    pub fn contains(&self, id: &ClickId) -> bool {
        let _ = id;
        unimplemented!()
    }

    /// One click.
    pub fn click(&self, id: &ClickId) -> Option<IndexedClick> {
        let _ = id;
        unimplemented!()
    }

    /// A visitor's touches with `since_ms <= ts_ms <= until_ms`, oldest first.
    pub fn visitor_touches(&self, visitor: &VisitorId, since_ms: u64, until_ms: u64) -> Vec<IndexedClick> {
        let _ = (visitor, since_ms, until_ms);
        unimplemented!()
    }

    /// Clicks held.
    pub fn len(&self) -> usize {
        unimplemented!()
    }

    /// Whether no click is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
