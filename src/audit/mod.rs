//! The audit log: who changed what, when, and the object before and after.
//!
//! Every write made through the API or the CLI appends one `Entry`, in the write's own
//! transaction wherever the write has one (the catalog, the API keys), so there is never a write
//! without its record nor a record without its write. Who is an `Actor`: a stored key, the
//! configured admin key (`admin`) or the command line (`cli`). What is an `Action`, from a
//! closed set whose name starts with the type of object it changes (`partner.create`).
//!
//! The object's JSON goes through `redact` when the entry is made, whoever makes it: e-mail
//! addresses, payout accounts, customer references and key secrets never reach the log in
//! clear. A backend implements `AuditLog` beside the catalog; its table refuses updates and
//! deletes.

use std::fmt;

use serde::Serialize;
use serde_json::Value;

/// What went wrong with the audit log.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("{field}: {why}")]
    Invalid { field: &'static str, why: String },
    #[error("the audit log failed: {0}")]
    Storage(String),
}

/// Who made a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A stored API key, by its id (`ak_…`).
    Key(String),
    /// The configured bootstrap admin key, which has no id.
    Admin,
    /// The command line, run by whoever can open the store.
    Cli,
}

impl Actor {
    /// As stored: the key's id, `admin` or `cli`.
    pub fn as_str(&self) -> &str {
        match self {
            Actor::Key(id) => id,
            Actor::Admin => "admin",
            Actor::Cli => "cli",
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Declares `Action` with each variant's stored name.
macro_rules! actions {
    ($($variant:ident => $name:literal,)*) => {
        /// What a write did, as stored: `<object type>.<verb>`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Action {
            $($variant,)*
        }

        impl Action {
            /// Every action, in declaration order.
            pub const ALL: &'static [Action] = &[$(Action::$variant,)*];

            /// The stored name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Action::$variant => $name,)*
                }
            }

            /// A stored name, strictly: an unknown one is `None`.
            pub fn parse(s: &str) -> Option<Action> {
                match s {
                    $($name => Some(Action::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

actions! {
    ProgramCreate => "program.create",
    ProgramUpdate => "program.update",
    ProgramPause => "program.pause",
    ProgramResume => "program.resume",
    ProgramExpire => "program.expire",
    PartnerCreate => "partner.create",
    PartnerUpdate => "partner.update",
    PartnerPause => "partner.pause",
    PartnerResume => "partner.resume",
    PartnerExpire => "partner.expire",
    LinkCreate => "link.create",
    LinkUpdate => "link.update",
    LinkPause => "link.pause",
    LinkResume => "link.resume",
    LinkExpire => "link.expire",
    LinkImport => "link.import",
    CouponCreate => "coupon.create",
    CouponPause => "coupon.pause",
    CouponResume => "coupon.resume",
    CouponExpire => "coupon.expire",
    CommissionRulesPut => "commission_rules.put",
    ApiKeyCreate => "api_key.create",
    ApiKeyRevoke => "api_key.revoke",
    WebhookEndpointCreate => "webhook_endpoint.create",
    WebhookEndpointRotateSecret => "webhook_endpoint.rotate_secret",
    WebhookEndpointEnable => "webhook_endpoint.enable",
    WebhookEndpointDelete => "webhook_endpoint.delete",
    PayoutRunCreate => "payout_run.create",
    PayoutRunConfirm => "payout_run.confirm",
    ConversionConfirm => "conversion.confirm",
    ConversionCancel => "conversion.cancel",
    ConversionRefund => "conversion.refund",
    CommissionApprove => "commission.approve",
    PrivacyErase => "privacy.erase",
}

impl Action {
    /// The type of object it changes: its name before the dot.
    pub fn object_type(self) -> &'static str {
        let name = self.as_str();
        &name[..name.find('.').unwrap_or(name.len())]
    }

    /// Whether `s` is the object type of some action.
    pub fn is_object_type(s: &str) -> bool {
        Action::ALL.iter().any(|a| a.object_type() == s)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The fields whose values never reach the log in clear, at any depth of an object's JSON.
pub const SENSITIVE: &[&str] = &["email", "paypal_email", "stripe_account", "customer_ref", "secret", "sha256"];

/// What a sensitive value becomes.
pub const REDACTED: &str = "[redacted]";

/// Replaces every non-null value of a `SENSITIVE` field, at any depth, by `REDACTED`. An empty
/// value is replaced too: the log tells that the field is set, never what it holds.
pub fn redact(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, field) in map.iter_mut() {
                if SENSITIVE.contains(&k.as_str()) && !field.is_null() {
                    *field = Value::String(REDACTED.to_string());
                } else {
                    redact(field);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// The JSON of an object as the log keeps it: serialised, without the store's row ids, and
/// redacted.
pub fn snapshot<T: Serialize + ?Sized>(object: &T) -> Value {
    let mut v = serde_json::to_value(object).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.remove("row_id");
        o.remove("partner_row_id");
    }
    redact(&mut v);
    v
}

/// One write, on its way into the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub at_ms: u64,
    pub actor: Actor,
    pub action: Action,
    pub object_id: String,
    /// The object before the write; `None` for a creation.
    pub before: Option<Value>,
    /// The object after the write; `None` for a deletion.
    pub after: Option<Value>,
}

impl Entry {
    /// An entry whose objects are redacted here, whatever the caller passed.
    pub fn new(
        actor: &Actor,
        action: Action,
        object_id: impl Into<String>,
        at_ms: u64,
        before: Option<Value>,
        after: Option<Value>,
    ) -> Entry {
        let clean = |v: Option<Value>| {
            v.map(|mut v| {
                redact(&mut v);
                v
            })
        };
        Entry { at_ms, actor: actor.clone(), action, object_id: object_id.into(), before: clean(before), after: clean(after) }
    }

    /// The type of object it records.
    pub fn object_type(&self) -> &'static str {
        self.action.object_type()
    }
}

/// Who writes and when, handed to a store that builds the entry inside the write's transaction
/// (where the object before and after is read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    pub actor: Actor,
    pub at_ms: u64,
}

impl Stamp {
    pub fn new(actor: Actor, at_ms: u64) -> Stamp {
        Stamp { actor, at_ms }
    }

    /// The entry of `action` on `object_id`, its objects redacted.
    pub fn entry(&self, action: Action, object_id: &str, before: Option<Value>, after: Option<Value>) -> Entry {
        Entry::new(&self.actor, action, object_id, self.at_ms, before, after)
    }
}

/// One stored entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    /// Its place in the log: increasing, the order of the writes' commits on SQLite.
    pub seq: i64,
    pub at_ms: u64,
    pub actor: String,
    pub action: &'static str,
    pub object_type: &'static str,
    pub object_id: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

impl Record {
    /// A stored row, its action parsed strictly and its objects read back as JSON.
    pub fn from_row(
        seq: i64,
        at_ms: i64,
        actor: String,
        action: &str,
        object_id: String,
        before: Option<String>,
        after: Option<String>,
    ) -> Result<Record, AuditError> {
        let action = Action::parse(action).ok_or_else(|| AuditError::Storage(format!("entry {seq} holds an unknown action {action:?}")))?;
        let json = |s: Option<String>| -> Result<Option<Value>, AuditError> {
            s.map(|s| serde_json::from_str(&s).map_err(|e| AuditError::Storage(format!("entry {seq}'s object is not JSON: {e}"))))
                .transpose()
        };
        Ok(Record {
            seq,
            at_ms: at_ms.max(0) as u64,
            actor,
            action: action.as_str(),
            object_type: action.object_type(),
            object_id,
            before: json(before)?,
            after: json(after)?,
        })
    }
}

/// Which entries a read answers, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// Only entries about objects of this type.
    pub object_type: Option<String>,
    /// Only entries about this object (with `object_type`).
    pub object_id: Option<String>,
    /// Only entries of this actor: a key id, `admin` or `cli`.
    pub actor: Option<String>,
    /// Only entries made at or after this time.
    pub since_ms: Option<u64>,
    /// Only entries after this `seq`: the previous page's last.
    pub after_seq: Option<i64>,
    pub limit: usize,
}

/// Entries read at most at once.
pub const PAGE_LEN_MAX: usize = 1_000;

impl Query {
    /// Reads `object` as `<type>` or `<type>:<id>`, the type one of the actions' (a coupon's id
    /// is `<program>:<CODE>`, so only the first colon splits).
    pub fn object(mut self, object: &str) -> Result<Query, AuditError> {
        let (kind, id) = match object.split_once(':') {
            Some((k, id)) => (k, Some(id)),
            None => (object, None),
        };
        if !Action::is_object_type(kind) {
            let known: Vec<&str> = {
                let mut v: Vec<&str> = Action::ALL.iter().map(|a| a.object_type()).collect();
                v.dedup();
                v
            };
            return Err(AuditError::Invalid {
                field: "object",
                why: format!("{kind:?} is not an object type; one of {}", known.join(", ")),
            });
        }
        if id.is_some_and(|id| id.is_empty() || id.len() > 200) {
            return Err(AuditError::Invalid { field: "object", why: "an object's id is 1..=200 bytes".into() });
        }
        self.object_type = Some(kind.to_string());
        self.object_id = id.map(str::to_string);
        Ok(self)
    }

    /// Whether `r` is one this query answers, `after_seq` and `limit` aside: what a backend's
    /// `WHERE` clause says, for tests and simple stores.
    pub fn admits(&self, r: &Record) -> bool {
        self.object_type.as_deref().is_none_or(|t| t == r.object_type)
            && self.object_id.as_deref().is_none_or(|id| id == r.object_id)
            && self.actor.as_deref().is_none_or(|a| a == r.actor)
            && self.since_ms.is_none_or(|s| r.at_ms >= s)
    }
}

/// A backend's log (`storage::sqlite`, `storage::pg`, beside the catalog).
pub trait AuditLog {
    /// Appends an entry; inside a transaction open on the same connection, it joins it.
    fn append_audit(&self, e: &Entry) -> Result<(), AuditError>;
    /// A page of entries in `seq` order.
    fn audit_page(&self, q: &Query) -> Result<Vec<Record>, AuditError>;
}

#[cfg(test)]
mod tests;
