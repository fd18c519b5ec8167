//! Changes to stored catalog objects and pages of them: what `Catalogue`'s edits and lists take,
//! for the CLI and the API alike. A patch names only the fields it changes; the object it
//! makes is validated whole, by the same rules as a new one, before the backend writes it.

use serde::{Deserialize, Deserializer};

use super::objects::{NewLink, NewPartner, NewProgram};
use crate::model::{BlockedAction, Channel, Status};
use crate::payouts::PayoutMethod;

/// A field that may be set, set to null (cleared) or left out (kept): `Some(None)` is an
/// explicit `null`.
fn nullable<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// The editable fields of a program; its id and currency stay as created (commissions and
/// balances are kept in it), and its commission rules change through `set_commission_rules`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProgramPatch {
    pub name: Option<String>,
    pub allowed_domains: Option<Vec<String>>,
    pub fallback_url: Option<String>,
    pub blocked_action: Option<BlockedAction>,
    pub country_allow: Option<Vec<String>>,
    pub country_deny: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    pub attribution: Option<crate::attribution::Settings>,
    pub payout_threshold_minor: Option<i64>,
    pub payout_schedule: Option<String>,
    pub partners_create_links: Option<bool>,
}

impl ProgramPatch {
    /// The program with the patch's fields in place.
    pub fn apply(&self, p: &NewProgram) -> NewProgram {
        let mut p = p.clone();
        let set = |slot: &mut String, v: &Option<String>| {
            if let Some(v) = v {
                slot.clone_from(v);
            }
        };
        set(&mut p.name, &self.name);
        set(&mut p.fallback_url, &self.fallback_url);
        set(&mut p.payout_schedule, &self.payout_schedule);
        if let Some(v) = &self.allowed_domains {
            p.allowed_domains.clone_from(v);
        }
        if let Some(v) = &self.country_allow {
            p.country_allow.clone_from(v);
        }
        if let Some(v) = &self.country_deny {
            p.country_deny.clone_from(v);
        }
        if let Some(v) = self.blocked_action {
            p.blocked_action = v;
        }
        if let Some(v) = self.attribution {
            p.attribution = v;
        }
        if let Some(v) = self.payout_threshold_minor {
            p.payout_threshold_minor = v;
        }
        if let Some(v) = self.partners_create_links {
            p.partners_create_links = v;
        }
        p
    }
}

/// The editable fields of a partner; its id stays as created.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartnerPatch {
    pub name: Option<String>,
    pub email: Option<String>,
    pub payout_method: Option<PayoutMethod>,
    #[serde(default, deserialize_with = "nullable")]
    pub stripe_account: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub paypal_email: Option<Option<String>>,
}

impl PartnerPatch {
    /// A patch that replaces the payout details: method, Stripe account and PayPal e-mail.
    pub fn payout(method: PayoutMethod, stripe_account: Option<String>, paypal_email: Option<String>) -> PartnerPatch {
        PartnerPatch {
            payout_method: Some(method),
            stripe_account: Some(stripe_account),
            paypal_email: Some(paypal_email),
            ..Default::default()
        }
    }

    /// The partner with the patch's fields in place.
    pub fn apply(&self, p: &NewPartner) -> NewPartner {
        let mut p = p.clone();
        if let Some(v) = &self.name {
            p.name.clone_from(v);
        }
        if let Some(v) = &self.email {
            p.email.clone_from(v);
        }
        if let Some(v) = self.payout_method {
            p.payout_method = v;
        }
        if let Some(v) = &self.stripe_account {
            p.stripe_account.clone_from(v);
        }
        if let Some(v) = &self.paypal_email {
            p.paypal_email.clone_from(v);
        }
        p
    }

    /// Whether the patch changes more than the payout details.
    pub fn renames(&self) -> bool {
        self.name.is_some() || self.email.is_some()
    }
}

/// The editable fields of a link; its code, program and partner stay as created (its clicks
/// and commissions name them).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkPatch {
    pub destination: Option<String>,
    pub channel: Option<Channel>,
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    /// Unix seconds; `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    pub expires_at: Option<Option<i64>>,
}

impl LinkPatch {
    /// The link with the patch's fields in place.
    pub fn apply(&self, l: &NewLink) -> NewLink {
        let mut l = l.clone();
        for (slot, v) in [
            (&mut l.destination, &self.destination),
            (&mut l.utm_source, &self.utm_source),
            (&mut l.utm_medium, &self.utm_medium),
            (&mut l.utm_campaign, &self.utm_campaign),
        ] {
            if let Some(v) = v {
                slot.clone_from(v);
            }
        }
        if let Some(v) = self.channel {
            l.channel = v;
        }
        if let Some(v) = self.expires_at {
            l.expires_at = v;
        }
        l
    }
}

/// Which objects a list answers, in the order of their ids (a coupon's: its program, then its
/// code), and where the page starts.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only this program's objects (links and coupons).
    pub program: Option<String>,
    /// Only this partner's objects (links and coupons), or this partner (partners).
    pub partner: Option<String>,
    /// Only objects in this status (programs, partners and links).
    pub status: Option<Status>,
    /// Only objects after this id in the list's order: the previous page's last. A coupon's
    /// is `program:CODE`.
    pub after: Option<String>,
    /// At most this many objects.
    pub limit: usize,
}

impl ListFilter {
    /// Whether an object with these fields passes the filter's conditions, apart from the
    /// page's start and size.
    pub(super) fn admits(&self, program: Option<&str>, partner: Option<&str>, status: Option<Status>) -> bool {
        let same = |want: &Option<String>, have: Option<&str>| want.as_deref().is_none_or(|w| have.is_none_or(|h| h == w));
        same(&self.program, program) && same(&self.partner, partner) && self.status.is_none_or(|w| status.is_none_or(|h| h == w))
    }

    /// The page of `rows` (sorted by `key`) that the filter's start and size select.
    pub(super) fn page<T>(&self, rows: impl IntoIterator<Item = T>, key: impl Fn(&T) -> String) -> Vec<T> {
        rows.into_iter().filter(|r| self.after.as_deref().is_none_or(|a| key(r).as_str() > a)).take(self.limit).collect()
    }
}

/// A coupon's place in its list's order: `program:CODE`.
pub fn coupon_key(program: &str, code: &str) -> String {
    format!("{program}:{code}")
}
