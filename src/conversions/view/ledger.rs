//! The ledger listing's filter and page, as every backend's reader answers it.

use crate::ledger::{AccountKey, StoredTransfer};

/// Which transfers to list. Filters combine with AND.
#[derive(Debug, Clone, Default)]
pub struct LedgerFilter {
    /// Transfers that debit or credit this account.
    pub account: Option<AccountKey>,
    /// Every transfer of this commission: those that carry its id and those whose cause is
    /// `commission:<id>:...` (the move to payable and reversals carry none).
    pub commission_id: Option<String>,
    /// Transfers whose cause starts with this, byte for byte.
    pub cause_prefix: Option<String>,
    /// The page starts after this `seq`.
    pub after_seq: u64,
    pub limit: usize,
}

/// One page of transfers in `seq` order.
#[derive(Debug, Clone)]
pub struct LedgerPage {
    pub transfers: Vec<StoredTransfer>,
    /// True when at least one more transfer matches after the last one here.
    pub more: bool,
}
