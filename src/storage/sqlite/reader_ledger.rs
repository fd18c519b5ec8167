//! Reading the ledger's transfers for the API, in chain order, with filters.

use rusqlite::types::Value as Sql;
use rusqlite::Row;

use super::SqliteReader;
use crate::conversions::view::{LedgerFilter, LedgerPage};
use crate::ledger::{AccountKey, AccountKind, StoredTransfer, TransferId, TransferKind, TransferRequest};
use crate::model::Currency;
use crate::storage::row::COLUMNS as TRANSFER_COLUMNS;

impl SqliteReader {
    /// A page of the ledger's transfers matching `f`, in `seq` order.
    pub fn ledger_transfers(&self, f: &LedgerFilter) -> rusqlite::Result<LedgerPage> {
        let mut sql = format!("SELECT {TRANSFER_COLUMNS} FROM ledger_transfers WHERE seq > ?");
        let mut args: Vec<Sql> = vec![Sql::Integer(i64::try_from(f.after_seq).unwrap_or(i64::MAX))];
        if let Some(a) = &f.account {
            sql.push_str(" AND currency = ? AND ((debit_kind = ? AND debit_owner = ?) OR (credit_kind = ? AND credit_owner = ?))");
            let (kind, owner) = (Sql::Text(a.kind.as_str().into()), Sql::Text(a.owner.clone()));
            args.extend([Sql::Text(a.currency.to_string()), kind.clone(), owner.clone(), kind, owner]);
        }
        if let Some(c) = &f.commission_id {
            let prefix = format!("commission:{c}:");
            sql.push_str(" AND (subject = ? OR substr(cause, 1, ?) = ?)");
            args.extend([Sql::Text(c.clone()), Sql::Integer(prefix.len() as i64), Sql::Text(prefix)]);
        }
        if let Some(p) = &f.cause_prefix {
            // substr counts characters; the prefix's own length in characters keeps it exact.
            sql.push_str(" AND substr(cause, 1, ?) = ?");
            args.extend([Sql::Integer(p.chars().count() as i64), Sql::Text(p.clone())]);
        }
        sql.push_str(" ORDER BY seq");
        let (transfers, more) = super::reader::page(&self.conn(), sql, args, f.limit, transfer_row)?;
        Ok(LedgerPage { transfers, more })
    }
}

fn bad(i: usize, why: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, why.into())
}

fn fixed<const N: usize>(i: usize, v: Vec<u8>) -> rusqlite::Result<[u8; N]> {
    v.try_into().map_err(|v: Vec<u8>| bad(i, format!("{} bytes, not {N}", v.len())))
}

/// Reads a row of `TRANSFER_COLUMNS`.
fn transfer_row(r: &Row<'_>) -> rusqlite::Result<StoredTransfer> {
    let currency: String = r.get(7)?;
    let currency = Currency::parse(&currency).map_err(|e| bad(7, format!("column currency: {e}")))?;
    let account = |k: usize, o: usize| -> rusqlite::Result<AccountKey> {
        let kind: String = r.get(k)?;
        let kind = AccountKind::parse(&kind).ok_or_else(|| bad(k, format!("unknown account kind {kind:?}")))?;
        Ok(AccountKey { kind, owner: r.get(o)?, currency })
    };
    let kind: String = r.get(9)?;
    let transfer = TransferRequest {
        id: TransferId(fixed(1, r.get(1)?)?),
        cause: r.get(2)?,
        debit: account(3, 4)?,
        credit: account(5, 6)?,
        amount_minor: r.get(8)?,
        currency,
        kind: TransferKind::parse(&kind).ok_or_else(|| bad(9, format!("unknown transfer kind {kind:?}")))?,
        subject: r.get(10)?,
        pending_id: r.get::<_, Option<Vec<u8>>>(11)?.map(|p| fixed(11, p).map(TransferId)).transpose()?,
        at_ms: r.get(12)?,
    };
    Ok(StoredTransfer { seq: r.get::<_, i64>(0)? as u64, transfer, prev_hash: fixed(13, r.get(13)?)?, hash: fixed(14, r.get(14)?)? })
}
