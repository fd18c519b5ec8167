//! `GET /v1/ledger/entries`: the hash-chained transfers in `seq` order, for audits.
//!
//! `?after_seq=N&limit=L` pages through the chain (`next_after_seq` is there when more may
//! follow); `account=kind:owner:CUR`, `commission_id` and `cause_prefix` filter it. Every
//! entry shows the hashes, so a client can check the chain's links itself.

use std::sync::Arc;

use hyper::StatusCode;
use serde_json::{json, Value};

use super::commissions::{is_commission_id, read_failed, Params};
use super::{json, read_blocking, ApiResult, ApiState};
use crate::conversions::view::{rfc3339, LedgerFilter};
use crate::ledger::{AccountKey, AccountKind, StoredTransfer, CAUSE_LEN_MAX, NAME_LEN_MAX};
use crate::model::Currency;

/// `kind:owner:CUR`, as entries show accounts.
fn parse_account(s: &str) -> Option<AccountKey> {
    let (kind, rest) = s.split_once(':')?;
    let (owner, currency) = rest.rsplit_once(':')?;
    let ok_owner = !owner.is_empty() && owner.len() <= NAME_LEN_MAX && !owner.chars().any(char::is_control);
    Some(AccountKey { kind: AccountKind::parse(kind)?, owner: owner.to_string(), currency: Currency::parse(currency).ok()? })
        .filter(|_| ok_owner)
}

/// One transfer as the API shows it.
fn entry_json(s: &StoredTransfer) -> Value {
    let t = &s.transfer;
    let mut v = json!({
        "seq": s.seq,
        "id": t.id.to_string(),
        "cause": t.cause,
        "kind": t.kind.as_str(),
        "debit": t.debit.to_string(),
        "credit": t.credit.to_string(),
        "amount_minor": t.amount_minor,
        "currency": t.currency,
        "at": rfc3339(t.at_ms),
        "prev_hash": hex::encode(s.prev_hash),
        "hash": hex::encode(s.hash),
    });
    // The lifecycle makes a commission's id the subject of its transfers.
    if let Some(c) = &t.subject {
        v["commission_id"] = Value::String(c.clone());
    }
    if let Some(p) = &t.pending_id {
        v["pending_id"] = Value::String(p.to_string());
    }
    v
}

pub async fn entries(state: &Arc<ApiState>, query: &str) -> ApiResult {
    let p = Params::parse(query, &["after_seq", "limit", "account", "commission_id", "cause_prefix"])?;
    let after_seq = match p.get("after_seq", |s| s.parse::<u64>().is_ok(), "a seq: an integer, 0 or more")? {
        Some(s) => s.parse().unwrap_or(0),
        None => 0,
    };
    let account = p.get("account", |s| parse_account(s).is_some(), "an account such as partner_payable:alice:USD")?;
    let filter = LedgerFilter {
        account: account.as_deref().and_then(parse_account),
        commission_id: p.get("commission_id", is_commission_id, "a commission id (cm_ and 24 hex digits)")?,
        cause_prefix: p.get(
            "cause_prefix",
            |s| !s.is_empty() && s.len() <= CAUSE_LEN_MAX && !s.chars().any(char::is_control),
            "1..=256 bytes without control characters",
        )?,
        after_seq,
        limit: p.limit()?,
    };
    let reader = state.reader.clone();
    let page = read_blocking("ledger", move || reader.ledger_transfers(&filter)).await?.map_err(read_failed("ledger"))?;
    let mut body = json!({ "entries": page.transfers.iter().map(entry_json).collect::<Vec<_>>() });
    if let (true, Some(last)) = (page.more, page.transfers.last()) {
        body["next_after_seq"] = json!(last.seq);
    }
    Ok(json(StatusCode::OK, &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_read_as_entries_show_them() {
        let a = parse_account("partner_payable:alice:USD").unwrap();
        assert_eq!((a.kind, a.owner.as_str(), a.currency), (AccountKind::PartnerPayable, "alice", Currency::parse("USD").unwrap()));
        assert_eq!(a.to_string(), "partner_payable:alice:USD");
        for bad in [
            "",
            "partner_payable:alice",
            "partner_payable::USD",
            "nope:alice:USD",
            "partner_paid:alice:usd",
            "partner_paid:alice:USDX",
            "partner_paid:alice:XYZ",
        ] {
            assert!(parse_account(bad).is_none(), "{bad}");
        }
    }
}
