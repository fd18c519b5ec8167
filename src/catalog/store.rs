//! What a backend implements to hold the catalog (`storage::sqlite::SqliteCatalog`). The rules
//! every object passes on the way in live here, once, and run before the backend writes.

use super::changes::LinkReader;
use super::edit::{coupon_key, LinkPatch, ListFilter, PartnerPatch, ProgramPatch};
use super::objects::{Coupon, Link, NewCoupon, NewLink, NewPartner, NewProgram, Partner, Program, Seed};
use super::CatalogError;
use crate::audit::AuditLog;
use crate::commission::ProgramRules;
use crate::model::Status;

/// A validated link on its way into a bulk insert, with the row ids it refers to.
#[derive(Debug, Clone, Copy)]
pub struct NewLinkRow<'a> {
    pub link: &'a NewLink,
    pub status: Status,
    pub program_row_id: i64,
    pub partner_row_id: i64,
}

/// Which catalog object a status change names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Program,
    Partner,
    Link,
    /// Named by `coupon_key`: `<program>:<CODE>`.
    Coupon,
}

impl Kind {
    /// The singular that errors and the CLI use.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Program => "program",
            Kind::Partner => "partner",
            Kind::Link => "link",
            Kind::Coupon => "coupon",
        }
    }
}

/// A catalog backend's writes and reads. `insert_*` store an object the caller validated and
/// answer `false` when its id is taken; `version` changes whenever anyone changes the catalog,
/// so a reader reloads only then. The audit log lives beside the catalog (`AuditLog`), so a
/// catalog write and its record share a transaction (`Audited`).
pub trait CatalogStore: AuditLog {
    /// Moves whenever the catalog changes, on this connection or another.
    fn version(&self) -> Result<i64, CatalogError>;
    fn insert_program(&self, p: &NewProgram) -> Result<bool, CatalogError>;
    /// Replaces a stored program's spec; `false` when there is no such program.
    fn update_program(&self, p: &NewProgram) -> Result<bool, CatalogError>;
    fn program(&self, id: &str) -> Result<Option<Program>, CatalogError>;
    fn programs(&self) -> Result<Vec<Program>, CatalogError>;
    fn insert_partner(&self, p: &NewPartner) -> Result<bool, CatalogError>;
    fn partners(&self) -> Result<Vec<Partner>, CatalogError>;
    /// Stores a partner's payout details (method, Stripe account, PayPal email); false when
    /// there is no such partner.
    fn update_partner_payout(&self, p: &NewPartner) -> Result<bool, CatalogError>;
    /// Inserts a link of a stored program; the partner must exist (`NotFound` otherwise).
    fn insert_link(&self, l: &NewLink, program: &Program) -> Result<bool, CatalogError>;
    /// Inserts validated links of stored programs and partners in one transaction; for each,
    /// whether it was new (`false`: its code is taken, perhaps by an earlier row of the batch).
    fn insert_links(&self, rows: &[NewLinkRow<'_>]) -> Result<Vec<bool>, CatalogError>;
    fn link(&self, code: &str) -> Result<Option<Link>, CatalogError>;
    fn links(&self) -> Result<Vec<Link>, CatalogError>;
    /// Inserts a normalized coupon of a stored program; the partner must exist.
    fn insert_coupon(&self, c: &NewCoupon, program: &Program) -> Result<bool, CatalogError>;
    fn coupons(&self) -> Result<Vec<Coupon>, CatalogError>;
    /// Sets an object's status; `false` when there is no such object.
    fn update_status(&self, kind: Kind, id: &str, status: Status) -> Result<bool, CatalogError>;
    /// Reads, in one transaction, every link (`since` is `None`) or the links changed after
    /// version `since`, and hands them to `reader` (`changes`). Answers `false`, having read
    /// nothing, when the change log no longer reaches back to `since` or holds more than
    /// `changes_max` link changes after it: the caller reads everything instead.
    fn read_links(&self, since: Option<i64>, changes_max: usize, reader: &mut dyn LinkReader) -> Result<bool, CatalogError>;
    /// Drops the change log's oldest entries once it holds more than `keep` (and a quarter),
    /// keeping the newest `keep`; answers how many went.
    fn trim_changes(&self, keep: u64) -> Result<u64, CatalogError>;
    /// Runs `f` in one transaction, which commits when `f` answers `Ok(true)` and rolls back
    /// otherwise. Writes `f` makes through this store join it; so does an `atomically` inside.
    fn atomically(&self, f: &mut dyn FnMut() -> Result<bool, CatalogError>) -> Result<bool, CatalogError>;

    // What follows has a default built from the methods above, correct on any backend and
    // slow on a large catalog (it reads every row); a backend overrides it with one query.

    /// One partner by id.
    fn partner(&self, id: &str) -> Result<Option<Partner>, CatalogError> {
        Ok(self.partners()?.into_iter().find(|p| p.spec.id == id))
    }

    /// Replaces a stored partner's name, email and payout details; `false` when there is no
    /// such partner.
    fn update_partner(&self, p: &NewPartner) -> Result<bool, CatalogError>;

    /// Replaces a stored link's destination, channel, UTM tags and expiry (its code, program
    /// and partner stay), through the change log as every link write; `false` when there is no
    /// such link.
    fn update_link(&self, l: &NewLink) -> Result<bool, CatalogError>;

    /// A page of programs in id order (`status`, `after`, `limit` apply).
    fn list_programs(&self, f: &ListFilter) -> Result<Vec<Program>, CatalogError> {
        let rows = self.programs()?.into_iter().filter(|p| f.admits(None, None, Some(p.status)));
        Ok(f.page(rows, |p| p.spec.id.clone()))
    }

    /// A page of partners in id order (`partner` names one; `status`, `after`, `limit` apply).
    fn list_partners(&self, f: &ListFilter) -> Result<Vec<Partner>, CatalogError> {
        let rows = self.partners()?.into_iter().filter(|p| f.admits(None, Some(&p.spec.id), Some(p.status)));
        Ok(f.page(rows, |p| p.spec.id.clone()))
    }

    /// A page of links in code order (`program`, `partner`, `status`, `after`, `limit` apply).
    fn list_links(&self, f: &ListFilter) -> Result<Vec<Link>, CatalogError> {
        let rows = self.links()?.into_iter().filter(|l| f.admits(Some(&l.spec.program), Some(&l.spec.partner), Some(l.status)));
        Ok(f.page(rows, |l| l.spec.code.clone()))
    }

    /// A page of coupons in (program, code) order (`program`, `partner`, `status`, `after`,
    /// `limit` apply).
    fn list_coupons(&self, f: &ListFilter) -> Result<Vec<Coupon>, CatalogError> {
        let mut rows: Vec<Coupon> =
            self.coupons()?.into_iter().filter(|c| f.admits(Some(&c.spec.program), Some(&c.spec.partner), Some(c.status))).collect();
        rows.sort_by(|a, b| (&a.spec.program, &a.spec.code).cmp(&(&b.spec.program, &b.spec.code)));
        Ok(f.page(rows, |c| coupon_key(&c.spec.program, &c.spec.code)))
    }

    /// One coupon of a program; `code` matches case-insensitively.
    fn coupon(&self, program: &str, code: &str) -> Result<Option<Coupon>, CatalogError> {
        let code = code.to_ascii_uppercase();
        Ok(self.coupons()?.into_iter().find(|c| c.spec.program == program && c.spec.code == code))
    }
}

/// The catalog's operations, each validated before it reaches the backend: what the CLI, the
/// API and the demo seed call, on any `CatalogStore`.
pub trait Catalogue: CatalogStore {
    /// Creates a program.
    fn add_program(&self, p: &NewProgram) -> Result<Program, CatalogError> {
        p.validate()?;
        if !self.insert_program(p)? {
            return Err(CatalogError::Exists { kind: "program", id: p.id.clone() });
        }
        self.get_program(&p.id)
    }

    /// Replaces a program's commission rules after validating them. Commissions already made
    /// keep the version that produced them; new ones record the new version.
    fn set_commission_rules(&self, id: &str, rules: &ProgramRules) -> Result<Program, CatalogError> {
        let mut program = self.get_program(id)?;
        program.spec.commission = rules.clone();
        program.spec.validate()?;
        if !self.update_program(&program.spec)? {
            return Err(not_found(Kind::Program, id));
        }
        self.get_program(id)
    }

    /// One program by id.
    fn get_program(&self, id: &str) -> Result<Program, CatalogError> {
        self.program(id)?.ok_or_else(|| not_found(Kind::Program, id))
    }

    /// Creates a partner.
    fn add_partner(&self, p: &NewPartner) -> Result<Partner, CatalogError> {
        p.validate()?;
        if !self.insert_partner(p)? {
            return Err(CatalogError::Exists { kind: "partner", id: p.id.clone() });
        }
        self.get_partner(&p.id)
    }

    /// Replaces a partner's payout details, validated with the rest of the partner.
    fn set_partner_payout(
        &self,
        id: &str,
        method: crate::payouts::PayoutMethod,
        stripe_account: Option<String>,
        paypal_email: Option<String>,
    ) -> Result<Partner, CatalogError> {
        self.edit_partner(id, &PartnerPatch::payout(method, stripe_account, paypal_email))
    }

    /// Replaces a program's payout threshold and schedule.
    fn set_program_payout(&self, id: &str, threshold_minor: i64, schedule: &str) -> Result<Program, CatalogError> {
        let patch = ProgramPatch {
            payout_threshold_minor: Some(threshold_minor),
            payout_schedule: Some(schedule.to_string()),
            ..Default::default()
        };
        self.edit_program(id, &patch)
    }

    /// Changes a program's editable fields. The program is validated whole; a narrower
    /// allowlist is refused while one of the program's links points outside it, since a link's
    /// destination is only checked when it is written.
    fn edit_program(&self, id: &str, patch: &ProgramPatch) -> Result<Program, CatalogError> {
        let program = self.get_program(id)?;
        let spec = patch.apply(&program.spec);
        spec.validate()?;
        if spec.allowed_domains != program.spec.allowed_domains {
            let mut f = ListFilter { program: Some(id.to_string()), limit: 1_000, ..Default::default() };
            loop {
                let page = self.list_links(&f)?;
                for l in &page {
                    if crate::model::destination::check(&l.spec.destination, &spec.allowed_domains).is_err() {
                        let why = format!("link {:?} goes to {:?}, outside the new list; change it first", l.spec.code, l.spec.destination);
                        return Err(CatalogError::Invalid { field: "allowed_domains", why });
                    }
                }
                match page.last() {
                    Some(last) if page.len() == f.limit => f.after = Some(last.spec.code.clone()),
                    _ => break,
                }
            }
        }
        if !self.update_program(&spec)? {
            return Err(not_found(Kind::Program, id));
        }
        self.get_program(id)
    }

    /// One partner by id.
    fn get_partner(&self, id: &str) -> Result<Partner, CatalogError> {
        self.partner(id)?.ok_or_else(|| not_found(Kind::Partner, id))
    }

    /// Changes a partner's editable fields; the partner is validated whole.
    fn edit_partner(&self, id: &str, patch: &PartnerPatch) -> Result<Partner, CatalogError> {
        let stored = self.get_partner(id)?;
        let spec = patch.apply(&stored.spec);
        spec.validate()?;
        let written = if patch.renames() { self.update_partner(&spec)? } else { self.update_partner_payout(&spec)? };
        if !written {
            return Err(not_found(Kind::Partner, id));
        }
        self.get_partner(id)
    }

    /// One link by code.
    fn get_link(&self, code: &str) -> Result<Link, CatalogError> {
        self.link(code)?.ok_or_else(|| not_found(Kind::Link, code))
    }

    /// Changes a link's editable fields; the link is validated whole against its program, as
    /// a new one, and the edge sees the change through the change log.
    fn edit_link(&self, code: &str, patch: &LinkPatch) -> Result<Link, CatalogError> {
        let stored = self.get_link(code)?;
        let spec = patch.apply(&stored.spec);
        spec.validate(&self.get_program(&spec.program)?.spec)?;
        if !self.update_link(&spec)? {
            return Err(not_found(Kind::Link, code));
        }
        self.get_link(code)
    }

    /// One coupon of a program.
    fn get_coupon(&self, program: &str, code: &str) -> Result<Coupon, CatalogError> {
        self.coupon(program, code)?.ok_or_else(|| CatalogError::NotFound { kind: "coupon", id: coupon_key(program, code) })
    }

    /// Creates a link after checking its destination against the program's allowlist.
    fn add_link(&self, l: &NewLink) -> Result<Link, CatalogError> {
        let program = self.get_program(&l.program)?;
        l.validate(&program.spec)?;
        if !self.insert_link(l, &program)? {
            return Err(CatalogError::Exists { kind: "link", id: l.code.clone() });
        }
        self.get_link(&l.code)
    }

    /// Creates a coupon code for a partner in a program; the code is stored upper-case.
    fn add_coupon(&self, c: &NewCoupon) -> Result<Coupon, CatalogError> {
        let c = c.normalized()?;
        let program = self.get_program(&c.program)?;
        if !self.insert_coupon(&c, &program)? {
            return Err(CatalogError::Exists { kind: "coupon", id: c.code });
        }
        self.get_coupon(&c.program, &c.code)
    }

    /// Sets the status of a program, partner, link or coupon (named `<program>:<CODE>`, the
    /// code in any case): pause, resume (active) or expire.
    fn set_status(&self, kind: Kind, id: &str, status: Status) -> Result<(), CatalogError> {
        let id = match (kind, id.split_once(':')) {
            (Kind::Coupon, Some((program, code))) => coupon_key(program, &code.to_ascii_uppercase()),
            _ => id.to_string(),
        };
        let id = id.as_str();
        if !self.update_status(kind, id, status)? {
            return Err(not_found(kind, id));
        }
        Ok(())
    }

    /// Writes the demo section into an empty catalog; returns whether it did.
    fn seed(&self, demo: &Seed) -> Result<bool, CatalogError> {
        if demo.programs.is_empty() || !self.programs()?.is_empty() {
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
}

impl<T: CatalogStore + ?Sized> Catalogue for T {}

fn not_found(kind: Kind, id: &str) -> CatalogError {
    CatalogError::NotFound { kind: kind.as_str(), id: id.to_string() }
}
