//! The embedded store: programs, partners and links in a SQLite file under the data dir. Their
//! tables are part of the file's schema, which `storage::sqlite::migrations` owns.
//!
//! The edge never reads this per request. It loads everything into a `LinkTable` at start and
//! again whenever `PRAGMA data_version` says another connection (the CLI) changed the file.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::model::{destination, BlockedAction, Channel, Currency, Status};
use crate::storage::SchemaError;

pub use crate::model::destination::DestinationError;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The store is at a schema version this build does not read, or could not be migrated.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error("cannot create data dir {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error("{field}: {why}")]
    Invalid { field: &'static str, why: String },
    #[error(transparent)]
    Destination(#[from] DestinationError),
    #[error("{kind} {id:?} already exists")]
    Exists { kind: &'static str, id: String },
    #[error("{kind} {id:?} not found")]
    NotFound { kind: &'static str, id: String },
}

fn bad(field: &'static str, why: impl Into<String>) -> StoreError {
    StoreError::Invalid { field, why: why.into() }
}

/// Catalog objects written into an empty store on first start (the config's demo section).
#[derive(Debug, Clone, Default)]
pub struct Seed {
    pub programs: Vec<NewProgram>,
    pub partners: Vec<NewPartner>,
    pub links: Vec<NewLink>,
    pub coupons: Vec<NewCoupon>,
}

/// A program to create.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewProgram {
    pub id: String,
    pub name: String,
    /// Parsed where the program is read (config, CLI, stored spec); an error names the field.
    #[serde(deserialize_with = "currency_field")]
    pub currency: Currency,
    pub allowed_domains: Vec<String>,
    pub fallback_url: String,
    #[serde(default)]
    pub blocked_action: BlockedAction,
    #[serde(default)]
    pub country_allow: Vec<String>,
    #[serde(default)]
    pub country_deny: Vec<String>,
    /// Model, window and injection guard; defaults apply when absent.
    #[serde(default)]
    pub attribution: crate::attribution::Settings,
    /// Commission rules and per-partner overrides; 10% of the share with a 30-day lock when
    /// absent. Their `version_hash` is recorded on every commission they produce.
    #[serde(default)]
    pub commission: crate::commission::ProgramRules,
}

/// A program's currency, whose error names the field as `validate` names the others.
fn currency_field<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Currency, D::Error> {
    let s = String::deserialize(d)?;
    Currency::parse(&s).map_err(|e| serde::de::Error::custom(format!("currency: {e}")))
}

impl NewProgram {
    /// Checks every field; the error names the field.
    pub fn validate(&self) -> Result<(), StoreError> {
        check_slug("id", &self.id)?;
        if self.name.trim().is_empty() || self.name.len() > 200 {
            return Err(bad("name", "must be 1..=200 bytes"));
        }
        if self.allowed_domains.is_empty() {
            return Err(bad("allowed_domains", "must list at least one domain"));
        }
        for d in &self.allowed_domains {
            if !destination::valid_host(d) {
                return Err(bad("allowed_domains", format!("{d:?} is not a lowercase DNS name")));
            }
        }
        destination::check(&self.fallback_url, &self.allowed_domains)?;
        self.attribution.validate().map_err(|(field, why)| bad(field, why))?;
        self.commission.validate().map_err(|e| StoreError::Invalid { field: "commission", why: e.to_string() })?;
        for c in self.country_allow.iter().chain(&self.country_deny) {
            if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(bad("country_allow/country_deny", format!("{c:?} is not an ISO 3166 alpha-2 code")));
            }
        }
        Ok(())
    }
}

/// A partner to create.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPartner {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub email: String,
}

/// A link to create.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewLink {
    pub code: String,
    pub program: String,
    pub partner: String,
    pub destination: String,
    #[serde(default)]
    pub channel: Channel,
    #[serde(default)]
    pub utm_source: String,
    #[serde(default)]
    pub utm_medium: String,
    #[serde(default)]
    pub utm_campaign: String,
    /// Unix seconds after which the link is expired.
    #[serde(default)]
    pub expires_at: Option<i64>,
}

/// A coupon code that credits a partner (offline and POS sales).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NewCoupon {
    /// Matched case-insensitively; stored upper-case.
    pub code: String,
    pub program: String,
    pub partner: String,
}

/// A program as stored.
#[derive(Debug, Clone, Serialize)]
pub struct Program {
    pub row_id: i64,
    #[serde(flatten)]
    pub spec: NewProgram,
    pub status: Status,
}

/// A partner as stored.
#[derive(Debug, Clone, Serialize)]
pub struct Partner {
    pub row_id: i64,
    #[serde(flatten)]
    pub spec: NewPartner,
    pub status: Status,
}

/// A link as stored.
#[derive(Debug, Clone, Serialize)]
pub struct Link {
    pub row_id: i64,
    pub partner_row_id: i64,
    #[serde(flatten)]
    pub spec: NewLink,
    pub status: Status,
}

fn check_slug(field: &'static str, s: &str) -> Result<(), StoreError> {
    if s.is_empty() || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(bad(field, format!("{s:?} must be 1..=64 of [A-Za-z0-9_-]")));
    }
    Ok(())
}

fn check_utm(field: &'static str, s: &str) -> Result<(), StoreError> {
    if s.len() > 100 || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b)) {
        return Err(bad(field, format!("{s:?} must be at most 100 of [A-Za-z0-9-_.~]")));
    }
    Ok(())
}

/// A connection to the store file.
pub struct Store {
    conn: Connection,
}

impl Store {
    /// The store file inside `data_dir`.
    pub fn path(data_dir: &Path) -> PathBuf {
        crate::storage::sqlite::path(data_dir)
    }

    /// Opens the store under `data_dir`, creating it and migrating it to this build's schema
    /// first: what the app opens at start (`serve`, `edge`, `core`) and the catalog commands of
    /// the CLI, so a fresh data dir works. It runs the file's one migration runner
    /// (`storage::sqlite::migrations`), as the conversion writer does; a file a newer build
    /// migrated is refused (`StoreError::Schema`).
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir { path: data_dir.to_path_buf(), source })?;
        let mut conn = Connection::open(Self::path(data_dir))?;
        configure(&conn)?;
        crate::storage::sqlite::migrations::run(&mut conn)?;
        Ok(Store { conn })
    }

    /// Opens the store under `data_dir` again once `open` made it (the reloads, the API's
    /// rules): checks that it is at this build's schema version, runs no DDL and creates no
    /// file.
    pub fn connect(data_dir: &Path) -> Result<Store, StoreError> {
        let path = Self::path(data_dir);
        if !path.exists() {
            let at = path.display().to_string();
            return Err(SchemaError::Unmigrated { at, known: crate::storage::sqlite::migrations::LATEST }.into());
        }
        let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        crate::storage::sqlite::migrations::check(&conn)?;
        configure(&conn)?;
        Ok(Store { conn })
    }

    /// Changes whenever another connection commits to the file.
    pub fn data_version(&self) -> Result<i64, StoreError> {
        Ok(self.conn.query_row("PRAGMA data_version", [], |r| r.get(0))?)
    }

    /// Writes the demo section into an empty store; returns whether it did.
    pub fn seed(&mut self, demo: &Seed) -> Result<bool, StoreError> {
        let count: i64 = self.conn.query_row("SELECT count(*) FROM programs", [], |r| r.get(0))?;
        if count > 0 || demo.programs.is_empty() {
            return Ok(false);
        }
        for p in &demo.programs {
            self.add_program(p)?;
        }
        for p in &demo.partners {
            self.add_partner(p)?;
        }
        for l in &demo.links {
            self.add_link(l)?;
        }
        for c in &demo.coupons {
            self.add_coupon(c)?;
        }
        Ok(true)
    }

    /// Creates a program.
    pub fn add_program(&self, p: &NewProgram) -> Result<Program, StoreError> {
        p.validate()?;
        let spec = serde_json::to_string(p).expect("program spec serialises");
        let n = self.conn.execute("INSERT OR IGNORE INTO programs (slug, spec) VALUES (?1, ?2)", params![p.id, spec])?;
        if n == 0 {
            return Err(StoreError::Exists { kind: "program", id: p.id.clone() });
        }
        self.program(&p.id)
    }

    /// Replaces a program's commission rules after validating them. Commissions already made
    /// keep the version that produced them; new ones record the new version.
    pub fn set_commission_rules(&self, id: &str, rules: &crate::commission::ProgramRules) -> Result<Program, StoreError> {
        let mut program = self.program(id)?;
        program.spec.commission = rules.clone();
        program.spec.validate()?;
        let spec = serde_json::to_string(&program.spec).expect("program spec serialises");
        self.conn.execute("UPDATE programs SET spec = ?1 WHERE slug = ?2", params![spec, id])?;
        self.program(id)
    }

    /// One program by id.
    pub fn program(&self, id: &str) -> Result<Program, StoreError> {
        self.conn
            .query_row("SELECT id, spec, status FROM programs WHERE slug = ?1", [id], program_row)
            .optional()?
            .ok_or_else(|| StoreError::NotFound { kind: "program", id: id.to_string() })
    }

    /// Every program, by id.
    pub fn programs(&self) -> Result<Vec<Program>, StoreError> {
        let mut stmt = self.conn.prepare("SELECT id, spec, status FROM programs ORDER BY slug")?;
        let rows = stmt.query_map([], program_row)?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Creates a partner.
    pub fn add_partner(&self, p: &NewPartner) -> Result<Partner, StoreError> {
        check_slug("id", &p.id)?;
        if p.name.trim().is_empty() || p.name.len() > 200 {
            return Err(bad("name", "must be 1..=200 bytes"));
        }
        if !p.email.is_empty() && (p.email.len() > 254 || !p.email.contains('@') || p.email.contains(char::is_whitespace)) {
            return Err(bad("email", format!("{:?} is not an email address", p.email)));
        }
        let n =
            self.conn.execute("INSERT OR IGNORE INTO partners (slug, name, email) VALUES (?1, ?2, ?3)", params![p.id, p.name, p.email])?;
        if n == 0 {
            return Err(StoreError::Exists { kind: "partner", id: p.id.clone() });
        }
        self.partners()?.into_iter().find(|x| x.spec.id == p.id).ok_or_else(|| StoreError::NotFound { kind: "partner", id: p.id.clone() })
    }

    /// Every partner, by id.
    pub fn partners(&self) -> Result<Vec<Partner>, StoreError> {
        let mut stmt = self.conn.prepare("SELECT id, slug, name, email, status FROM partners ORDER BY slug")?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Partner {
                    row_id: r.get(0)?,
                    spec: NewPartner { id: r.get(1)?, name: r.get(2)?, email: r.get(3)? },
                    status: stored(r, 4, Status::parse)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Creates a link after checking its destination against the program's allowlist.
    pub fn add_link(&self, l: &NewLink) -> Result<Link, StoreError> {
        check_slug("code", &l.code)?;
        check_utm("utm_source", &l.utm_source)?;
        check_utm("utm_medium", &l.utm_medium)?;
        check_utm("utm_campaign", &l.utm_campaign)?;
        let program = self.program(&l.program)?;
        destination::check(&l.destination, &program.spec.allowed_domains)?;
        let partner_id = self.partner_row_id(&l.partner)?;
        let n = self.conn.execute(
            "INSERT OR IGNORE INTO links (code, program_id, partner_id, destination, channel, utm_source, utm_medium, utm_campaign, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![l.code, program.row_id, partner_id, l.destination, l.channel.as_str(), l.utm_source, l.utm_medium, l.utm_campaign, l.expires_at],
        )?;
        if n == 0 {
            return Err(StoreError::Exists { kind: "link", id: l.code.clone() });
        }
        self.links()?.into_iter().find(|x| x.spec.code == l.code).ok_or_else(|| StoreError::NotFound { kind: "link", id: l.code.clone() })
    }

    /// Every link, by code.
    pub fn links(&self) -> Result<Vec<Link>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT l.id, l.partner_id, l.code, p.slug, pa.slug, l.destination, l.channel, l.utm_source, l.utm_medium,
                    l.utm_campaign, l.expires_at, l.status
             FROM links l JOIN programs p ON p.id = l.program_id JOIN partners pa ON pa.id = l.partner_id ORDER BY l.code",
        )?;
        let rows = stmt
            .query_map([], |r| {
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
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Creates a coupon code for a partner in a program.
    pub fn add_coupon(&self, c: &NewCoupon) -> Result<NewCoupon, StoreError> {
        let code = c.code.to_ascii_uppercase();
        if code.is_empty() || code.len() > 64 || !code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(bad("code", format!("{:?} must be 1..=64 of [A-Za-z0-9_-]", c.code)));
        }
        let program = self.program(&c.program)?;
        let partner_id = self.partner_row_id(&c.partner)?;
        let n = self.conn.execute(
            "INSERT OR IGNORE INTO coupons (code, program_id, partner_id) VALUES (?1, ?2, ?3)",
            params![code, program.row_id, partner_id],
        )?;
        if n == 0 {
            return Err(StoreError::Exists { kind: "coupon", id: code });
        }
        Ok(NewCoupon { code, program: c.program.clone(), partner: c.partner.clone() })
    }

    /// Every coupon, by program and code.
    pub fn coupons(&self) -> Result<Vec<NewCoupon>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT c.code, p.slug, pa.slug FROM coupons c JOIN programs p ON p.id = c.program_id
             JOIN partners pa ON pa.id = c.partner_id ORDER BY p.slug, c.code",
        )?;
        let rows =
            stmt.query_map([], |r| Ok(NewCoupon { code: r.get(0)?, program: r.get(1)?, partner: r.get(2)? }))?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn partner_row_id(&self, slug: &str) -> Result<i64, StoreError> {
        self.conn
            .query_row("SELECT id FROM partners WHERE slug = ?1", [slug], |r| r.get(0))
            .optional()?
            .ok_or_else(|| StoreError::NotFound { kind: "partner", id: slug.to_string() })
    }

    /// Sets the status of a program, partner or link (`kind` is the table's singular).
    pub fn set_status(&self, kind: &'static str, id: &str, status: Status) -> Result<(), StoreError> {
        let sql = match kind {
            "program" => "UPDATE programs SET status = ?1 WHERE slug = ?2",
            "partner" => "UPDATE partners SET status = ?1 WHERE slug = ?2",
            "link" => "UPDATE links SET status = ?1 WHERE code = ?2",
            _ => return Err(bad("kind", format!("unknown kind {kind}"))),
        };
        if self.conn.execute(sql, params![status.as_str(), id])? == 0 {
            return Err(StoreError::NotFound { kind, id: id.to_string() });
        }
        Ok(())
    }
}

/// WAL, `synchronous=FULL` (a change is on disk when it returns), foreign keys.
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
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

fn program_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Program> {
    let spec: String = r.get(1)?;
    let spec: NewProgram =
        serde_json::from_str(&spec).map_err(|e| rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, Box::new(e)))?;
    Ok(Program { row_id: r.get(0)?, spec, status: stored(r, 2, Status::parse)? })
}

#[cfg(test)]
pub(crate) mod tests;
