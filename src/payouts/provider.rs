//! The vocabulary every payout provider shares: the method a partner chose, its validated
//! details, one payout's request and the provider's typed answer.
//!
//! Details are validated where they enter (a partner's record, a config file), so a provider
//! only ever sees an `acct_…` or an email that it can put into a header, a form or a CSV cell
//! as it is.

use std::fmt;
use std::str::FromStr;

use crate::model::Currency;

/// Why a payout method, a payout detail or a payout request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    #[error("payout_method {0:?} is not one of stripe, paypal, wise, manual")]
    Method(String),
    #[error("stripe_account {0:?} is not \"acct_\" followed by letters and digits")]
    StripeAccount(String),
    #[error("{field} {value:?} is not an email address")]
    Email { field: &'static str, value: String },
    #[error("payout method {method} needs {field}")]
    Missing { method: PayoutMethod, field: &'static str },
    #[error("{field} {value:?} is empty, longer than {max} bytes, or holds a space or a control character")]
    Id { field: &'static str, value: String, max: usize },
    #[error("name {0:?} is empty, longer than {NAME_CHARS_MAX} characters, or holds a control character")]
    Name(String),
    #[error("amount_minor must be positive, got {0}")]
    Amount(i64),
}

/// Longest payout id: Stripe's limit on an `Idempotency-Key`.
pub const PAYOUT_ID_BYTES_MAX: usize = 255;
/// Longest run or partner id: both go into Stripe fields (`transfer_group`, metadata values
/// of at most 500 characters) and CSV cells, and ids are short in practice.
pub const ID_BYTES_MAX: usize = 255;
/// Longest email address (RFC 5321's path limit).
pub const EMAIL_BYTES_MAX: usize = 254;
/// Longest recipient name in a file export.
pub const NAME_CHARS_MAX: usize = 140;
/// Longest Stripe account id accepted (Stripe's are `acct_` and 16 characters).
const STRIPE_ACCOUNT_BYTES_MAX: usize = 64;

/// How a partner is paid. Stored, so it parses strictly: an unknown spelling is an error.
// Deserialized as a plain enum of lower-case names (strict: any other spelling is an error),
// so the config's key tracer can walk it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PayoutMethod {
    /// A Stripe Connect transfer to the partner's connected account.
    Stripe,
    /// A line in a PayPal Payouts CSV.
    Paypal,
    /// A line in a Wise batch CSV.
    Wise,
    /// Paid outside clickgate; an operator confirms it.
    #[default]
    Manual,
}

impl PayoutMethod {
    /// Every method, in the order the docs list them.
    pub const ALL: [PayoutMethod; 4] = [PayoutMethod::Stripe, PayoutMethod::Paypal, PayoutMethod::Wise, PayoutMethod::Manual];

    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PayoutMethod::Stripe => "stripe",
            PayoutMethod::Paypal => "paypal",
            PayoutMethod::Wise => "wise",
            PayoutMethod::Manual => "manual",
        }
    }

    /// Parses the stored spelling, and nothing else (no case folding, no spaces).
    pub fn parse(s: &str) -> Result<PayoutMethod, ProviderError> {
        PayoutMethod::ALL.into_iter().find(|m| m.as_str() == s).ok_or_else(|| ProviderError::Method(s.to_string()))
    }
}

impl fmt::Display for PayoutMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PayoutMethod {
    type Err = ProviderError;

    fn from_str(s: &str) -> Result<PayoutMethod, ProviderError> {
        PayoutMethod::parse(s)
    }
}

impl serde::Serialize for PayoutMethod {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A Stripe connected account id: `acct_` and ASCII letters and digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StripeAccount(String);

impl StripeAccount {
    /// Parses `acct_` followed by at least one ASCII letter or digit.
    pub fn parse(s: &str) -> Result<StripeAccount, ProviderError> {
        let ok = s.len() <= STRIPE_ACCOUNT_BYTES_MAX
            && s.strip_prefix("acct_").is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric()));
        if ok {
            Ok(StripeAccount(s.to_string()))
        } else {
            Err(ProviderError::StripeAccount(s.to_string()))
        }
    }

    /// The id, e.g. `acct_1Nv0FGQ9RKHgCVdK`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An email address, checked for a shape that every provider accepts and that needs no
/// quoting anywhere: `local@domain`, no spaces, quotes, commas or control characters, and a
/// domain of dotted labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Parses an address; `field` names the detail in the error (`paypal_email`, `email`).
    pub fn parse(field: &'static str, s: &str) -> Result<Email, ProviderError> {
        if email_ok(s) {
            Ok(Email(s.to_string()))
        } else {
            Err(ProviderError::Email { field, value: s.to_string() })
        }
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn email_ok(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else { return false };
    let local_ok = (1..=64).contains(&local.len())
        && local.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b))
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..");
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
        && labels.last().is_some_and(|tld| tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic()));
    s.len() <= EMAIL_BYTES_MAX && local_ok && domain_ok
}

/// Where one payout goes, by method, with the details that method needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A Stripe Connect transfer to this account.
    Stripe(StripeAccount),
    /// A PayPal payout to this address.
    Paypal(Email),
    /// A Wise transfer to an email recipient.
    Wise { name: String, email: Email },
    /// Paid by hand.
    Manual,
}

/// A partner's payout details as stored, before validation.
#[derive(Debug, Clone, Copy, Default)]
pub struct PartnerDetails<'a> {
    /// The partner's display name (Wise's recipient name).
    pub name: &'a str,
    /// The partner's contact email (Wise's recipient email).
    pub email: Option<&'a str>,
    /// `stripe_account`, needed by `stripe`.
    pub stripe_account: Option<&'a str>,
    /// `paypal_email`, needed by `paypal`.
    pub paypal_email: Option<&'a str>,
}

impl Destination {
    /// The destination a partner's method and details describe, or which detail is missing
    /// or malformed. Details the method does not use are still checked when present, so a
    /// partner record never holds a malformed one.
    pub fn from_details(method: PayoutMethod, d: PartnerDetails<'_>) -> Result<Destination, ProviderError> {
        let stripe = d.stripe_account.map(StripeAccount::parse).transpose()?;
        let paypal = d.paypal_email.map(|e| Email::parse("paypal_email", e)).transpose()?;
        let email = d.email.map(|e| Email::parse("email", e)).transpose()?;
        let missing = |field| ProviderError::Missing { method, field };
        Ok(match method {
            PayoutMethod::Stripe => Destination::Stripe(stripe.ok_or_else(|| missing("stripe_account"))?),
            PayoutMethod::Paypal => Destination::Paypal(paypal.ok_or_else(|| missing("paypal_email"))?),
            PayoutMethod::Wise => Destination::Wise { name: check_name(d.name)?, email: email.ok_or_else(|| missing("email"))? },
            PayoutMethod::Manual => Destination::Manual,
        })
    }

    /// The method this destination belongs to.
    pub fn method(&self) -> PayoutMethod {
        match self {
            Destination::Stripe(_) => PayoutMethod::Stripe,
            Destination::Paypal(_) => PayoutMethod::Paypal,
            Destination::Wise { .. } => PayoutMethod::Wise,
            Destination::Manual => PayoutMethod::Manual,
        }
    }
}

/// A recipient name: a CSV cell may hold commas and quotes, but never a line break, and never
/// starts as a spreadsheet formula would (`=`, `+`, `-`, `@`): the exports refuse such a cell,
/// so a name they would refuse is refused here, when it is set, and never fails a run.
pub fn check_name(name: &str) -> Result<String, ProviderError> {
    let n = name.chars().count();
    let formula = name.trim_start().starts_with(['=', '+', '-', '@']);
    if (1..=NAME_CHARS_MAX).contains(&n) && !name.chars().any(char::is_control) && !name.trim().is_empty() && !formula {
        Ok(name.to_string())
    } else {
        Err(ProviderError::Name(name.to_string()))
    }
}

/// One payout for a provider to make. Made only by [`PayoutRequest::new`], so its ids fit
/// every provider's fields and its amount is positive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayoutRequest {
    payout_id: String,
    run_id: String,
    partner: String,
    currency: Currency,
    amount_minor: i64,
    destination: Destination,
}

impl PayoutRequest {
    /// Checks and builds a request. The payout id is the provider's idempotency key, so it
    /// must be the same on every attempt of this payout.
    pub fn new(
        payout_id: &str,
        run_id: &str,
        partner: &str,
        currency: Currency,
        amount_minor: i64,
        destination: Destination,
    ) -> Result<PayoutRequest, ProviderError> {
        check_id("payout_id", payout_id, PAYOUT_ID_BYTES_MAX)?;
        check_id("run_id", run_id, ID_BYTES_MAX)?;
        check_id("partner", partner, ID_BYTES_MAX)?;
        if amount_minor <= 0 {
            return Err(ProviderError::Amount(amount_minor));
        }
        let (payout_id, run_id, partner) = (payout_id.to_string(), run_id.to_string(), partner.to_string());
        Ok(PayoutRequest { payout_id, run_id, partner, currency, amount_minor, destination })
    }

    /// The payout's id, derived from (run, partner, currency); the idempotency key.
    pub fn payout_id(&self) -> &str {
        &self.payout_id
    }

    /// The run that made this payout.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The partner paid.
    pub fn partner(&self) -> &str {
        &self.partner
    }

    /// The payout's currency.
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// The amount in the currency's minor units, positive.
    pub fn amount_minor(&self) -> i64 {
        self.amount_minor
    }

    /// Where the money goes.
    pub fn destination(&self) -> &Destination {
        &self.destination
    }
}

/// An id that goes into headers, form fields and CSV cells as it is: visible ASCII, no
/// spaces, quotes or commas.
fn check_id(field: &'static str, value: &str, max: usize) -> Result<(), ProviderError> {
    let ok = (1..=max).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_graphic() && !b"\",".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ProviderError::Id { field, value: value.to_string(), max })
    }
}

/// What a provider answered for one payout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayoutResult {
    /// The provider took the money: the payout is paid, and this is the provider's id for it.
    Paid { transfer_id: String },
    /// Nothing is known to have moved, or the outcome is unknown (the attempts ran out on
    /// timeouts, 429s or 5xx). The money stays payable. An unknown outcome is settled only by
    /// asking again under the same payout id, whose idempotency key makes a second transfer
    /// impossible.
    Retryable {
        why: String,
        /// The platform balance could not cover the payout (Stripe's `balance_insufficient`).
        /// Stripe stores that answer under the key and replays it for 24 hours, so the
        /// money is paid by a later run's payout, under its own id.
        insufficient_balance: bool,
    },
    /// The provider refused the payout for good, naming the partner and why; nothing moved.
    Failed { why: String },
}

#[cfg(test)]
mod tests;
