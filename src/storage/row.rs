//! Decoding a stored row, shared by the backends: both read the same columns.

use crate::ledger::{AccountKey, AccountKind, LedgerError, StoredTransfer, TransferId, TransferKind, TransferRequest};
use crate::model::Currency;

/// The columns of a stored transfer, in the order `decode` reads them.
pub(crate) const COLUMNS: &str = "seq, id, cause, debit_kind, debit_owner, credit_kind, credit_owner, currency, amount_minor, kind, \
                       subject, pending_id, at_ms, prev_hash, hash";

/// The columns `commission_row` reads, in order.
pub const COMMISSION_COLUMNS: &str = "id, conversion_id, program, partner, item, currency, amount_minor, voided_minor, reversed_minor, \
     status, rule_version, period, detail, created_at_ms, lock_until_ms, approved_at_ms, paid_at_ms, payout_id, reserve_seq";

pub(crate) fn bytes<const N: usize>(v: Vec<u8>, what: &str) -> Result<[u8; N], LedgerError> {
    v.try_into().map_err(|v: Vec<u8>| LedgerError::Storage(format!("{what} is {} bytes, not {N}", v.len())))
}

pub(crate) fn account(kind: &str, owner: String, currency: Currency) -> Result<AccountKey, LedgerError> {
    let kind = AccountKind::parse(kind).ok_or_else(|| LedgerError::Storage(format!("unknown account kind {kind:?}")))?;
    Ok(AccountKey { kind, owner, currency })
}

/// A stored currency; one that does not parse is a storage error naming the column, never a guess.
pub(crate) fn currency(s: String) -> Result<Currency, LedgerError> {
    Currency::parse(&s).map_err(|e| LedgerError::Storage(format!("column currency: {e}")))
}

pub(super) type RawRow = (
    i64,
    Vec<u8>,
    String,
    (String, String),
    (String, String),
    String,
    i64,
    String,
    Option<String>,
    Option<Vec<u8>>,
    i64,
    (Vec<u8>, Vec<u8>),
);

/// Decodes a stored transfer; an error names the row's `seq`.
pub(crate) fn decode(raw: RawRow) -> Result<StoredTransfer, LedgerError> {
    let seq = raw.0;
    decode_fields(raw).map_err(|e| match e {
        LedgerError::Storage(why) => LedgerError::Storage(format!("transfer seq {seq} cannot be read: {why}")),
        other => other,
    })
}

fn decode_fields(raw: RawRow) -> Result<StoredTransfer, LedgerError> {
    let (seq, id, cause, (dk, downer), (ck, cowner), cur, amount_minor, kind, subject, pending_id, at_ms, (prev, hash)) = raw;
    let currency = currency(cur)?;
    let transfer = TransferRequest {
        id: TransferId(bytes(id, "an id")?),
        cause,
        debit: account(&dk, downer, currency)?,
        credit: account(&ck, cowner, currency)?,
        amount_minor,
        currency,
        kind: TransferKind::parse(&kind).ok_or_else(|| LedgerError::Storage(format!("unknown kind {kind:?}")))?,
        subject,
        pending_id: pending_id.map(|p| bytes(p, "a pending id").map(TransferId)).transpose()?,
        at_ms,
    };
    Ok(StoredTransfer { seq: seq as u64, transfer, prev_hash: bytes(prev, "a hash")?, hash: bytes(hash, "a hash")? })
}

/// Balances in account order, the same for every backend (SQL collations differ).
pub(crate) fn sorted(mut v: Vec<(AccountKey, crate::ledger::Balance)>) -> Vec<(AccountKey, crate::ledger::Balance)> {
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// A currency column binds as its code (TEXT) and reads back only as a code that parses; one
/// that does not is an error naming the column, never a guess.
impl rusqlite::types::ToSql for Currency {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::from(self.as_str()))
    }
}

impl rusqlite::types::FromSql for Currency {
    fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Currency> {
        Currency::parse(v.as_str()?).map_err(|e| rusqlite::types::FromSqlError::Other(format!("column currency: {e}").into()))
    }
}

impl postgres::types::ToSql for Currency {
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        self.as_str().to_sql(ty, out)
    }

    fn accepts(ty: &postgres::types::Type) -> bool {
        <&str as postgres::types::ToSql>::accepts(ty)
    }

    postgres::types::to_sql_checked!();
}

impl<'a> postgres::types::FromSql<'a> for Currency {
    fn from_sql(ty: &postgres::types::Type, raw: &'a [u8]) -> Result<Currency, Box<dyn std::error::Error + Sync + Send>> {
        let s = <&str as postgres::types::FromSql>::from_sql(ty, raw)?;
        Ok(Currency::parse(s).map_err(|e| format!("column currency: {e}"))?)
    }

    fn accepts(ty: &postgres::types::Type) -> bool {
        <&str as postgres::types::FromSql>::accepts(ty)
    }
}
