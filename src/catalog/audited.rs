//! The catalog's writes with their audit entries: what the API and the CLI call, so both record
//! alike. Each write runs in one transaction with its entry (`CatalogStore::atomically`): the
//! object is read before, written, read after, and the entry appended, or nothing is.
//!
//! `Catalogue`'s own writes stay unaudited for what is not a person's write: the demo seed at
//! start and the tests' fixtures.

use serde_json::Value;

use super::edit::{coupon_key, LinkPatch, PartnerPatch, ProgramPatch};
use super::objects::{Coupon, Link, NewCoupon, NewLink, NewPartner, NewProgram, Partner, Program};
use super::store::{CatalogStore, Catalogue, Kind};
use super::CatalogError;
use crate::audit::{snapshot, Action, Actor, AuditError, Entry};
use crate::commission::ProgramRules;
use crate::model::Status;

impl From<AuditError> for CatalogError {
    fn from(e: AuditError) -> Self {
        match e {
            AuditError::Invalid { field, why } => CatalogError::Invalid { field, why },
            AuditError::Storage(why) => CatalogError::Storage(why),
        }
    }
}

/// A catalog store and who writes through it, at `now_ms`.
pub struct Audited<'a> {
    store: &'a dyn CatalogStore,
    actor: Actor,
    now_ms: u64,
}

/// What a write answers, and the object before and after it (already snapshots).
struct Done<T> {
    out: T,
    object_id: String,
    before: Option<Value>,
    after: Option<Value>,
}

impl<'a> Audited<'a> {
    pub fn new(store: &'a dyn CatalogStore, actor: Actor, now_ms: u64) -> Audited<'a> {
        Audited { store, actor, now_ms }
    }

    /// The store, for reads.
    pub fn store(&self) -> &'a dyn CatalogStore {
        self.store
    }

    /// Runs `write` and appends its entry in one transaction.
    fn write<T>(&self, action: Action, write: impl FnOnce(&dyn CatalogStore) -> Result<Done<T>, CatalogError>) -> Result<T, CatalogError> {
        let mut write = Some(write);
        let mut out = None;
        self.store.atomically(&mut || {
            let w = write.take().expect("a transaction runs its body once");
            let done = w(self.store)?;
            let entry = Entry::new(&self.actor, action, done.object_id, self.now_ms, done.before, done.after);
            self.store.append_audit(&entry)?;
            out = Some(done.out);
            Ok(true)
        })?;
        out.ok_or_else(|| CatalogError::Storage("the audited write did not commit".into()))
    }

    pub fn add_program(&self, p: &NewProgram) -> Result<Program, CatalogError> {
        self.write(Action::ProgramCreate, |s| {
            let made = s.add_program(p)?;
            Ok(Done { object_id: p.id.clone(), before: None, after: Some(snapshot(&made)), out: made })
        })
    }

    pub fn edit_program(&self, id: &str, patch: &ProgramPatch) -> Result<Program, CatalogError> {
        self.write(Action::ProgramUpdate, |s| {
            let before = snapshot(&s.get_program(id)?);
            let made = s.edit_program(id, patch)?;
            Ok(Done { object_id: id.to_string(), before: Some(before), after: Some(snapshot(&made)), out: made })
        })
    }

    pub fn set_program_payout(&self, id: &str, threshold_minor: i64, schedule: &str) -> Result<Program, CatalogError> {
        let patch = ProgramPatch {
            payout_threshold_minor: Some(threshold_minor),
            payout_schedule: Some(schedule.to_string()),
            ..Default::default()
        };
        self.edit_program(id, &patch)
    }

    /// Replaces a program's commission rules; the entry's object is the rules
    /// (`commission_rules:<program>`).
    pub fn set_commission_rules(&self, id: &str, rules: &ProgramRules) -> Result<Program, CatalogError> {
        self.write(Action::CommissionRulesPut, |s| {
            let before = snapshot(&s.get_program(id)?.spec.commission);
            let made = s.set_commission_rules(id, rules)?;
            Ok(Done { object_id: id.to_string(), before: Some(before), after: Some(snapshot(&made.spec.commission)), out: made })
        })
    }

    pub fn add_partner(&self, p: &NewPartner) -> Result<Partner, CatalogError> {
        self.write(Action::PartnerCreate, |s| {
            let made = s.add_partner(p)?;
            Ok(Done { object_id: p.id.clone(), before: None, after: Some(snapshot(&made)), out: made })
        })
    }

    pub fn edit_partner(&self, id: &str, patch: &PartnerPatch) -> Result<Partner, CatalogError> {
        self.write(Action::PartnerUpdate, |s| {
            let before = snapshot(&s.get_partner(id)?);
            let made = s.edit_partner(id, patch)?;
            Ok(Done { object_id: id.to_string(), before: Some(before), after: Some(snapshot(&made)), out: made })
        })
    }

    pub fn set_partner_payout(
        &self,
        id: &str,
        method: crate::payouts::PayoutMethod,
        stripe_account: Option<String>,
        paypal_email: Option<String>,
    ) -> Result<Partner, CatalogError> {
        self.edit_partner(id, &PartnerPatch::payout(method, stripe_account, paypal_email))
    }

    pub fn add_link(&self, l: &NewLink) -> Result<Link, CatalogError> {
        self.write(Action::LinkCreate, |s| {
            let made = s.add_link(l)?;
            Ok(Done { object_id: l.code.clone(), before: None, after: Some(snapshot(&made)), out: made })
        })
    }

    pub fn edit_link(&self, code: &str, patch: &LinkPatch) -> Result<Link, CatalogError> {
        self.write(Action::LinkUpdate, |s| {
            let before = snapshot(&s.get_link(code)?);
            let made = s.edit_link(code, patch)?;
            Ok(Done { object_id: code.to_string(), before: Some(before), after: Some(snapshot(&made)), out: made })
        })
    }

    pub fn add_coupon(&self, c: &NewCoupon) -> Result<Coupon, CatalogError> {
        self.write(Action::CouponCreate, |s| {
            let made = s.add_coupon(c)?;
            let id = coupon_key(&made.spec.program, &made.spec.code);
            Ok(Done { object_id: id, before: None, after: Some(snapshot(&made)), out: made })
        })
    }

    /// Pauses, resumes (`Active`) or expires an object; a coupon's id is `<program>:<code>`.
    pub fn set_status(&self, kind: Kind, id: &str, status: Status) -> Result<(), CatalogError> {
        self.write(status_action(kind, status), |s| {
            let (id, before) = object(s, kind, id)?;
            s.set_status(kind, &id, status)?;
            let (_, after) = object(s, kind, &id)?;
            Ok(Done { object_id: id, before: Some(before), after: Some(after), out: () })
        })
    }
}

/// An object's canonical id and its snapshot: a coupon's code upper-case.
fn object(s: &dyn CatalogStore, kind: Kind, id: &str) -> Result<(String, Value), CatalogError> {
    Ok(match kind {
        Kind::Program => (id.to_string(), snapshot(&s.get_program(id)?)),
        Kind::Partner => (id.to_string(), snapshot(&s.get_partner(id)?)),
        Kind::Link => (id.to_string(), snapshot(&s.get_link(id)?)),
        Kind::Coupon => {
            let (program, code) = id.split_once(':').ok_or_else(|| CatalogError::NotFound { kind: "coupon", id: id.to_string() })?;
            let c = s.get_coupon(program, code)?;
            (coupon_key(&c.spec.program, &c.spec.code), snapshot(&c))
        }
    })
}

/// The action a status change records.
pub fn status_action(kind: Kind, status: Status) -> Action {
    use Action::*;
    match (kind, status) {
        (Kind::Program, Status::Paused) => ProgramPause,
        (Kind::Program, Status::Active) => ProgramResume,
        (Kind::Program, Status::Expired) => ProgramExpire,
        (Kind::Partner, Status::Paused) => PartnerPause,
        (Kind::Partner, Status::Active) => PartnerResume,
        (Kind::Partner, Status::Expired) => PartnerExpire,
        (Kind::Link, Status::Paused) => LinkPause,
        (Kind::Link, Status::Active) => LinkResume,
        (Kind::Link, Status::Expired) => LinkExpire,
        (Kind::Coupon, Status::Paused) => CouponPause,
        (Kind::Coupon, Status::Active) => CouponResume,
        (Kind::Coupon, Status::Expired) => CouponExpire,
    }
}
