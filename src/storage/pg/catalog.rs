//! The catalog in PostgreSQL (cluster mode): `PgCatalog` implements `catalog::CatalogStore`
//! (and, in `api_keys`, `access::KeyStore`) on a connection of its own, made again when the
//! server dropped it. `version` is the change log's last entry (`changes`), which the triggers
//! of migration 0006 append to in every change's transaction, whoever writes it; `listen`
//! hands the edge the notifications those triggers send.
//!
//! A `postgres::Client` runs each call on a runtime of its own, which cannot start on a thread
//! inside another runtime: a call made there (the API's tasks, the processes' start) runs on a
//! scoped thread of its own.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use ::postgres::{Client, GenericClient, Row};

use crate::catalog::{
    CatalogError, CatalogStore, Coupon, Kind, Link, LinkReader, NewCoupon, NewLink, NewLinkRow, NewPartner, NewProgram, Partner, Program,
};
use crate::model::{Channel, Status};
use crate::payouts::PayoutMethod;
use crate::storage::data_key;
use crate::storage::sqlite::catalog::Sealed;

mod changes;

pub use changes::CatalogListener;

impl From<::postgres::Error> for CatalogError {
    fn from(e: ::postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) => CatalogError::Storage(format!("PostgreSQL {}: {}", db.code().code(), db.message())),
            None => CatalogError::Storage(format!("PostgreSQL: {e}")),
        }
    }
}

/// A connection to the catalog's tables in a PostgreSQL store.
pub struct PgCatalog {
    url: String,
    conn: Mutex<Option<Client>>,
    /// An `atomically` (or a batch) holds a transaction open on the connection: the calls
    /// inside join it, and a dropped connection is then an error, never a new connection
    /// that would write outside the transaction.
    in_tx: AtomicBool,
}

/// The column lists both the point reads and the streamed reads use.
const LINK_SELECT: &str = "SELECT l.id, l.partner_id, l.code, p.slug, pa.slug, l.destination, l.channel, l.utm_source, l.utm_medium,
        l.utm_campaign, l.expires_at, l.status
     FROM links l JOIN programs p ON p.id = l.program_id JOIN partners pa ON pa.id = l.partner_id";
const PROGRAM_SELECT: &str = "SELECT id, spec, status FROM programs";
const PARTNER_SELECT: &str = "SELECT id, slug, name, email, status, payout_method, stripe_account, paypal_email FROM partners";
const PARTNER_OWNERS: &str =
    "SELECT id, slug, name, ''::text AS email, status, payout_method, NULL::text AS s, NULL::text AS p FROM partners";

impl PgCatalog {
    /// Connects to the store at `url` and migrates it to this build's schema first: what the
    /// CLI's catalog commands and the core open, so a fresh database works. A store a newer
    /// build migrated is refused.
    pub fn open(url: &str) -> Result<PgCatalog, CatalogError> {
        let client = run_off_runtime(|| {
            let mut client = super::conversions::connect_here(url).map_err(|e| CatalogError::Storage(e.to_string()))?;
            super::migrations::run(&mut client).map_err(|e| CatalogError::Storage(e.to_string()))?;
            Ok(client)
        })?;
        Ok(PgCatalog { url: url.to_string(), conn: Mutex::new(Some(client)), in_tx: AtomicBool::new(false) })
    }

    /// Connects to the store at `url`, which `open`, the writer or `clickgate migrate` made:
    /// checks its schema version and runs no DDL.
    pub fn connect(url: &str) -> Result<PgCatalog, CatalogError> {
        let store = PgCatalog::lazy(url);
        store.with(|_| Ok(()))?;
        Ok(store)
    }

    /// A store at `url` not connected yet: the first call connects (and checks the schema's
    /// version), as does the first after the server dropped the connection. What an edge
    /// holds, so it starts while the database is down.
    pub fn lazy(url: &str) -> PgCatalog {
        PgCatalog { url: url.to_string(), conn: Mutex::new(None), in_tx: AtomicBool::new(false) }
    }

    /// A second connection that receives the catalog's change notifications (`changes`).
    pub fn listen(&self) -> Result<CatalogListener, CatalogError> {
        let url = self.url.clone();
        run_off_runtime(move || CatalogListener::connect(&url))
    }

    /// Runs `f` on the connection, connecting first when there is none; off the async
    /// runtime when called on it.
    pub(crate) fn with<T: Send>(&self, f: impl FnOnce(&mut Client) -> Result<T, CatalogError> + Send) -> Result<T, CatalogError> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return std::thread::scope(|s| s.spawn(|| self.with_here(f)).join())
                .unwrap_or_else(|_| Err(CatalogError::Storage("a PostgreSQL catalog call panicked".into())));
        }
        self.with_here(f)
    }

    /// As `with`, on this thread: for `f` that cannot move to another (a `LinkReader`).
    fn with_here<T>(&self, f: impl FnOnce(&mut Client) -> Result<T, CatalogError>) -> Result<T, CatalogError> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        if conn.as_ref().is_none_or(Client::is_closed) {
            if self.in_tx.load(Ordering::Acquire) {
                *conn = None;
                return Err(CatalogError::Storage("the connection to PostgreSQL dropped inside a transaction".into()));
            }
            let mut client = super::conversions::connect_here(&self.url).map_err(|e| CatalogError::Storage(e.to_string()))?;
            super::migrations::check(&mut client).map_err(|e| CatalogError::Storage(e.to_string()))?;
            *conn = Some(client);
        }
        let Some(client) = conn.as_mut() else { return Err(CatalogError::Storage("no connection to PostgreSQL".into())) };
        let out = f(client);
        if client.is_closed() {
            *conn = None;
        }
        out
    }

    /// Runs `f` in a transaction of its own, committed when `f` answers `Ok((_, true))` and
    /// rolled back otherwise; inside a transaction already open (`atomically`), `f` joins it.
    pub(crate) fn in_transaction<T>(&self, f: impl FnOnce() -> Result<(T, bool), CatalogError>) -> Result<T, CatalogError> {
        if self.in_tx.load(Ordering::Acquire) {
            return f().map(|(out, _)| out);
        }
        self.with(|c| Ok(c.batch_execute("BEGIN")?))?;
        self.in_tx.store(true, Ordering::Release);
        let out = f();
        let end = match &out {
            Ok((_, true)) => self.with(|c| Ok(c.batch_execute("COMMIT")?)),
            _ => self.with(|c| Ok(c.batch_execute("ROLLBACK")?)),
        };
        if end.is_err() {
            // A failed COMMIT leaves the transaction aborted; a dropped connection left none.
            let _ = self.with(|c| Ok(c.batch_execute("ROLLBACK")?));
        }
        self.in_tx.store(false, Ordering::Release);
        let (out, _) = out?;
        end?;
        Ok(out)
    }
}

/// A `postgres::Client` closes its connection on a runtime of its own; a store dropped on an
/// async task closes it on a thread of its own.
impl Drop for PgCatalog {
    fn drop(&mut self) {
        let live = self.conn.get_mut().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(live) = live {
            if tokio::runtime::Handle::try_current().is_ok() {
                let _ = std::thread::spawn(move || drop(live)).join();
            }
        }
    }
}

/// Runs `f` off the async runtime when called on it.
fn run_off_runtime<T: Send>(f: impl FnOnce() -> Result<T, CatalogError> + Send) -> Result<T, CatalogError> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return std::thread::scope(|s| s.spawn(f).join())
            .unwrap_or_else(|_| Err(CatalogError::Storage("a PostgreSQL catalog call panicked".into())));
    }
    f()
}

/// A stored enum column, parsed strictly: an unknown spelling is an error naming the column
/// and the value, never a guessed default.
pub(super) fn parsed<T>(s: &str, column: &str, parse: fn(&str) -> Option<T>) -> Result<T, CatalogError> {
    parse(s).ok_or_else(|| CatalogError::Storage(format!("column {column} holds {s:?}, which is not a known value")))
}

fn program_row(r: &Row) -> Result<Program, CatalogError> {
    let spec: &str = r.try_get(1)?;
    let spec: NewProgram = serde_json::from_str(spec).map_err(|e| CatalogError::Storage(format!("a stored program's spec: {e}")))?;
    Ok(Program { row_id: r.try_get(0)?, spec, status: parsed(r.try_get(2)?, "programs.status", Status::parse)? })
}

fn partner_row(r: &Row) -> Result<Partner, CatalogError> {
    let id: String = r.try_get(1)?;
    let spec = NewPartner {
        name: r.try_get(2)?,
        email: data_key::open("partners", "email", &id, r.try_get(3)?)?,
        payout_method: parsed(r.try_get(5)?, "partners.payout_method", |s| PayoutMethod::parse(s).ok())?,
        stripe_account: data_key::open_opt("partners", "stripe_account", &id, r.try_get(6)?)?,
        paypal_email: data_key::open_opt("partners", "paypal_email", &id, r.try_get(7)?)?,
        id,
    };
    Ok(Partner { row_id: r.try_get(0)?, spec, status: parsed(r.try_get(4)?, "partners.status", Status::parse)? })
}

fn link_row(r: &Row) -> Result<Link, CatalogError> {
    Ok(Link {
        row_id: r.try_get(0)?,
        partner_row_id: r.try_get(1)?,
        spec: NewLink {
            code: r.try_get(2)?,
            program: r.try_get(3)?,
            partner: r.try_get(4)?,
            destination: r.try_get(5)?,
            channel: parsed(r.try_get(6)?, "links.channel", Channel::parse)?,
            utm_source: r.try_get(7)?,
            utm_medium: r.try_get(8)?,
            utm_campaign: r.try_get(9)?,
            expires_at: r.try_get(10)?,
        },
        status: parsed(r.try_get(11)?, "links.status", Status::parse)?,
    })
}

/// Every program, by id; the edge's reads take them in their own transaction.
pub(super) fn programs(c: &mut impl GenericClient) -> Result<Vec<Program>, CatalogError> {
    c.query(&format!("{PROGRAM_SELECT} ORDER BY slug COLLATE \"C\""), &[])?.iter().map(program_row).collect()
}

/// Every partner, by id.
pub(super) fn partners(c: &mut impl GenericClient) -> Result<Vec<Partner>, CatalogError> {
    c.query(&format!("{PARTNER_SELECT} ORDER BY slug COLLATE \"C\""), &[])?.iter().map(partner_row).collect()
}

/// The partners as a link reader needs them, owners of links with a status: without the
/// personal fields, so an edge needs no data key and its snapshot file holds none of them.
pub(super) fn partner_owners(c: &mut impl GenericClient) -> Result<Vec<Partner>, CatalogError> {
    c.query(&format!("{PARTNER_OWNERS} ORDER BY slug COLLATE \"C\""), &[])?.iter().map(partner_row).collect()
}

fn partner_row_id(c: &mut Client, slug: &str) -> Result<i64, CatalogError> {
    match c.query_opt("SELECT id FROM partners WHERE slug = $1", &[&slug])? {
        Some(r) => Ok(r.try_get(0)?),
        None => Err(CatalogError::NotFound { kind: "partner", id: slug.to_string() }),
    }
}

fn spec_json(p: &NewProgram) -> Result<String, CatalogError> {
    serde_json::to_string(p).map_err(|e| CatalogError::Storage(format!("a program's spec does not serialise: {e}")))
}

const INSERT_LINK: &str = "INSERT INTO links (code, program_id, partner_id, destination, channel, utm_source, utm_medium, utm_campaign,
     expires_at, status) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (code) DO NOTHING";
/// `INSERT_LINK` for a batch, one array per column, in the arrays' order; answers the codes
/// written (a code already taken is not).
const INSERT_LINKS: &str = "INSERT INTO links (code, program_id, partner_id, destination, channel, utm_source, utm_medium, utm_campaign,
     expires_at, status)
     SELECT code, program_id, partner_id, destination, channel, utm_source, utm_medium, utm_campaign, expires_at, status
     FROM unnest($1::text[], $2::int8[], $3::int8[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::int8[], $10::text[])
         WITH ORDINALITY AS u(code, program_id, partner_id, destination, channel, utm_source, utm_medium, utm_campaign, expires_at, status, n)
     ORDER BY n
     ON CONFLICT (code) DO NOTHING RETURNING code";

impl CatalogStore for PgCatalog {
    fn version(&self) -> Result<i64, CatalogError> {
        self.with(changes::version)
    }

    fn insert_program(&self, p: &NewProgram) -> Result<bool, CatalogError> {
        let spec = spec_json(p)?;
        let sql = "INSERT INTO programs (slug, spec) VALUES ($1, $2) ON CONFLICT (slug) DO NOTHING";
        self.with(|c| Ok(c.execute(sql, &[&p.id, &spec])? == 1))
    }

    fn update_program(&self, p: &NewProgram) -> Result<bool, CatalogError> {
        let spec = spec_json(p)?;
        self.with(|c| Ok(c.execute("UPDATE programs SET spec = $1 WHERE slug = $2", &[&spec, &p.id])? == 1))
    }

    fn program(&self, id: &str) -> Result<Option<Program>, CatalogError> {
        let sql = format!("{PROGRAM_SELECT} WHERE slug = $1");
        self.with(|c| c.query_opt(&sql, &[&id])?.as_ref().map(program_row).transpose())
    }

    fn programs(&self) -> Result<Vec<Program>, CatalogError> {
        self.with(programs)
    }

    fn insert_partner(&self, p: &NewPartner) -> Result<bool, CatalogError> {
        let sql = "INSERT INTO partners (slug, name, email, payout_method, stripe_account, paypal_email)
                   VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (slug) DO NOTHING";
        let s = Sealed::of(p)?;
        self.with(|c| Ok(c.execute(sql, &[&p.id, &p.name, &s.email, &p.payout_method.as_str(), &s.stripe_account, &s.paypal_email])? == 1))
    }

    fn partners(&self) -> Result<Vec<Partner>, CatalogError> {
        self.with(partners)
    }

    fn update_partner_payout(&self, p: &NewPartner) -> Result<bool, CatalogError> {
        let sql = "UPDATE partners SET payout_method = $2, stripe_account = $3, paypal_email = $4 WHERE slug = $1";
        let s = Sealed::of(p)?;
        self.with(|c| Ok(c.execute(sql, &[&p.id, &p.payout_method.as_str(), &s.stripe_account, &s.paypal_email])? == 1))
    }

    fn update_partner(&self, p: &NewPartner) -> Result<bool, CatalogError> {
        let sql = "UPDATE partners SET name = $2, email = $3, payout_method = $4, stripe_account = $5, paypal_email = $6 WHERE slug = $1";
        let s = Sealed::of(p)?;
        self.with(|c| Ok(c.execute(sql, &[&p.id, &p.name, &s.email, &p.payout_method.as_str(), &s.stripe_account, &s.paypal_email])? == 1))
    }

    /// The links table's trigger logs the change, so every edge applies it on its next reload.
    fn update_link(&self, l: &NewLink) -> Result<bool, CatalogError> {
        let sql = "UPDATE links SET destination = $2, channel = $3, utm_source = $4, utm_medium = $5, utm_campaign = $6,
                   expires_at = $7 WHERE code = $1";
        self.with(|c| {
            let n = c.execute(
                sql,
                &[&l.code, &l.destination, &l.channel.as_str(), &l.utm_source, &l.utm_medium, &l.utm_campaign, &l.expires_at],
            )?;
            Ok(n == 1)
        })
    }

    fn insert_link(&self, l: &NewLink, program: &Program) -> Result<bool, CatalogError> {
        self.with(|c| {
            let partner = partner_row_id(c, &l.partner)?;
            let n = c.execute(
                INSERT_LINK,
                &[
                    &l.code,
                    &program.row_id,
                    &partner,
                    &l.destination,
                    &l.channel.as_str(),
                    &l.utm_source,
                    &l.utm_medium,
                    &l.utm_campaign,
                    &l.expires_at,
                    &Status::Active.as_str(),
                ],
            )?;
            Ok(n == 1)
        })
    }

    fn insert_links(&self, rows: &[NewLinkRow<'_>]) -> Result<Vec<bool>, CatalogError> {
        // One statement for the whole batch, in one transaction (its own, or the caller's
        // `atomically`): a row at a time cost a round trip per link. A code given twice in the
        // batch is written from its first row, as one row at a time would; the later rows are
        // taken.
        let mut seen = HashSet::with_capacity(rows.len());
        let first: Vec<bool> = rows.iter().map(|r| seen.insert(r.link.code.as_str())).collect();
        let unique: Vec<&NewLinkRow<'_>> = rows.iter().zip(&first).filter(|(_, f)| **f).map(|(r, _)| r).collect();
        let column = |f: fn(&NewLink) -> &str| unique.iter().map(|r| f(r.link)).collect::<Vec<&str>>();
        let codes = column(|l| &l.code);
        let destinations = column(|l| &l.destination);
        let channels = column(|l| l.channel.as_str());
        let sources = column(|l| &l.utm_source);
        let mediums = column(|l| &l.utm_medium);
        let campaigns = column(|l| &l.utm_campaign);
        let statuses: Vec<&str> = unique.iter().map(|r| r.status.as_str()).collect();
        let programs: Vec<i64> = unique.iter().map(|r| r.program_row_id).collect();
        let partners: Vec<i64> = unique.iter().map(|r| r.partner_row_id).collect();
        let expires: Vec<Option<i64>> = unique.iter().map(|r| r.link.expires_at).collect();
        self.in_transaction(|| {
            let written = self.with(|c| {
                let rows = c.query(
                    INSERT_LINKS,
                    &[&codes, &programs, &partners, &destinations, &channels, &sources, &mediums, &campaigns, &expires, &statuses],
                )?;
                rows.iter().map(|r| r.try_get::<_, String>(0)).collect::<Result<HashSet<String>, _>>().map_err(CatalogError::from)
            })?;
            let added = rows.iter().zip(&first).map(|(r, f)| *f && written.contains(&r.link.code)).collect();
            Ok((added, true))
        })
    }

    fn link(&self, code: &str) -> Result<Option<Link>, CatalogError> {
        let sql = format!("{LINK_SELECT} WHERE l.code = $1");
        self.with(|c| c.query_opt(&sql, &[&code])?.as_ref().map(link_row).transpose())
    }

    fn links(&self) -> Result<Vec<Link>, CatalogError> {
        let sql = format!("{LINK_SELECT} ORDER BY l.code COLLATE \"C\"");
        self.with(|c| c.query(&sql, &[])?.iter().map(link_row).collect())
    }

    fn insert_coupon(&self, c: &NewCoupon, program: &Program) -> Result<bool, CatalogError> {
        let sql = "INSERT INTO coupons (code, program_id, partner_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
        self.with(|conn| {
            let partner = partner_row_id(conn, &c.partner)?;
            Ok(conn.execute(sql, &[&c.code, &program.row_id, &partner])? == 1)
        })
    }

    fn coupons(&self) -> Result<Vec<Coupon>, CatalogError> {
        let sql = "SELECT c.code, p.slug, pa.slug, c.status FROM coupons c JOIN programs p ON p.id = c.program_id
             JOIN partners pa ON pa.id = c.partner_id ORDER BY p.slug COLLATE \"C\", c.code COLLATE \"C\"";
        self.with(|c| {
            c.query(sql, &[])?
                .iter()
                .map(|r| {
                    let spec = NewCoupon { code: r.try_get(0)?, program: r.try_get(1)?, partner: r.try_get(2)? };
                    Ok(Coupon { spec, status: parsed(r.try_get(3)?, "coupons.status", Status::parse)? })
                })
                .collect()
        })
    }

    fn update_status(&self, kind: Kind, id: &str, status: Status) -> Result<bool, CatalogError> {
        let sql = match kind {
            Kind::Program => "UPDATE programs SET status = $1 WHERE slug = $2",
            Kind::Partner => "UPDATE partners SET status = $1 WHERE slug = $2",
            Kind::Link => "UPDATE links SET status = $1 WHERE code = $2",
            Kind::Coupon => {
                let Some((program, code)) = id.split_once(':') else { return Ok(false) };
                let sql = "UPDATE coupons SET status = $1 WHERE code = $2 AND program_id = (SELECT id FROM programs WHERE slug = $3)";
                return self.with(|c| Ok(c.execute(sql, &[&status.as_str(), &code, &program])? == 1));
            }
        };
        self.with(|c| Ok(c.execute(sql, &[&status.as_str(), &id])? == 1))
    }

    fn read_links(&self, since: Option<i64>, changes_max: usize, reader: &mut dyn LinkReader) -> Result<bool, CatalogError> {
        self.read_links_in_tx(since, changes_max, reader)
    }

    fn trim_changes(&self, keep: u64) -> Result<u64, CatalogError> {
        self.with(|c| changes::trim(c, keep))
    }

    fn atomically(&self, f: &mut dyn FnMut() -> Result<bool, CatalogError>) -> Result<bool, CatalogError> {
        self.in_transaction(|| f().map(|ok| (ok, ok)))
    }
}
