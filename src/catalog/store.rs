//! What a backend implements to hold the catalog (`storage::sqlite::SqliteCatalog`). The rules
//! every object passes on the way in live here, once, and run before the backend writes.

use super::changes::LinkReader;
use super::objects::{Link, NewCoupon, NewLink, NewPartner, NewProgram, Partner, Program, Seed};
use super::CatalogError;
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
}

impl Kind {
    /// The singular that errors and the CLI use.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Program => "program",
            Kind::Partner => "partner",
            Kind::Link => "link",
        }
    }
}

/// A catalog backend's writes and reads. `insert_*` store an object the caller validated and
/// answer `false` when its id is taken; `version` changes whenever anyone changes the catalog,
/// so a reader reloads only then.
pub trait CatalogStore {
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
    fn coupons(&self) -> Result<Vec<NewCoupon>, CatalogError>;
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
        self.partners()?.into_iter().find(|x| x.spec.id == p.id).ok_or_else(|| not_found(Kind::Partner, &p.id))
    }

    /// Creates a link after checking its destination against the program's allowlist.
    /// Replaces a partner's payout details, validated with the rest of the partner.
    fn set_partner_payout(
        &self,
        id: &str,
        method: crate::payouts::PayoutMethod,
        stripe_account: Option<String>,
        paypal_email: Option<String>,
    ) -> Result<Partner, CatalogError> {
        let mut p = self.partners()?.into_iter().find(|x| x.spec.id == id).ok_or_else(|| not_found(Kind::Partner, id))?;
        p.spec.payout_method = method;
        p.spec.stripe_account = stripe_account;
        p.spec.paypal_email = paypal_email;
        p.spec.validate()?;
        if !self.update_partner_payout(&p.spec)? {
            return Err(not_found(Kind::Partner, id));
        }
        Ok(p)
    }

    /// Replaces a program's payout threshold and schedule.
    fn set_program_payout(&self, id: &str, threshold_minor: i64, schedule: &str) -> Result<Program, CatalogError> {
        let mut program = self.get_program(id)?;
        program.spec.payout_threshold_minor = threshold_minor;
        program.spec.payout_schedule = schedule.to_string();
        program.spec.validate()?;
        if !self.update_program(&program.spec)? {
            return Err(not_found(Kind::Program, id));
        }
        self.get_program(id)
    }

    fn add_link(&self, l: &NewLink) -> Result<Link, CatalogError> {
        let program = self.get_program(&l.program)?;
        l.validate(&program.spec)?;
        if !self.insert_link(l, &program)? {
            return Err(CatalogError::Exists { kind: "link", id: l.code.clone() });
        }
        self.link(&l.code)?.ok_or_else(|| not_found(Kind::Link, &l.code))
    }

    /// Creates a coupon code for a partner in a program; the code is stored upper-case.
    fn add_coupon(&self, c: &NewCoupon) -> Result<NewCoupon, CatalogError> {
        let c = c.normalized()?;
        let program = self.get_program(&c.program)?;
        if !self.insert_coupon(&c, &program)? {
            return Err(CatalogError::Exists { kind: "coupon", id: c.code });
        }
        Ok(c)
    }

    /// Sets the status of a program, partner or link.
    fn set_status(&self, kind: Kind, id: &str, status: Status) -> Result<(), CatalogError> {
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
