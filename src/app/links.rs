//! The edge's link table from the store: read whole at start and on SIGHUP, streamed row by
//! row into the table's builder; then, at each reload interval, only the changes since the
//! table's version, from the store's change log, applied as one batch.

use crate::catalog::{CatalogError, CatalogStore, LinkReadHead, LinkReader, LinkRow, Partner, Program};
use crate::edge::links::{Batch, Interner, LinkSpec, LinkTable, PartnerSpec, ProgramSpec, TableBuilder};
use crate::model::Status;

fn program_specs(programs: &[Program]) -> Vec<ProgramSpec<'_>> {
    programs
        .iter()
        .map(|p| ProgramSpec {
            row_id: p.row_id,
            id: &p.spec.id,
            fallback_url: &p.spec.fallback_url,
            country_allow: &p.spec.country_allow,
            country_deny: &p.spec.country_deny,
            blocked_action: p.spec.blocked_action,
            active: p.status == Status::Active,
        })
        .collect()
}

fn partner_specs(partners: &[Partner]) -> Vec<PartnerSpec<'_>> {
    partners.iter().map(|p| PartnerSpec { row_id: p.row_id, id: &p.spec.id, active: p.status == Status::Active }).collect()
}

fn link_spec<'a>(r: &LinkRow<'a>) -> LinkSpec<'a> {
    LinkSpec {
        link_id: r.row_id as u32,
        program_row_id: r.program_row_id,
        partner_row_id: r.partner_row_id,
        code: r.code,
        destination: r.destination,
        channel: r.channel,
        utm: r.utm,
        expires_at_s: r.expires_at,
        active: r.status == Status::Active,
    }
}

/// A full read, fed straight into the table's builder.
struct FullRead<'i> {
    interner: Option<&'i mut Interner>,
    builder: Option<TableBuilder<'i>>,
}

impl LinkReader for FullRead<'_> {
    fn head(&mut self, head: LinkReadHead) {
        let (programs, partners) = head.owners.unwrap_or_default();
        if let Some(interner) = self.interner.take() {
            let (programs, partners) = (program_specs(&programs), partner_specs(&partners));
            self.builder = Some(TableBuilder::new(head.version, &programs, &partners, head.links, interner));
        }
    }

    fn removed(&mut self, _code: &str) {}

    fn link(&mut self, row: LinkRow<'_>) {
        if let Some(b) = &mut self.builder {
            b.push(&link_spec(&row));
        }
    }
}

/// A link as a read of changes hands it over, kept until the batch is applied.
struct OwnedLink {
    ids: [i64; 3],
    channel: crate::model::Channel,
    expires_at: Option<i64>,
    status: Status,
    /// `code`, `destination` and the three tags, one after another.
    text: String,
    ends: [usize; 5],
}

impl OwnedLink {
    fn new(r: &LinkRow<'_>) -> OwnedLink {
        let mut text = String::new();
        let mut ends = [0; 5];
        for (i, s) in [r.code, r.destination, r.utm[0], r.utm[1], r.utm[2]].into_iter().enumerate() {
            text.push_str(s);
            ends[i] = text.len();
        }
        OwnedLink {
            ids: [r.row_id, r.program_row_id, r.partner_row_id],
            channel: r.channel,
            expires_at: r.expires_at,
            status: r.status,
            text,
            ends,
        }
    }

    fn spec(&self) -> LinkSpec<'_> {
        let part = |i: usize| self.text.get(if i == 0 { 0 } else { self.ends[i - 1] }..self.ends[i]).unwrap_or("");
        link_spec(&LinkRow {
            row_id: self.ids[0],
            program_row_id: self.ids[1],
            partner_row_id: self.ids[2],
            code: part(0),
            destination: part(1),
            channel: self.channel,
            utm: [part(2), part(3), part(4)],
            expires_at: self.expires_at,
            status: self.status,
        })
    }
}

/// A read of the changes since a version, kept whole so the batch is applied at once.
#[derive(Default)]
struct ChangeRead {
    head: Option<LinkReadHead>,
    removed: Vec<String>,
    links: Vec<OwnedLink>,
}

impl LinkReader for ChangeRead {
    fn head(&mut self, head: LinkReadHead) {
        self.links.reserve(head.links);
        self.head = Some(head);
    }

    fn removed(&mut self, code: &str) {
        self.removed.push(code.to_string());
    }

    fn link(&mut self, row: LinkRow<'_>) {
        self.links.push(OwnedLink::new(&row));
    }
}

/// What a refresh did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refreshed {
    /// The table was read whole, not updated.
    pub full: bool,
    /// Links added, changed or removed (all of them on a full read).
    pub links: usize,
    /// Programs, partners or coupons changed too: the core's catalog reloads.
    pub others_changed: bool,
}

/// Keeps the edge's link table up to date from the store; the one thread that refreshes the
/// table owns it, with the strings the table's links share.
#[derive(Debug, Default)]
pub struct LinkUpdater {
    interner: Interner,
}

impl LinkUpdater {
    /// Reads every link and builds a new table, with new shared strings.
    pub fn load(&mut self, store: &(impl CatalogStore + ?Sized)) -> Result<LinkTable, CatalogError> {
        self.load_with(|reader| store.read_links(None, 0, reader).map(|_| ()))
    }

    /// Builds a new table, with new shared strings, from what `read` hands the reader it is
    /// given: a full read of a store, or of the snapshot on disk (`snapshot::read`).
    pub fn load_with(&mut self, read: impl FnOnce(&mut dyn LinkReader) -> Result<(), CatalogError>) -> Result<LinkTable, CatalogError> {
        self.interner = Interner::default();
        let mut full = FullRead { interner: Some(&mut self.interner), builder: None };
        read(&mut full)?;
        let builder = full.builder.ok_or_else(|| CatalogError::Storage("the store's read of links handed over no head".into()))?;
        Ok(builder.finish())
    }

    /// The table with the store's changes since `current`'s version applied, or `None` when
    /// nothing changed. Reads every link again when `forced` (SIGHUP), when the change log no
    /// longer reaches back to the table's version, or when more than a quarter of the table
    /// changed (rebuilding is then as cheap, and it redistributes the shards).
    pub fn refresh(
        &mut self,
        store: &(impl CatalogStore + ?Sized),
        current: &LinkTable,
        forced: bool,
    ) -> Result<Option<(LinkTable, Refreshed)>, CatalogError> {
        let full = |me: &mut Self| -> Result<Option<(LinkTable, Refreshed)>, CatalogError> {
            let t = me.load(store)?;
            let links = t.len();
            Ok(Some((t, Refreshed { full: true, links, others_changed: true })))
        };
        if forced {
            return full(self);
        }
        if store.version()? == current.version() {
            return Ok(None);
        }
        let mut read = ChangeRead::default();
        let changes_max = (current.len() / 4).max(10_000);
        if !store.read_links(Some(current.version()), changes_max, &mut read)? {
            return full(self);
        }
        let Some(head) = read.head else { return Ok(None) };
        if head.version == current.version() {
            return Ok(None);
        }
        let owned = head.owners.as_ref().map(|(p, q)| (program_specs(p), partner_specs(q)));
        let batch = Batch { version: head.version, removed: &read.removed, owners: owned.as_ref().map(|(p, q)| (&p[..], &q[..])) };
        let table = current.apply(&batch, read.links.iter().map(OwnedLink::spec), &mut self.interner);
        let links = read.links.len() + read.removed.len();
        Ok(Some((table, Refreshed { full: false, links, others_changed: head.others_changed })))
    }
}

/// Builds the edge's link table from the store, in one streamed read.
pub fn load_links(store: &(impl CatalogStore + ?Sized)) -> Result<LinkTable, CatalogError> {
    LinkUpdater::default().load(store)
}

#[cfg(test)]
mod tests;
