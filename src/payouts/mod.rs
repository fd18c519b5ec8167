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
//! - `state`: runs and payouts as stored, their ids and states, and `PayoutTx`, what a
//!   backend implements beside the ledger and the commissions.
//! - `steps`: a payout's transfers (`created` → `sent` pending → `paid` posted | `failed`
//!   voided), its commissions and its webhook events, inside the caller's transaction.
//! - `plan`: who a run pays: per partner and currency, the programs past their threshold; or
//!   the one partner a settlement by hand pays.
//! - `run`: a run from the lock to the end (resumable), a settlement by hand as a run of its
//!   own, and `confirm` for file and manual payouts; `transfers`: Stripe batches for the
//!   synchronous run.
//! - `schedule`: `off`, `weekly:<weekday>`, `monthly:<day>`, and when a run is due.

pub mod export;
pub mod plan;
pub mod provider;
pub mod run;
pub mod schedule;
pub mod state;
pub mod steps;
pub mod stripe;
pub mod transfers;

pub use export::{Export, ExportError, ExportFormat, ExportLine};
pub use plan::{Directory, PartnerEntry, Plan};
pub use provider::{Destination, Email, PayoutMethod, PayoutRequest, PayoutResult, ProviderError, StripeAccount};
pub use run::{ByHand, PayoutStore, Report, Request, Settings, Settled, Transfers};
pub use schedule::Schedule;
pub use state::{Payout, PayoutError, PayoutFilter, PayoutStatus, PayoutTx, Run, Trigger};
pub use stripe::{SecretKey, StripeClient, StripeConfig, StripeError};
pub use transfers::StripeTransfers;
