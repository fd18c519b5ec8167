//! The catalog's objects as they are created and stored: programs, partners, links and coupons,
//! each validated on the way in by the rules here, whichever backend stores it.

use serde::{Deserialize, Serialize};

use super::CatalogError;
use crate::model::{destination, BlockedAction, Channel, Currency, Status};
use crate::payouts::provider::PartnerDetails;
use crate::payouts::{Destination, PayoutMethod};

fn bad(field: &'static str, why: impl Into<String>) -> CatalogError {
    CatalogError::Invalid { field, why: why.into() }
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
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProgram {
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub id: String,
    pub name: String,
    /// Parsed where the program is read (config, CLI, stored spec); an error names the field.
    #[serde(deserialize_with = "currency_field")]
    #[schema(value_type = String, pattern = "^[A-Z]{3}$")]
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
    #[schema(value_type = Object)]
    pub attribution: crate::attribution::Settings,
    /// Commission rules and per-partner overrides; 10% of the share with a 30-day lock when
    /// absent. Their `version_hash` is recorded on every commission they produce.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub commission: crate::commission::ProgramRules,
    /// A partner's unpaid commissions of this program are paid once they reach this.
    #[serde(default = "default_payout_threshold")]
    pub payout_threshold_minor: i64,
    /// When scheduled payout runs of this program start (UTC): a `payouts::Schedule`,
    /// spelled as it parses, and checked by `validate`.
    #[serde(default = "default_payout_schedule")]
    pub payout_schedule: String,
    /// Whether a partner's own API key may create and change that partner's links of this
    /// program; only an admin may, when false.
    #[serde(default)]
    pub partners_create_links: bool,
}

fn default_payout_schedule() -> String {
    "off".into()
}

fn default_payout_threshold() -> i64 {
    crate::payouts::plan::DEFAULT_THRESHOLD_MINOR
}

/// The largest payout threshold: a trillion minor units.
const PAYOUT_THRESHOLD_MINOR_MAX: i64 = 1_000_000_000_000;

/// A program's currency, whose error names the field as `validate` names the others.
fn currency_field<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Currency, D::Error> {
    let s = String::deserialize(d)?;
    Currency::parse(&s).map_err(|e| serde::de::Error::custom(format!("currency: {e}")))
}

impl NewProgram {
    /// The program's payout schedule.
    pub fn schedule(&self) -> Result<crate::payouts::Schedule, CatalogError> {
        crate::payouts::Schedule::parse(&self.payout_schedule).map_err(|e| bad("payout_schedule", e.to_string()))
    }

    /// Checks every field; the error names the field.
    pub fn validate(&self) -> Result<(), CatalogError> {
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
        self.commission.validate().map_err(|e| CatalogError::Invalid { field: "commission", why: e.to_string() })?;
        if !(1..=PAYOUT_THRESHOLD_MINOR_MAX).contains(&self.payout_threshold_minor) {
            return Err(bad(
                "payout_threshold_minor",
                format!("must be in 1..={PAYOUT_THRESHOLD_MINOR_MAX}, got {}", self.payout_threshold_minor),
            ));
        }
        self.schedule()?;
        for c in self.country_allow.iter().chain(&self.country_deny) {
            if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(bad("country_allow/country_deny", format!("{c:?} is not an ISO 3166 alpha-2 code")));
            }
        }
        Ok(())
    }
}

/// A partner to create.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPartner {
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub email: String,
    /// How the partner is paid: `stripe`, `paypal`, `wise` or `manual` (the default).
    #[serde(default)]
    pub payout_method: PayoutMethod,
    /// The Stripe Connect account (`acct_…`), for `stripe`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stripe_account: Option<String>,
    /// The PayPal account's email, for `paypal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paypal_email: Option<String>,
}

/// A link to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLink {
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub code: String,
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub program: String,
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
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
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCoupon {
    /// Matched case-insensitively; stored upper-case.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub code: String,
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub program: String,
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub partner: String,
}

/// A coupon as stored: attribution by its code counts only while it is active.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Coupon {
    #[serde(flatten)]
    pub spec: NewCoupon,
    pub status: Status,
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

fn check_slug(field: &'static str, s: &str) -> Result<(), CatalogError> {
    if s.is_empty() || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(bad(field, format!("{s:?} must be 1..=64 of [A-Za-z0-9_-]")));
    }
    Ok(())
}

fn check_utm(field: &'static str, s: &str) -> Result<(), CatalogError> {
    if s.len() > 100 || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b)) {
        return Err(bad(field, format!("{s:?} must be at most 100 of [A-Za-z0-9-_.~]")));
    }
    Ok(())
}

impl NewPartner {
    /// Checks every field; the error names the field.
    pub fn validate(&self) -> Result<(), CatalogError> {
        check_slug("id", &self.id)?;
        if self.name.trim().is_empty() || self.name.len() > 200 {
            return Err(bad("name", "must be 1..=200 bytes"));
        }
        let e = &self.email;
        if !e.is_empty() && (e.len() > 254 || !e.contains('@') || e.contains(char::is_whitespace)) {
            return Err(bad("email", format!("{e:?} is not an email address")));
        }
        self.destination()?;
        Ok(())
    }

    /// Where the partner's payouts go, from the validated payout details; Wise pays to the
    /// partner's email under their name.
    pub fn destination(&self) -> Result<Destination, CatalogError> {
        let details = PartnerDetails {
            name: &self.name,
            email: Some(self.email.as_str()).filter(|e| !e.is_empty()),
            stripe_account: self.stripe_account.as_deref(),
            paypal_email: self.paypal_email.as_deref(),
        };
        Destination::from_details(self.payout_method, details).map_err(|e| bad("payout_method", e.to_string()))
    }
}

impl NewLink {
    /// Checks every field against its program: the code, the UTM tags, and the destination
    /// against the program's allowlist.
    pub fn validate(&self, program: &NewProgram) -> Result<(), CatalogError> {
        check_slug("code", &self.code)?;
        check_utm("utm_source", &self.utm_source)?;
        check_utm("utm_medium", &self.utm_medium)?;
        check_utm("utm_campaign", &self.utm_campaign)?;
        destination::check(&self.destination, &program.allowed_domains)?;
        Ok(())
    }
}

impl NewCoupon {
    /// The coupon as stored: its code upper-case, after checking it.
    pub fn normalized(&self) -> Result<NewCoupon, CatalogError> {
        let code = self.code.to_ascii_uppercase();
        if code.is_empty() || code.len() > 64 || !code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(bad("code", format!("{:?} must be 1..=64 of [A-Za-z0-9_-]", self.code)));
        }
        Ok(NewCoupon { code, program: self.program.clone(), partner: self.partner.clone() })
    }
}
