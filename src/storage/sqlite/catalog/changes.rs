//! The catalog's change log on SQLite (migration 0005): the version, the edge's reads of
//! links (all of them, or those changed since a version), each in one read transaction so it
//! sees one state of the store, and the log's trimming.

use rusqlite::{Connection, OptionalExtension};

use super::SqliteCatalog;
use crate::catalog::{CatalogError, CatalogStore, LinkReadHead, LinkReader, LinkRow};
use crate::model::{Channel, Status};

/// The last change's `seq`: AUTOINCREMENT keeps it in `sqlite_sequence`, which never goes
/// back, not even when the log is trimmed to nothing.
pub(super) fn version(conn: &Connection) -> rusqlite::Result<i64> {
    Ok(conn.query_row("SELECT seq FROM sqlite_sequence WHERE name = 'catalog_changes'", [], |r| r.get(0)).optional()?.unwrap_or(0))
}

const LINK_COLUMNS: &str = "SELECT id, program_id, partner_id, code, destination, channel, utm_source, utm_medium, utm_campaign,
    expires_at, status FROM links";

/// The page cache of a full read: the scan reads each page once, so a large cache would only
/// hold a copy of the links the table already holds.
const SCAN_CACHE_KIB: i64 = 2048;

/// The most links a full read announces, whatever the largest id.
const LINKS_HINT_MAX: i64 = 50_000_000;

/// The connection's usual page cache (`schema::configure`).
const CACHE_KIB: i64 = 16_384;

fn text<'r>(r: &'r rusqlite::Row<'_>, i: usize) -> rusqlite::Result<&'r str> {
    r.get_ref(i)?.as_str().map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e)))
}

/// A stored enum, parsed strictly.
fn parsed<T>(r: &rusqlite::Row<'_>, i: usize, parse: fn(&str) -> Option<T>) -> rusqlite::Result<T> {
    let s = text(r, i)?;
    parse(s).ok_or_else(|| {
        let why = format!("column {i} holds {s:?}, which is not a known value");
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, why.into())
    })
}

fn stream(stmt: &mut rusqlite::Statement<'_>, params: impl rusqlite::Params, reader: &mut dyn LinkReader) -> rusqlite::Result<()> {
    let mut rows = stmt.query(params)?;
    while let Some(r) = rows.next()? {
        reader.link(LinkRow {
            row_id: r.get(0)?,
            program_row_id: r.get(1)?,
            partner_row_id: r.get(2)?,
            code: text(r, 3)?,
            destination: text(r, 4)?,
            channel: parsed(r, 5, Channel::parse)?,
            utm: [text(r, 6)?, text(r, 7)?, text(r, 8)?],
            expires_at: r.get(9)?,
            status: parsed(r, 10, Status::parse)?,
        });
    }
    Ok(())
}

/// How many changes of each kind follow `since`: (links, anything else).
fn counts(conn: &Connection, since: i64) -> rusqlite::Result<(usize, usize)> {
    let mut stmt = conn.prepare_cached("SELECT kind = 'link', count(*) FROM catalog_changes WHERE seq > ?1 GROUP BY kind = 'link'")?;
    let mut out = (0, 0);
    for row in stmt.query_map([since], |r| Ok((r.get::<_, bool>(0)?, r.get::<_, i64>(1)? as usize)))? {
        match row? {
            (true, n) => out.0 = n,
            (false, n) => out.1 = n,
        }
    }
    Ok(out)
}

impl SqliteCatalog {
    pub(super) fn read_links_in_tx(
        &self,
        since: Option<i64>,
        changes_max: usize,
        reader: &mut dyn LinkReader,
    ) -> Result<bool, CatalogError> {
        // A deferred transaction: its first read fixes the snapshot every later read sees.
        let tx = self.conn.unchecked_transaction()?;
        let version = version(&tx)?;
        let Some(since) = since else {
            // The largest id, not a count, which would read a whole index: the links that follow
            // are at most as many, and the builder only reserves room for them.
            let links: Option<i64> = tx.query_row("SELECT max(id) FROM links", [], |r| r.get(0))?;
            let links = links.unwrap_or(0).clamp(0, LINKS_HINT_MAX);
            let owners = Some((self.programs()?, self.partner_owners()?));
            reader.head(LinkReadHead { version, full: true, owners, others_changed: true, links: links as usize });
            tx.pragma_update(None, "cache_size", -SCAN_CACHE_KIB)?;
            let streamed = stream(&mut tx.prepare(LINK_COLUMNS)?, [], reader);
            tx.pragma_update(None, "cache_size", -CACHE_KIB)?;
            streamed?;
            tx.commit()?;
            // The scan's pages go back to the allocator rather than sit in the cache.
            self.conn.execute_batch("PRAGMA shrink_memory")?;
            return Ok(true);
        };
        if since > version {
            return Ok(false);
        }
        if since == version {
            reader.head(LinkReadHead { version, full: false, owners: None, others_changed: false, links: 0 });
            return Ok(true);
        }
        let oldest: Option<i64> = tx.query_row("SELECT min(seq) FROM catalog_changes", [], |r| r.get(0))?;
        if oldest.is_none_or(|o| o > since + 1) {
            return Ok(false);
        }
        let (links, others) = counts(&tx, since)?;
        if links > changes_max {
            return Ok(false);
        }
        let owners_changed: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM catalog_changes WHERE seq > ?1 AND (kind = 'program' OR kind = 'partner'))",
            [since],
            |r| r.get(0),
        )?;
        let owners = if owners_changed { Some((self.programs()?, self.partner_owners()?)) } else { None };
        reader.head(LinkReadHead { version, full: false, owners, others_changed: others > 0, links });
        if links > 0 {
            let mut stmt = tx.prepare_cached(
                "SELECT DISTINCT old_code FROM catalog_changes WHERE seq > ?1 AND kind = 'link' AND old_code IS NOT NULL",
            )?;
            let mut rows = stmt.query([since])?;
            while let Some(r) = rows.next()? {
                reader.removed(text(r, 0)?);
            }
            let sql = format!("{LINK_COLUMNS} WHERE id IN (SELECT row_id FROM catalog_changes WHERE seq > ?1 AND kind = 'link')");
            let mut stmt = tx.prepare_cached(&sql)?;
            stream(&mut stmt, [since], reader)?;
        }
        tx.commit()?;
        Ok(true)
    }

    pub(super) fn trim_changes_to(&self, keep: u64) -> Result<u64, CatalogError> {
        let newest = version(&self.conn)?;
        let oldest: Option<i64> = self.conn.query_row("SELECT min(seq) FROM catalog_changes", [], |r| r.get(0))?;
        let held = oldest.map_or(0, |o| (newest - o + 1).max(0) as u64);
        // A quarter over before trimming, so a steady trickle of changes trims now and then,
        // not at every change.
        if held <= keep.saturating_add(keep / 4) {
            return Ok(0);
        }
        let n = self.conn.execute("DELETE FROM catalog_changes WHERE seq <= ?1", [newest.saturating_sub(keep as i64)])?;
        Ok(n as u64)
    }

    /// Runs `f` in a transaction of its own, committed when `f` answers `Ok(true)` and rolled
    /// back otherwise; inside a transaction already open (`atomically`), `f` joins it, and the
    /// outer transaction commits or rolls back its writes with the rest. It does not open a
    /// savepoint: SQLite then copies every page a write first touches to the savepoint's
    /// journal, which made a million-link import in one transaction ten times slower.
    ///
    /// The transaction begins IMMEDIATE, taking the write lock first: a deferred one that reads
    /// before it writes fails at once, without waiting, when another connection committed in
    /// between.
    pub(super) fn in_transaction<T>(&self, f: impl FnOnce() -> Result<(T, bool), CatalogError>) -> Result<T, CatalogError> {
        if !self.conn.is_autocommit() {
            return f().map(|(out, _)| out);
        }
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let rollback = || self.conn.execute_batch("ROLLBACK");
        match f() {
            Ok((out, true)) => {
                if let Err(e) = self.conn.execute_batch("COMMIT") {
                    let _ = rollback();
                    return Err(e.into());
                }
                Ok(out)
            }
            Ok((out, false)) => {
                rollback()?;
                Ok(out)
            }
            Err(e) => {
                let _ = rollback();
                Err(e)
            }
        }
    }
}
