//! The ledger: double-entry, append-only, hash-chained, modelled on TigerBeetle.
//!
//! Accounts are `(kind, owner, currency)`. A transfer debits one account and credits another by
//! the same positive amount in one currency, so every transfer balances. Transfers are
//! `Single` (posted at once) or two-phase: a `Pending` transfer reserves the amount, and a later
//! `Post` (all of it or less, the rest released) or `Void` resolves it, exactly once.
//!
//! A transfer's id derives from its cause (`TransferId::derive`), so a retry finds the first
//! transfer: identical fields are a no-op (`Applied::AlreadyExists`), any other difference is
//! `LedgerError::Mismatch` naming the field. Entries are never changed; a correction is a new
//! transfer. Each stored transfer carries `seq`, the previous hash and its own hash over every
//! field, and the chain head is stored, so `verify` finds a changed, removed or reordered row.
//!
//! The logic here is generic over `LedgerTx`, one open transaction of a store: the caller owns
//! the transaction and decides when to commit, so the conversion writer can apply transfers
//! inside its grouped commit, one savepoint per job. `apply` checks everything before it writes,
//! so a refused transfer leaves the transaction as it was. The backends live in `storage`.

mod deferred;
mod types;
mod verify;

pub use deferred::{Deferred, Flush};
pub use types::{canonical, chain_hash, AccountKey, AccountKind, Balance, StoredTransfer, TransferId, TransferKind, TransferRequest};
pub use verify::{verify, CurrencyTotals, VerifyError, VerifyReport};

/// The longest cause, in bytes.
pub const CAUSE_LEN_MAX: usize = 256;
/// The longest account owner or subject, in bytes.
pub const NAME_LEN_MAX: usize = 128;

/// Why a transfer was refused, or the store failed. Each names the transfer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("transfer {id} already exists with a different {field}")]
    Mismatch { id: TransferId, field: &'static str },
    #[error("transfer {id}: pending transfer {pending_id} not found")]
    PendingNotFound { id: TransferId, pending_id: TransferId },
    #[error("transfer {id}: pending transfer {pending_id} was already resolved by transfer {by}")]
    PendingAlreadyResolved { id: TransferId, pending_id: TransferId, by: TransferId },
    #[error("transfer {id}: amount_minor {amount_minor} exceeds the {pending_minor} of pending transfer {pending_id}")]
    AmountExceedsPending { id: TransferId, pending_id: TransferId, amount_minor: i64, pending_minor: i64 },
    #[error("transfer {id}: the {field} is in another currency than the transfer")]
    CurrencyMismatch { id: TransferId, field: &'static str },
    #[error("transfer {id}: amount_minor must be positive, got {amount_minor}")]
    NonPositiveAmount { id: TransferId, amount_minor: i64 },
    #[error("transfer {id}: debits and credits the same account {account}")]
    SameAccount { id: TransferId, account: AccountKey },
    #[error("transfer {id}: its {field} differs from pending transfer {pending_id}")]
    PendingMismatch { id: TransferId, pending_id: TransferId, field: &'static str },
    #[error("transfer {id}: subject {subject:?} already has a {} transfer, {by}", kind.as_str())]
    SubjectAlreadyPosted { id: TransferId, subject: String, kind: TransferKind, by: TransferId },
    #[error("transfer {id}: {field} {why}")]
    Invalid { id: TransferId, field: &'static str, why: String },
    #[error("ledger storage: {0}")]
    Storage(String),
}

/// What `apply` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The transfer was appended at this `seq`.
    Created(u64),
    /// A transfer with this id and identical fields was already stored: nothing changed.
    AlreadyExists,
}

/// One open transaction of a ledger store. Implementations only read and write rows; the rules
/// live in `apply` and `verify`, shared by every backend.
pub trait LedgerTx {
    /// The transfer with this id, if stored.
    fn get_transfer(&mut self, id: &TransferId) -> Result<Option<StoredTransfer>, LedgerError>;
    /// The id of the `Post` or `Void` that resolved this pending transfer, if any.
    fn resolution_of(&mut self, pending_id: &TransferId) -> Result<Option<TransferId>, LedgerError>;
    /// The id of the transfer of this kind (`Post` or `Single`) about this subject, if any.
    fn subject_transfer(&mut self, subject: &str, kind: TransferKind) -> Result<Option<TransferId>, LedgerError>;
    /// The chain head: the last `seq` and its hash; `(0, [0; 32])` when empty. Backends that
    /// allow concurrent writers lock the head here, so appends are serial.
    fn head(&mut self) -> Result<(u64, [u8; 32]), LedgerError>;
    /// Appends a transfer and moves the head to it; `false`, writing nothing, when a transfer
    /// with its id is stored already.
    fn insert_transfer(&mut self, t: &StoredTransfer) -> Result<bool, LedgerError>;
    /// Adds `delta` to an account's stored balance, creating it at zero first.
    fn add_to_balance(&mut self, key: &AccountKey, delta: &Balance) -> Result<(), LedgerError>;
    /// An account's balance; zero for an account never used.
    fn balance(&mut self, key: &AccountKey) -> Result<Balance, LedgerError>;
    /// Up to `limit` transfers with `seq > after_seq`, in `seq` order.
    fn transfers_after(&mut self, after_seq: u64, limit: usize) -> Result<Vec<StoredTransfer>, LedgerError>;
    /// Every stored balance, ordered by account.
    fn balances(&mut self) -> Result<Vec<(AccountKey, Balance)>, LedgerError>;
}

/// Applies one transfer inside `tx`: checks its shape, deduplicates by id, checks the pending
/// transfer it resolves, then appends it to the chain and updates both balances.
///
/// A refused transfer writes nothing. After `LedgerError::Storage` the transaction may hold part
/// of the writes: roll it (or the job's savepoint) back. The head is read, and on PostgreSQL
/// locked, before the id is looked up, so two writers racing with the same id see each other:
/// the second gets `AlreadyExists`, not a unique-constraint failure.
pub fn apply<T: LedgerTx + ?Sized>(tx: &mut T, req: &TransferRequest) -> Result<Applied, LedgerError> {
    check_shape(req)?;
    let (seq, prev_hash) = tx.head()?;
    let id = req.id;
    // A pending transfer needs no other look-up, so it is inserted first and its id's key finds
    // a retry: one index probe instead of two. The other kinds look the id up first: a retried
    // post must be found before the checks its first attempt now fails (its pending resolved).
    if req.kind != TransferKind::Pending {
        if let Some(applied) = retried(tx, req)? {
            return Ok(applied);
        }
    }
    let a = req.amount_minor;
    let (debit, credit) = match req.kind {
        TransferKind::Single => (Balance { debits_posted: a, ..Balance::default() }, Balance { credits_posted: a, ..Balance::default() }),
        TransferKind::Pending => {
            (Balance { debits_pending: a, ..Balance::default() }, Balance { credits_pending: a, ..Balance::default() })
        }
        TransferKind::Post | TransferKind::Void => {
            let pending = resolvable_pending(tx, req)?;
            let p = pending.amount_minor;
            let posted = if req.kind == TransferKind::Post { a } else { 0 };
            (
                Balance { debits_pending: -p, debits_posted: posted, ..Balance::default() },
                Balance { credits_pending: -p, credits_posted: posted, ..Balance::default() },
            )
        }
    };
    if let (Some(s), TransferKind::Post | TransferKind::Single) = (&req.subject, req.kind) {
        if let Some(by) = tx.subject_transfer(s, req.kind)? {
            return Err(LedgerError::SubjectAlreadyPosted { id, subject: s.clone(), kind: req.kind, by });
        }
    }
    let stored = StoredTransfer::chain(seq + 1, prev_hash, req.clone());
    if !tx.insert_transfer(&stored)? {
        return retried(tx, req)?
            .ok_or_else(|| LedgerError::Storage(format!("transfer {id} was refused as stored already but cannot be read")));
    }
    tx.add_to_balance(&req.debit, &debit)?;
    tx.add_to_balance(&req.credit, &credit)?;
    debug_assert_eq!(tx.head().ok(), Some((stored.seq, stored.hash)), "the head moves to the transfer appended");
    Ok(Applied::Created(stored.seq))
}

/// The transfer stored under `req`'s id, if any, as `apply` answers a retry: `AlreadyExists`
/// when it is `req`, else a `Mismatch` naming the first field that differs.
fn retried<T: LedgerTx + ?Sized>(tx: &mut T, req: &TransferRequest) -> Result<Option<Applied>, LedgerError> {
    let Some(existing) = tx.get_transfer(&req.id)? else { return Ok(None) };
    match existing.transfer.first_difference(req) {
        None => Ok(Some(Applied::AlreadyExists)),
        Some(field) => Err(LedgerError::Mismatch { id: req.id, field }),
    }
}

/// The pending transfer a `Post` or `Void` resolves, once checked: it exists, is pending, is not
/// resolved yet, moves the same accounts in the same currency, and covers the amount.
fn resolvable_pending<T: LedgerTx + ?Sized>(tx: &mut T, req: &TransferRequest) -> Result<TransferRequest, LedgerError> {
    let id = req.id;
    let pending_id = req.pending_id.expect("checked by check_shape");
    let pending = match tx.get_transfer(&pending_id)? {
        Some(p) if p.transfer.kind == TransferKind::Pending => p.transfer,
        _ => return Err(LedgerError::PendingNotFound { id, pending_id }),
    };
    if pending.currency != req.currency {
        return Err(LedgerError::CurrencyMismatch { id, field: "pending transfer" });
    }
    if pending.debit != req.debit {
        return Err(LedgerError::PendingMismatch { id, pending_id, field: "debit" });
    }
    if pending.credit != req.credit {
        return Err(LedgerError::PendingMismatch { id, pending_id, field: "credit" });
    }
    if let Some(by) = tx.resolution_of(&pending_id)? {
        return Err(LedgerError::PendingAlreadyResolved { id, pending_id, by });
    }
    if req.amount_minor > pending.amount_minor {
        return Err(LedgerError::AmountExceedsPending {
            id,
            pending_id,
            amount_minor: req.amount_minor,
            pending_minor: pending.amount_minor,
        });
    }
    if req.kind == TransferKind::Void && req.amount_minor != pending.amount_minor {
        return Err(LedgerError::Invalid {
            id,
            field: "amount_minor",
            why: format!("of a void must be the whole {} of pending transfer {pending_id}", pending.amount_minor),
        });
    }
    Ok(pending)
}

/// The checks that need no store: the id derives from the cause, the amount is positive, the
/// accounts differ and share the transfer's currency, and `pending_id` is set exactly for the
/// kinds that resolve a pending transfer.
pub fn check_shape(req: &TransferRequest) -> Result<(), LedgerError> {
    let id = req.id;
    let invalid = |field, why: &str| Err(LedgerError::Invalid { id, field, why: why.to_string() });
    if req.cause.is_empty() || req.cause.len() > CAUSE_LEN_MAX {
        return invalid("cause", &format!("must be 1 to {CAUSE_LEN_MAX} bytes"));
    }
    if TransferId::derive(&req.cause) != id {
        return invalid("id", "is not derived from the cause");
    }
    if req.amount_minor <= 0 {
        return Err(LedgerError::NonPositiveAmount { id, amount_minor: req.amount_minor });
    }
    for (field, account) in [("debit", &req.debit), ("credit", &req.credit)] {
        if account.owner.is_empty() || account.owner.len() > NAME_LEN_MAX {
            return invalid(field, &format!("owner must be 1 to {NAME_LEN_MAX} bytes"));
        }
        if account.currency != req.currency {
            return Err(LedgerError::CurrencyMismatch { id, field });
        }
    }
    if req.debit == req.credit {
        return Err(LedgerError::SameAccount { id, account: req.debit.clone() });
    }
    if let Some(c) = &req.subject {
        if c.is_empty() || c.len() > NAME_LEN_MAX {
            return invalid("subject", &format!("must be 1 to {NAME_LEN_MAX} bytes"));
        }
    }
    match (req.kind.resolves(), req.pending_id.is_some()) {
        (true, false) => invalid("pending_id", "is required to post or void"),
        (false, true) => invalid("pending_id", "is only for a post or a void"),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
