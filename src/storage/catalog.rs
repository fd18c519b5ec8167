//! The one catalog, on whichever backend holds it: the data dir's file (embedded) or the
//! PostgreSQL database every node of a cluster reads (`core.database_url`). `CatalogDb` is what
//! the CLI's catalog commands, the API and the upkeep thread open, so each writes and reads the
//! catalog and the API keys in one place.

use std::path::Path;

use super::pg::PgCatalog;
use super::sqlite::SqliteCatalog;
use crate::access::{AccessError, ApiKey, KeyStore};
use crate::audit::{AuditError, AuditLog, Entry, Query, Record};
use crate::catalog::{
    CatalogError, CatalogStore, Coupon, Kind, Link, LinkReader, ListFilter, NewCoupon, NewLink, NewLinkRow, NewPartner, NewProgram,
    Partner, Program,
};
use crate::model::Status;

/// The catalog and the API keys beside it, on the backend the config names.
pub enum CatalogDb {
    File(SqliteCatalog),
    /// Boxed: a PostgreSQL connection is several times a SQLite one.
    Pg(Box<PgCatalog>),
}

impl CatalogDb {
    /// Opens the catalog, migrating its store to this build's schema first: PostgreSQL at
    /// `database_url` when set, else the file under `data_dir`.
    pub fn open(database_url: Option<&str>, data_dir: &Path) -> Result<CatalogDb, CatalogError> {
        Ok(match database_url {
            Some(url) => CatalogDb::Pg(Box::new(PgCatalog::open(url)?)),
            None => CatalogDb::File(SqliteCatalog::open(data_dir)?),
        })
    }

    /// Opens the catalog once `open` made it: checks the schema's version, runs no DDL.
    pub fn connect(database_url: Option<&str>, data_dir: &Path) -> Result<CatalogDb, CatalogError> {
        Ok(match database_url {
            Some(url) => CatalogDb::Pg(Box::new(PgCatalog::connect(url)?)),
            None => CatalogDb::File(SqliteCatalog::connect(data_dir)?),
        })
    }

    /// Whether the catalog is the cluster's database, which edges follow.
    pub fn is_shared(&self) -> bool {
        matches!(self, CatalogDb::Pg(_))
    }
}

/// Runs the same call on either backend.
macro_rules! each {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            CatalogDb::File($s) => $call,
            CatalogDb::Pg($s) => $call,
        }
    };
}

impl CatalogStore for CatalogDb {
    fn version(&self) -> Result<i64, CatalogError> {
        each!(self, s => s.version())
    }
    fn insert_program(&self, p: &NewProgram) -> Result<bool, CatalogError> {
        each!(self, s => s.insert_program(p))
    }
    fn update_program(&self, p: &NewProgram) -> Result<bool, CatalogError> {
        each!(self, s => s.update_program(p))
    }
    fn program(&self, id: &str) -> Result<Option<Program>, CatalogError> {
        each!(self, s => s.program(id))
    }
    fn programs(&self) -> Result<Vec<Program>, CatalogError> {
        each!(self, s => s.programs())
    }
    fn insert_partner(&self, p: &NewPartner) -> Result<bool, CatalogError> {
        each!(self, s => s.insert_partner(p))
    }
    fn partners(&self) -> Result<Vec<Partner>, CatalogError> {
        each!(self, s => s.partners())
    }
    fn update_partner_payout(&self, p: &NewPartner) -> Result<bool, CatalogError> {
        each!(self, s => s.update_partner_payout(p))
    }
    fn partner(&self, id: &str) -> Result<Option<Partner>, CatalogError> {
        each!(self, s => s.partner(id))
    }
    fn update_partner(&self, p: &NewPartner) -> Result<bool, CatalogError> {
        each!(self, s => s.update_partner(p))
    }
    fn update_link(&self, l: &NewLink) -> Result<bool, CatalogError> {
        each!(self, s => s.update_link(l))
    }
    fn list_programs(&self, f: &ListFilter) -> Result<Vec<Program>, CatalogError> {
        each!(self, s => s.list_programs(f))
    }
    fn list_partners(&self, f: &ListFilter) -> Result<Vec<Partner>, CatalogError> {
        each!(self, s => s.list_partners(f))
    }
    fn list_links(&self, f: &ListFilter) -> Result<Vec<Link>, CatalogError> {
        each!(self, s => s.list_links(f))
    }
    fn list_coupons(&self, f: &ListFilter) -> Result<Vec<Coupon>, CatalogError> {
        each!(self, s => s.list_coupons(f))
    }
    fn coupon(&self, program: &str, code: &str) -> Result<Option<Coupon>, CatalogError> {
        each!(self, s => s.coupon(program, code))
    }
    fn insert_link(&self, l: &NewLink, program: &Program) -> Result<bool, CatalogError> {
        each!(self, s => s.insert_link(l, program))
    }
    fn insert_links(&self, rows: &[NewLinkRow<'_>]) -> Result<Vec<bool>, CatalogError> {
        each!(self, s => s.insert_links(rows))
    }
    fn link(&self, code: &str) -> Result<Option<Link>, CatalogError> {
        each!(self, s => s.link(code))
    }
    fn links(&self) -> Result<Vec<Link>, CatalogError> {
        each!(self, s => s.links())
    }
    fn insert_coupon(&self, c: &NewCoupon, program: &Program) -> Result<bool, CatalogError> {
        each!(self, s => s.insert_coupon(c, program))
    }
    fn coupons(&self) -> Result<Vec<Coupon>, CatalogError> {
        each!(self, s => s.coupons())
    }
    fn update_status(&self, kind: Kind, id: &str, status: Status) -> Result<bool, CatalogError> {
        each!(self, s => s.update_status(kind, id, status))
    }
    fn read_links(&self, since: Option<i64>, changes_max: usize, reader: &mut dyn LinkReader) -> Result<bool, CatalogError> {
        each!(self, s => s.read_links(since, changes_max, reader))
    }
    fn trim_changes(&self, keep: u64) -> Result<u64, CatalogError> {
        each!(self, s => s.trim_changes(keep))
    }
    fn atomically(&self, f: &mut dyn FnMut() -> Result<bool, CatalogError>) -> Result<bool, CatalogError> {
        each!(self, s => s.atomically(f))
    }
}

impl KeyStore for CatalogDb {
    fn insert_key(&self, key: &ApiKey, sha256: &[u8; 32]) -> Result<(), AccessError> {
        each!(self, s => s.insert_key(key, sha256))
    }
    fn key_by_hash(&self, sha256: &[u8; 32]) -> Result<Option<ApiKey>, AccessError> {
        each!(self, s => s.key_by_hash(sha256))
    }
    fn key(&self, id: &str) -> Result<Option<ApiKey>, AccessError> {
        each!(self, s => s.key(id))
    }
    fn keys(&self) -> Result<Vec<ApiKey>, AccessError> {
        each!(self, s => s.keys())
    }
    fn revoke_key(&self, id: &str, now_ms: u64) -> Result<Option<ApiKey>, AccessError> {
        each!(self, s => s.revoke_key(id, now_ms))
    }
    fn touch_key(&self, id: &str, now_ms: u64) -> Result<(), AccessError> {
        each!(self, s => s.touch_key(id, now_ms))
    }
    fn keys_atomically(&self, f: &mut dyn FnMut() -> Result<(), AccessError>) -> Result<(), AccessError> {
        each!(self, s => s.keys_atomically(f))
    }
}

impl AuditLog for CatalogDb {
    fn append_audit(&self, e: &Entry) -> Result<(), AuditError> {
        each!(self, s => s.append_audit(e))
    }
    fn audit_page(&self, q: &Query) -> Result<Vec<Record>, AuditError> {
        each!(self, s => s.audit_page(q))
    }
}
