//! The catalog in the data dir's file: `SqliteCatalog` implements `catalog::CatalogStore` on a
//! connection of its own. `version` is the catalog's change log's last entry (`changes`), which
//! the triggers of migration 0005 append to in every change's transaction, whoever writes it.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use super::schema;
use crate::catalog::{
    CatalogError, CatalogStore, Coupon, Kind, Link, LinkReader, ListFilter, NewCoupon, NewLink, NewLinkRow, NewPartner, NewProgram,
    Partner, Program,
};
use crate::model::{Channel, Status};
use crate::payouts::PayoutMethod;
use crate::storage::{data_key, SchemaError};

/// A partner's personal fields, sealed for its row (`privacy::sealed`).
pub(crate) struct Sealed {
    pub email: String,
    pub stripe_account: Option<String>,
    pub paypal_email: Option<String>,
}

impl Sealed {
    pub(crate) fn of(p: &NewPartner) -> Result<Sealed, crate::privacy::PrivacyError> {
        Ok(Sealed {
            email: data_key::seal("partners", "email", &p.id, &p.email)?,
            stripe_account: data_key::seal_opt("partners", "stripe_account", &p.id, p.stripe_account.as_deref())?,
            paypal_email: data_key::seal_opt("partners", "paypal_email", &p.id, p.paypal_email.as_deref())?,
        })
    }
}

impl From<rusqlite::Error> for CatalogError {
    fn from(e: rusqlite::Error) -> Self {
        CatalogError::Storage(format!("sqlite: {e}"))
    }
}

impl From<SchemaError> for CatalogError {
    fn from(e: SchemaError) -> Self {
        CatalogError::Storage(e.to_string())
    }
}

/// A connection to the catalog's tables in the store file.
pub struct SqliteCatalog {
    conn: Connection,
}

impl SqliteCatalog {
    /// Opens the store under `data_dir`, creating it and migrating it to this build's schema
    /// first: what the app opens at start (`serve`, `edge`, `core`) and the catalog commands of
    /// the CLI, so a fresh data dir works. A file a newer build migrated is refused.
    pub fn open(data_dir: &Path) -> Result<SqliteCatalog, CatalogError> {
        Ok(SqliteCatalog { conn: schema::open_migrated(data_dir)? })
    }

    /// Opens the store under `data_dir` again once `open` made it (the reloads, the API's
    /// rules): checks that it is at this build's schema version, runs no DDL and creates no
    /// file.
    pub fn connect(data_dir: &Path) -> Result<SqliteCatalog, CatalogError> {
        Ok(SqliteCatalog { conn: schema::open(data_dir)? })
    }

    /// The connection, for the keys kept beside the catalog (`api_keys`).
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// The partners as a link reader needs them, owners of links with a status: without the
    /// personal fields, so the link table and its snapshot never hold them.
    fn partner_owners(&self) -> Result<Vec<Partner>, CatalogError> {
        let sql = "SELECT id, slug, name, '' AS email, status, payout_method, NULL, NULL FROM partners ORDER BY slug";
        let mut stmt = self.conn.prepare(sql)?;
        let rows = stmt.query_map([], partner_row)?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn partner_row_id(&self, slug: &str) -> Result<i64, CatalogError> {
        self.conn
            .query_row("SELECT id FROM partners WHERE slug = ?1", [slug], |r| r.get(0))
            .optional()?
            .ok_or_else(|| CatalogError::NotFound { kind: "partner", id: slug.to_string() })
    }
}

impl CatalogStore for SqliteCatalog {
    fn version(&self) -> Result<i64, CatalogError> {
        Ok(changes::version(&self.conn)?)
    }

    fn insert_program(&self, p: &NewProgram) -> Result<bool, CatalogError> {
        let spec = serde_json::to_string(p).expect("program spec serialises");
        Ok(self.conn.execute("INSERT OR IGNORE INTO programs (slug, spec) VALUES (?1, ?2)", params![p.id, spec])? == 1)
    }

    fn update_program(&self, p: &NewProgram) -> Result<bool, CatalogError> {
        let spec = serde_json::to_string(p).expect("program spec serialises");
        Ok(self.conn.execute("UPDATE programs SET spec = ?1 WHERE slug = ?2", params![spec, p.id])? == 1)
    }

    fn program(&self, id: &str) -> Result<Option<Program>, CatalogError> {
        Ok(self.conn.query_row("SELECT id, spec, status FROM programs WHERE slug = ?1", [id], program_row).optional()?)
    }

    fn programs(&self) -> Result<Vec<Program>, CatalogError> {
        let mut stmt = self.conn.prepare("SELECT id, spec, status FROM programs ORDER BY slug")?;
        let rows = stmt.query_map([], program_row)?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn insert_partner(&self, p: &NewPartner) -> Result<bool, CatalogError> {
        let sql = "INSERT OR IGNORE INTO partners (slug, name, email, payout_method, stripe_account, paypal_email)
                   VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
        let s = Sealed::of(p)?;
        let n = self.conn.execute(sql, params![p.id, p.name, s.email, p.payout_method.as_str(), s.stripe_account, s.paypal_email])?;
        Ok(n == 1)
    }

    fn partners(&self) -> Result<Vec<Partner>, CatalogError> {
        let mut stmt = self.conn.prepare(&format!("{PARTNER_SELECT} ORDER BY slug"))?;
        let rows = stmt.query_map([], partner_row)?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn update_partner_payout(&self, p: &NewPartner) -> Result<bool, CatalogError> {
        let sql = "UPDATE partners SET payout_method = ?2, stripe_account = ?3, paypal_email = ?4 WHERE slug = ?1";
        let s = Sealed::of(p)?;
        Ok(self.conn.execute(sql, params![p.id, p.payout_method.as_str(), s.stripe_account, s.paypal_email])? == 1)
    }

    fn insert_link(&self, l: &NewLink, program: &Program) -> Result<bool, CatalogError> {
        let partner = self.partner_row_id(&l.partner)?;
        let n = self.conn.execute(
            "INSERT OR IGNORE INTO links (code, program_id, partner_id, destination, channel, utm_source, utm_medium, utm_campaign, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![l.code, program.row_id, partner, l.destination, l.channel.as_str(), l.utm_source, l.utm_medium, l.utm_campaign, l.expires_at],
        )?;
        Ok(n == 1)
    }

    fn insert_links(&self, rows: &[NewLinkRow<'_>]) -> Result<Vec<bool>, CatalogError> {
        // One transaction (its own, or the caller's `atomically`) and one prepared statement for
        // the whole batch: a commit (and its fsync) per link would bound
        // an import at a few hundred links a second.
        self.in_transaction(|| {
            let mut added = Vec::with_capacity(rows.len());
            let mut stmt = self.conn.prepare_cached(
                "INSERT OR IGNORE INTO links (code, program_id, partner_id, destination, channel, utm_source, utm_medium,
                 utm_campaign, expires_at, status) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?;
            for r in rows {
                let l = r.link;
                added.push(
                    stmt.execute(params![
                        l.code,
                        r.program_row_id,
                        r.partner_row_id,
                        l.destination,
                        l.channel.as_str(),
                        l.utm_source,
                        l.utm_medium,
                        l.utm_campaign,
                        l.expires_at,
                        r.status.as_str()
                    ])? == 1,
                );
            }
            Ok((added, true))
        })
    }

    fn link(&self, code: &str) -> Result<Option<Link>, CatalogError> {
        let sql = format!("{LINK_SELECT} WHERE l.code = ?1");
        Ok(self.conn.query_row(&sql, [code], link_row).optional()?)
    }

    fn links(&self) -> Result<Vec<Link>, CatalogError> {
        let mut stmt = self.conn.prepare(&format!("{LINK_SELECT} ORDER BY l.code"))?;
        let rows = stmt.query_map([], link_row)?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn insert_coupon(&self, c: &NewCoupon, program: &Program) -> Result<bool, CatalogError> {
        let partner = self.partner_row_id(&c.partner)?;
        let sql = "INSERT OR IGNORE INTO coupons (code, program_id, partner_id) VALUES (?1, ?2, ?3)";
        Ok(self.conn.execute(sql, params![c.code, program.row_id, partner])? == 1)
    }

    fn coupons(&self) -> Result<Vec<Coupon>, CatalogError> {
        let mut stmt = self.conn.prepare(&format!("{COUPON_SELECT} ORDER BY p.slug, c.code"))?;
        let rows = stmt.query_map([], coupon_row)?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn update_status(&self, kind: Kind, id: &str, status: Status) -> Result<bool, CatalogError> {
        let sql = match kind {
            Kind::Program => "UPDATE programs SET status = ?1 WHERE slug = ?2",
            Kind::Partner => "UPDATE partners SET status = ?1 WHERE slug = ?2",
            Kind::Link => "UPDATE links SET status = ?1 WHERE code = ?2",
            Kind::Coupon => {
                let Some((program, code)) = id.split_once(':') else { return Ok(false) };
                let sql = "UPDATE coupons SET status = ?1 WHERE code = ?2 AND program_id = (SELECT id FROM programs WHERE slug = ?3)";
                return Ok(self.conn.execute(sql, params![status.as_str(), code, program])? == 1);
            }
        };
        Ok(self.conn.execute(sql, params![status.as_str(), id])? == 1)
    }

    fn read_links(&self, since: Option<i64>, changes_max: usize, reader: &mut dyn LinkReader) -> Result<bool, CatalogError> {
        self.read_links_in_tx(since, changes_max, reader)
    }

    fn trim_changes(&self, keep: u64) -> Result<u64, CatalogError> {
        self.trim_changes_to(keep)
    }

    fn atomically(&self, f: &mut dyn FnMut() -> Result<bool, CatalogError>) -> Result<bool, CatalogError> {
        self.in_transaction(|| f().map(|ok| (ok, ok)))
    }

    fn partner(&self, id: &str) -> Result<Option<Partner>, CatalogError> {
        self.partner_by_id(id)
    }

    fn update_partner(&self, p: &NewPartner) -> Result<bool, CatalogError> {
        self.write_partner(p)
    }

    fn update_link(&self, l: &NewLink) -> Result<bool, CatalogError> {
        self.write_link(l)
    }

    fn list_programs(&self, f: &ListFilter) -> Result<Vec<Program>, CatalogError> {
        self.page_programs(f)
    }

    fn list_partners(&self, f: &ListFilter) -> Result<Vec<Partner>, CatalogError> {
        self.page_partners(f)
    }

    fn list_links(&self, f: &ListFilter) -> Result<Vec<Link>, CatalogError> {
        self.page_links(f)
    }

    fn list_coupons(&self, f: &ListFilter) -> Result<Vec<Coupon>, CatalogError> {
        self.page_coupons(f)
    }

    fn coupon(&self, program: &str, code: &str) -> Result<Option<Coupon>, CatalogError> {
        self.coupon_by_code(program, code)
    }
}

/// A stored enum column, parsed strictly: an unknown spelling is an error naming the column and
/// the value, never a guessed default.
fn stored<T>(r: &rusqlite::Row<'_>, idx: usize, parse: fn(&str) -> Option<T>) -> rusqlite::Result<T> {
    let s: String = r.get(idx)?;
    parse(&s).ok_or_else(|| {
        let why = format!("column {idx} holds {s:?}, which is not a known value");
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, why.into())
    })
}

const PARTNER_SELECT: &str = "SELECT id, slug, name, email, status, payout_method, stripe_account, paypal_email FROM partners";

fn partner_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Partner> {
    let id: String = r.get(1)?;
    let spec = NewPartner {
        email: data_key::open("partners", "email", &id, &r.get::<_, String>(3)?).map_err(data_key::sqlite_err(3))?,
        payout_method: stored(r, 5, |s| PayoutMethod::parse(s).ok())?,
        stripe_account: data_key::open_opt("partners", "stripe_account", &id, r.get(6)?).map_err(data_key::sqlite_err(6))?,
        paypal_email: data_key::open_opt("partners", "paypal_email", &id, r.get(7)?).map_err(data_key::sqlite_err(7))?,
        name: r.get(2)?,
        id,
    };
    Ok(Partner { row_id: r.get(0)?, spec, status: stored(r, 4, Status::parse)? })
}

const LINK_SELECT: &str = "SELECT l.id, l.partner_id, l.code, p.slug, pa.slug, l.destination, l.channel, l.utm_source, l.utm_medium,
        l.utm_campaign, l.expires_at, l.status
     FROM links l JOIN programs p ON p.id = l.program_id JOIN partners pa ON pa.id = l.partner_id";

fn link_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Link> {
    Ok(Link {
        row_id: r.get(0)?,
        partner_row_id: r.get(1)?,
        spec: NewLink {
            code: r.get(2)?,
            program: r.get(3)?,
            partner: r.get(4)?,
            destination: r.get(5)?,
            channel: stored(r, 6, Channel::parse)?,
            utm_source: r.get(7)?,
            utm_medium: r.get(8)?,
            utm_campaign: r.get(9)?,
            expires_at: r.get(10)?,
        },
        status: stored(r, 11, Status::parse)?,
    })
}

const COUPON_SELECT: &str = "SELECT c.code, p.slug, pa.slug, c.status FROM coupons c JOIN programs p ON p.id = c.program_id
     JOIN partners pa ON pa.id = c.partner_id";

fn coupon_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Coupon> {
    Ok(Coupon { spec: NewCoupon { code: r.get(0)?, program: r.get(1)?, partner: r.get(2)? }, status: stored(r, 3, Status::parse)? })
}

fn program_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Program> {
    let spec: String = r.get(1)?;
    let spec: NewProgram =
        serde_json::from_str(&spec).map_err(|e| rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, Box::new(e)))?;
    Ok(Program { row_id: r.get(0)?, spec, status: stored(r, 2, Status::parse)? })
}

pub(crate) mod audit;
mod changes;
mod lists;
#[cfg(test)]
pub(crate) mod tests;
