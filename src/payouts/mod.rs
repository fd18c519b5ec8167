//! Payouts: how a partner's payable money leaves the program, provider by provider.
//!
//! - `provider`: the vocabulary every provider shares: the payout method a partner chose, its
//!   validated details (`acct_…`, an email), one payout's request and its typed result.
//! - `stripe`: a Stripe Connect transfers client (`POST /v1/transfers`, form-encoded, an
//!   `Idempotency-Key` per payout, a pinned `Stripe-Version`), with bounded retries under the
//!   same key and an injected sleep, over hyper and rustls.
//! - `export`: the file providers, PayPal Payouts CSV and Wise batch CSV, one currency per file,
//!   written atomically, and their reader.
//!
//! Runs, their ledger transfers and their states live with the store and the lifecycle; this
//! module only turns one payout into a provider's request and its answer into a result.
//! Stripe's `transfer.reversed` (a transfer pulled back after it was paid) is out of scope.

pub mod export;
pub mod provider;
pub mod stripe;

pub use export::{Export, ExportError, ExportFormat, ExportLine};
pub use provider::{Destination, Email, PayoutMethod, PayoutRequest, PayoutResult, ProviderError, StripeAccount};
pub use stripe::{SecretKey, StripeClient, StripeConfig, StripeError};
