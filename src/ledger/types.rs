//! The ledger's values: accounts, transfer ids, transfers as asked for and as stored, balances,
//! and the canonical encoding the hash chain is computed over.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::model::Currency;

/// What an account is for. Every account is one kind, one owner and one currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AccountKind {
    /// What a program has spent on commissions; owned by a program.
    ProgramExpense,
    /// Commission earned by a partner and not yet approved.
    PartnerPending,
    /// Approved commission a partner is owed.
    PartnerPayable,
    /// Commission paid out to a partner.
    PartnerPaid,
}

impl AccountKind {
    /// Every kind, in a fixed order.
    pub const ALL: [AccountKind; 4] =
        [AccountKind::ProgramExpense, AccountKind::PartnerPending, AccountKind::PartnerPayable, AccountKind::PartnerPaid];

    /// The stored name, also used in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountKind::ProgramExpense => "program_expense",
            AccountKind::PartnerPending => "partner_pending",
            AccountKind::PartnerPayable => "partner_payable",
            AccountKind::PartnerPaid => "partner_paid",
        }
    }

    /// The inverse of `as_str`.
    pub fn parse(s: &str) -> Option<AccountKind> {
        AccountKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    fn code(self) -> u8 {
        self as u8 + 1
    }
}

/// An account: kind, owner (a program id or a partner id) and currency (ISO 4217, upper-case).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountKey {
    pub kind: AccountKind,
    pub owner: String,
    pub currency: Currency,
}

impl AccountKey {
    /// An account key.
    pub fn new(kind: AccountKind, owner: &str, currency: Currency) -> AccountKey {
        AccountKey { kind, owner: owner.to_string(), currency }
    }
}

impl fmt::Display for AccountKey {
    /// `partner_payable:alice:USD`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.kind.as_str(), self.owner, self.currency)
    }
}

/// The first 8 hex digits of a subject id such as `cm_` + 24 hex digits, as 4 bytes.
fn time_prefix(subject: &str) -> Option<[u8; 4]> {
    let (kind, digits) = subject.split_once('_')?;
    if !(2..=4).contains(&kind.len()) || !kind.bytes().all(|b| b.is_ascii_lowercase()) || digits.len() < 8 {
        return None;
    }
    let hex = digits.as_bytes();
    if !hex.iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b)) {
        return None;
    }
    let nibble = |b: u8| if b.is_ascii_digit() { b - b'0' } else { b - b'a' + 10 };
    let mut out = [0; 4];
    for (i, o) in out.iter_mut().enumerate() {
        *o = nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]);
    }
    Some(out)
}

/// A transfer id: 16 bytes derived from the transfer's cause (`TransferId::derive`). Shown as hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransferId(pub [u8; 16]);

impl TransferId {
    /// The id of the transfer with this cause. Causes are domain-separated strings of the shape
    /// `<kind>:<subject>:<step>`, so the same cause always gives the same id and a retry finds
    /// the first transfer.
    ///
    /// The id is the first 16 bytes of SHA-256 of the cause, except that when the cause's
    /// subject (its second `:`-separated field) is an id made of two to four lower-case letters,
    /// `_` and at least 8 lower-case hex digits, the id's first 4 bytes are those first 8 hex
    /// digits: callers that start their subject ids with a time (in seconds) get ids that
    /// grow with time, as TigerBeetle advises for its ids, so the store's unique index of ids
    /// takes a group's inserts on a few pages at its end instead of one random page each.
    pub fn derive(cause: &str) -> TransferId {
        let mut h = Sha256::new();
        h.update(b"clickgate.ledger.transfer-id.v1\0");
        h.update(cause.as_bytes());
        let d = h.finalize();
        let mut id = [0; 16];
        id.copy_from_slice(&d[..16]);
        if let Some(time) = cause.split(':').nth(1).and_then(time_prefix) {
            id[..4].copy_from_slice(&time);
        }
        TransferId(id)
    }

    /// Parses 32 hex digits.
    pub fn from_hex(s: &str) -> Option<TransferId> {
        if s.len() != 32 {
            return None;
        }
        let mut id = [0; 16];
        for (i, b) in id.iter_mut().enumerate() {
            *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(TransferId(id))
    }
}

impl fmt::Display for TransferId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for TransferId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TransferId({self})")
    }
}

/// How a transfer moves money: TigerBeetle's two phases, or posted at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TransferKind {
    /// Reserves the amount: it counts in the accounts' pending balances until posted or voided.
    Pending,
    /// Posts a pending transfer, all of it or less (the rest is released).
    Post,
    /// Releases a pending transfer entirely.
    Void,
    /// Posted at once.
    Single,
}

impl TransferKind {
    /// Every kind, in a fixed order.
    pub const ALL: [TransferKind; 4] = [TransferKind::Pending, TransferKind::Post, TransferKind::Void, TransferKind::Single];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            TransferKind::Pending => "pending",
            TransferKind::Post => "post",
            TransferKind::Void => "void",
            TransferKind::Single => "single",
        }
    }

    /// The inverse of `as_str`.
    pub fn parse(s: &str) -> Option<TransferKind> {
        TransferKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// True for the kinds that resolve a pending transfer.
    pub fn resolves(self) -> bool {
        matches!(self, TransferKind::Post | TransferKind::Void)
    }

    fn code(self) -> u8 {
        self as u8 + 1
    }
}

/// A transfer to apply: debit one account and credit another by the same positive amount in one
/// currency. `id` must be `TransferId::derive(&cause)`. `at_ms` is the time of the first
/// application; a retry's `at_ms` is not compared, so a retry later is still a no-op.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferRequest {
    pub id: TransferId,
    pub cause: String,
    pub debit: AccountKey,
    pub credit: AccountKey,
    pub amount_minor: i64,
    pub currency: Currency,
    pub kind: TransferKind,
    /// What this transfer is about, if anything: an opaque id chosen by the caller (a
    /// commission's, for the lifecycle). A subject has at most one `Post` and one `Single`.
    pub subject: Option<String>,
    /// For `Post` and `Void`: the pending transfer resolved. `None` for the other kinds.
    pub pending_id: Option<TransferId>,
    pub at_ms: i64,
}

impl TransferRequest {
    /// The first field (other than `at_ms`) in which `other` differs from `self`, by name.
    pub fn first_difference(&self, other: &TransferRequest) -> Option<&'static str> {
        let fields: [(&'static str, bool); 9] = [
            ("id", self.id == other.id),
            ("cause", self.cause == other.cause),
            ("kind", self.kind == other.kind),
            ("debit", self.debit == other.debit),
            ("credit", self.credit == other.credit),
            ("currency", self.currency == other.currency),
            ("amount_minor", self.amount_minor == other.amount_minor),
            ("pending_id", self.pending_id == other.pending_id),
            ("subject", self.subject == other.subject),
        ];
        fields.into_iter().find(|(_, same)| !same).map(|(name, _)| name)
    }
}

/// A transfer as stored: its place in the chain, the hash of the one before, and its own hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTransfer {
    pub seq: u64,
    pub transfer: TransferRequest,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
}

impl StoredTransfer {
    /// Links `transfer` into the chain after `prev_hash`, at `seq`.
    pub fn chain(seq: u64, prev_hash: [u8; 32], transfer: TransferRequest) -> StoredTransfer {
        let hash = chain_hash(&prev_hash, seq, &transfer);
        StoredTransfer { seq, transfer, prev_hash, hash }
    }

    /// Recomputes the hash from the stored fields.
    pub fn computed_hash(&self) -> [u8; 32] {
        chain_hash(&self.prev_hash, self.seq, &self.transfer)
    }
}

/// SHA-256(prev_hash || canonical encoding of every stored field).
pub fn chain_hash(prev_hash: &[u8; 32], seq: u64, t: &TransferRequest) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev_hash);
    h.update(canonical(seq, t));
    h.finalize().into()
}

/// The canonical encoding of a stored transfer: a version byte, then every field in a fixed
/// order, integers big-endian, strings length-prefixed, options tagged, so two different rows
/// never encode alike.
pub fn canonical(seq: u64, t: &TransferRequest) -> Vec<u8> {
    let mut b = Vec::with_capacity(128 + t.cause.len());
    b.push(1);
    b.extend_from_slice(&seq.to_be_bytes());
    b.extend_from_slice(&t.id.0);
    put_str(&mut b, &t.cause);
    for a in [&t.debit, &t.credit] {
        b.push(a.kind.code());
        put_str(&mut b, &a.owner);
        b.extend_from_slice(&a.currency.bytes());
    }
    b.extend_from_slice(&t.amount_minor.to_be_bytes());
    b.extend_from_slice(&t.currency.bytes());
    b.push(t.kind.code());
    match &t.subject {
        Some(c) => {
            b.push(1);
            put_str(&mut b, c);
        }
        None => b.push(0),
    }
    match &t.pending_id {
        Some(p) => {
            b.push(1);
            b.extend_from_slice(&p.0);
        }
        None => b.push(0),
    }
    b.extend_from_slice(&t.at_ms.to_be_bytes());
    b
}

fn put_str(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(&(s.len() as u32).to_be_bytes());
    b.extend_from_slice(s.as_bytes());
}

/// An account's balance, TigerBeetle-style, in minor units. Also used as a delta.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Balance {
    pub debits_pending: i64,
    pub credits_pending: i64,
    pub debits_posted: i64,
    pub credits_posted: i64,
}

impl Balance {
    /// This balance plus a delta.
    pub fn plus(&self, d: &Balance) -> Balance {
        Balance {
            debits_pending: self.debits_pending + d.debits_pending,
            credits_pending: self.credits_pending + d.credits_pending,
            debits_posted: self.debits_posted + d.debits_posted,
            credits_posted: self.credits_posted + d.credits_posted,
        }
    }

    /// The fields by name, in a fixed order, for messages and checks.
    pub fn fields(&self) -> [(&'static str, i64); 4] {
        [
            ("debits_pending", self.debits_pending),
            ("credits_pending", self.credits_pending),
            ("debits_posted", self.debits_posted),
            ("credits_posted", self.credits_posted),
        ]
    }

    /// Posted credits less posted debits: what the account holds, for credit-normal accounts.
    pub fn net_posted(&self) -> i64 {
        self.credits_posted - self.debits_posted
    }
}
