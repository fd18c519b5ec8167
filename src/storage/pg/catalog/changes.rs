//! The catalog's change log on PostgreSQL (migration 0006): the version, the edge's reads of
//! links (all of them, or those changed since a version), each in one repeatable-read
//! snapshot, the log's trimming, and the notifications its triggers send.

use std::time::Duration;

use ::postgres::fallible_iterator::FallibleIterator;
use ::postgres::{Client, GenericClient, IsolationLevel};

use super::{parsed, partner_owners, programs, PgCatalog};
use crate::catalog::{CatalogError, LinkReadHead, LinkReader, LinkRow};
use crate::model::{Channel, Status};

/// The last change's `seq`, or what trimming dropped when the log holds nothing newer: the
/// version never goes back.
pub(super) fn version(c: &mut impl GenericClient) -> Result<i64, CatalogError> {
    let sql = "SELECT greatest((SELECT coalesce(max(seq), 0) FROM catalog_changes), (SELECT seq FROM catalog_trimmed))";
    Ok(c.query_one(sql, &[])?.try_get(0)?)
}

const LINK_COLUMNS: &str = "SELECT id, program_id, partner_id, code, destination, channel, utm_source, utm_medium, utm_campaign,
    expires_at, status FROM links";

/// The most links a full read announces, whatever the largest id.
const LINKS_HINT_MAX: i64 = 50_000_000;

fn stream(c: &mut impl GenericClient, sql: &str, since: Option<i64>, reader: &mut dyn LinkReader) -> Result<(), CatalogError> {
    let mut rows = c.query_raw(sql, since)?;
    while let Some(r) = rows.next()? {
        reader.link(LinkRow {
            row_id: r.try_get(0)?,
            program_row_id: r.try_get(1)?,
            partner_row_id: r.try_get(2)?,
            code: r.try_get(3)?,
            destination: r.try_get(4)?,
            channel: parsed(r.try_get(5)?, "links.channel", Channel::parse)?,
            utm: [r.try_get(6)?, r.try_get(7)?, r.try_get(8)?],
            expires_at: r.try_get(9)?,
            status: parsed(r.try_get(10)?, "links.status", Status::parse)?,
        });
    }
    Ok(())
}

/// The read itself, on one snapshot (the caller's transaction).
fn read(c: &mut impl GenericClient, since: Option<i64>, changes_max: usize, reader: &mut dyn LinkReader) -> Result<bool, CatalogError> {
    let version = version(c)?;
    let Some(since) = since else {
        let links: Option<i64> = c.query_one("SELECT max(id) FROM links", &[])?.try_get(0)?;
        let links = links.unwrap_or(0).clamp(0, LINKS_HINT_MAX);
        let owners = Some((programs(c)?, partner_owners(c)?));
        reader.head(LinkReadHead { version, full: true, owners, others_changed: true, links: links as usize });
        stream(c, LINK_COLUMNS, None, reader)?;
        return Ok(true);
    };
    if since > version {
        return Ok(false);
    }
    if since == version {
        reader.head(LinkReadHead { version, full: false, owners: None, others_changed: false, links: 0 });
        return Ok(true);
    }
    let trimmed: i64 = c.query_one("SELECT seq FROM catalog_trimmed", &[])?.try_get(0)?;
    if trimmed > since {
        return Ok(false);
    }
    let counts = c.query_one(
        "SELECT count(*) FILTER (WHERE kind = 'link'), count(*) FILTER (WHERE kind <> 'link'),
                count(*) FILTER (WHERE kind = 'program' OR kind = 'partner')
         FROM catalog_changes WHERE seq > $1",
        &[&since],
    )?;
    let (links, others, owners_changed): (i64, i64, i64) = (counts.try_get(0)?, counts.try_get(1)?, counts.try_get(2)?);
    let links = links.max(0) as usize;
    if links > changes_max {
        return Ok(false);
    }
    let owners = if owners_changed > 0 { Some((programs(c)?, partner_owners(c)?)) } else { None };
    reader.head(LinkReadHead { version, full: false, owners, others_changed: others > 0, links });
    if links > 0 {
        let rows =
            c.query("SELECT DISTINCT old_code FROM catalog_changes WHERE seq > $1 AND kind = 'link' AND old_code IS NOT NULL", &[&since])?;
        for r in rows {
            reader.removed(r.try_get(0)?);
        }
        let sql = format!("{LINK_COLUMNS} WHERE id IN (SELECT row_id FROM catalog_changes WHERE seq > $1 AND kind = 'link')");
        stream(c, &sql, Some(since), reader)?;
    }
    Ok(true)
}

/// Drops the oldest entries once the log holds more than `keep` (and a quarter), and records
/// the highest dropped, so a reader behind it reads everything again.
pub(super) fn trim(c: &mut Client, keep: u64) -> Result<u64, CatalogError> {
    let row = c.query_one("SELECT coalesce(max(seq), 0), min(seq) FROM catalog_changes", &[])?;
    let (newest, oldest): (i64, Option<i64>) = (row.try_get(0)?, row.try_get(1)?);
    let held = oldest.map_or(0, |o| (newest - o + 1).max(0) as u64);
    // A quarter over before trimming, so a steady trickle of changes trims now and then, not
    // at every change.
    if held <= keep.saturating_add(keep / 4) {
        return Ok(0);
    }
    let cut = newest.saturating_sub(keep.min(i64::MAX as u64) as i64);
    let mut tx = c.transaction()?;
    let n = tx.execute("DELETE FROM catalog_changes WHERE seq <= $1", &[&cut])?;
    tx.execute("UPDATE catalog_trimmed SET seq = greatest(seq, $1)", &[&cut])?;
    tx.commit()?;
    Ok(n)
}

impl PgCatalog {
    pub(super) fn read_links_in_tx(
        &self,
        since: Option<i64>,
        changes_max: usize,
        reader: &mut dyn LinkReader,
    ) -> Result<bool, CatalogError> {
        let joined = self.in_tx.load(std::sync::atomic::Ordering::Acquire);
        let run = |c: &mut Client, reader: &mut dyn LinkReader| -> Result<bool, CatalogError> {
            if joined {
                return read(c, since, changes_max, reader);
            }
            let mut tx = c.build_transaction().isolation_level(IsolationLevel::RepeatableRead).read_only(true).start()?;
            let out = read(&mut tx, since, changes_max, reader)?;
            tx.commit()?;
            Ok(out)
        };
        if tokio::runtime::Handle::try_current().is_err() {
            return self.with_here(|c| run(c, reader));
        }
        // On the async runtime the read runs on a thread of its own, which cannot take the
        // reader along: it keeps what it read, handed over here once it is done.
        let mut kept = Kept::default();
        let out = self.with(|c| run(c, &mut kept).map(|ok| (ok, kept)))?;
        let (ok, kept) = out;
        kept.replay(reader);
        Ok(ok)
    }
}

/// A read kept whole, to be handed to a reader on another thread.
#[derive(Default)]
struct Kept {
    head: Option<LinkReadHead>,
    removed: Vec<String>,
    links: Vec<KeptLink>,
}

/// A link of a kept read.
struct KeptLink {
    ids: [i64; 3],
    channel: Channel,
    expires_at: Option<i64>,
    status: Status,
    /// `code`, `destination` and the three tags.
    text: [String; 5],
}

impl LinkReader for Kept {
    fn head(&mut self, head: LinkReadHead) {
        self.head = Some(head);
    }

    fn removed(&mut self, code: &str) {
        self.removed.push(code.to_string());
    }

    fn link(&mut self, r: LinkRow<'_>) {
        let text = [r.code, r.destination, r.utm[0], r.utm[1], r.utm[2]].map(str::to_string);
        let ids = [r.row_id, r.program_row_id, r.partner_row_id];
        self.links.push(KeptLink { ids, channel: r.channel, expires_at: r.expires_at, status: r.status, text });
    }
}

impl Kept {
    fn replay(self, reader: &mut dyn LinkReader) {
        let Some(head) = self.head else { return };
        reader.head(head);
        for code in &self.removed {
            reader.removed(code);
        }
        for KeptLink { ids, channel, expires_at, status, text } in &self.links {
            reader.link(LinkRow {
                row_id: ids[0],
                program_row_id: ids[1],
                partner_row_id: ids[2],
                code: &text[0],
                destination: &text[1],
                channel: *channel,
                utm: [&text[2], &text[3], &text[4]],
                expires_at: *expires_at,
                status: *status,
            });
        }
    }
}

/// A connection listening for the catalog's change notifications: what wakes an edge to read
/// the changes since its version.
pub struct CatalogListener {
    client: Client,
}

impl CatalogListener {
    pub(super) fn connect(url: &str) -> Result<CatalogListener, CatalogError> {
        let mut client = super::super::conversions::connect_here(url).map_err(|e| CatalogError::Storage(e.to_string()))?;
        let channel: String = client.query_one("SELECT 'clickgate_catalog_' || hashtext(current_schema())", &[])?.try_get(0)?;
        client.batch_execute(&format!("LISTEN \"{}\"", channel.replace('"', "\"\"")))?;
        Ok(CatalogListener { client })
    }

    /// Waits up to `timeout` for a notification, and takes any others already queued with it;
    /// answers whether one came. An error means the connection is gone: listen again.
    pub fn wait(&mut self, timeout: Duration) -> Result<bool, CatalogError> {
        let got = {
            let mut notifications = self.client.notifications();
            let got = notifications.timeout_iter(timeout).next()?.is_some();
            if got {
                while notifications.iter().next()?.is_some() {}
            }
            got
        };
        if self.client.is_closed() {
            return Err(CatalogError::Storage("the PostgreSQL connection listening for catalog changes closed".into()));
        }
        Ok(got)
    }
}
