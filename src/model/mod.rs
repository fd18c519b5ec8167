//! The shared vocabulary: ids, verdicts, reasons, channels, money and secrets that the edge,
//! the click stream and the core all speak.
//!
//! **Architecture invariant:** this module imports nothing of ours; every other module may
//! import it.

pub mod catalog;
pub mod click_id;
pub mod currency;
pub mod destination;
pub mod geo;
pub mod secret;
pub mod verdict;

pub use catalog::{BlockedAction, Channel, Status};
pub use click_id::{ClickId, ClickIdError, ClickSigner, VisitorId, CLICK_ID_BYTES, CLICK_ID_CHARS, VISITOR_ID_CHARS};
pub use currency::{Currency, CurrencyError};
pub use geo::GeoDbKind;
pub use secret::{ct_eq, secret_seed};
pub use verdict::{AlertKind, Reason, Reasons, Verdict};
