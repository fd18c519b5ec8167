//! A group's rows held back until its flush, and what the group read first: the writer's first
//! attempt at a group on PostgreSQL, where every statement costs a round trip.
//!
//! A new conversion writes about ten rows (its own, its accrual, each commission with its
//! reserve and event, the outbox's events) and reads three things (its idempotency key, its id,
//! its partners' periods). Statement by statement, that was a round trip each. Here the reads
//! are fetched for the whole group in one statement each (`prefetch`), after the ledger head's
//! lock, which every writer of these rows holds to its commit, so nothing changes them meanwhile;
//! the inserts wait in `Rows` and go in one `INSERT ... SELECT FROM unnest(...)` per table.
//!
//! Correctness never rests on a guess. Any other statement on the transaction (a read a job
//! decides on, an update) writes the held rows first, so it sees them and they keep their order.
//! An insert held back is a plain one: a row the store refuses (stored already, or a job's
//! duplicate) fails the flush, and the group runs again with a savepoint per job and no batch,
//! where that row's job fails alone, as it would have.

use std::collections::{HashMap, HashSet};

use ::postgres::types::ToSql;

use crate::conversions::store::NewRow;
use crate::conversions::{Answer, ConversionError, Job};
use crate::ledger::StoredTransfer;
use crate::lifecycle::{Commission, CommissionEvent};
use crate::model::Currency;
use crate::storage::pg::PgTx;
use crate::storage::row::{COLUMNS, COMMISSION_COLUMNS};
use crate::webhooks::OutboxEvent;

/// What a group knows of the rows its jobs look up, and the rows it holds back.
#[derive(Default)]
pub(crate) struct Batch {
    /// For each conversion a job records: its stored fingerprint, or `None` while not stored;
    /// kept up to date by the group's own inserts.
    pub conversions: HashMap<String, Option<Vec<u8>>>,
    /// For each of those conversions: whether it is accrued.
    pub accrued: HashMap<String, bool>,
    /// For each idempotency key of the group's jobs: its stored request hash and answer.
    pub answers: HashMap<String, Option<(Vec<u8>, Answer)>>,
    pub rows: Rows,
}

/// Inserts held back, in the order they were made.
#[derive(Default)]
pub(crate) struct Rows {
    conversions: Vec<ConversionRow>,
    accruals: Vec<(String, i64)>,
    rules: Vec<(String, String)>,
    commissions: Vec<Commission>,
    transfers: Vec<StoredTransfer>,
    events: Vec<CommissionEvent>,
    outbox: Vec<OutboxRow>,
    answers: Vec<AnswerRow>,
}

struct ConversionRow {
    id: String,
    program: String,
    order_id: String,
    amount_minor: i64,
    currency: Currency,
    occurred_at_ms: i64,
    day: i64,
    received_at_ms: i64,
    click_id: Option<String>,
    visitor_id: Option<String>,
    coupon_code: Option<String>,
    customer_ref: Option<String>,
    customer_ref_hash: Option<String>,
    origin: &'static str,
    fingerprint: Vec<u8>,
    method: String,
    attribution: String,
}

struct OutboxRow {
    kind: &'static str,
    cause: String,
    partner: Option<String>,
    occurred_ms: i64,
    data: String,
}

struct AnswerRow {
    key: String,
    request_hash: Vec<u8>,
    status: i32,
    body: String,
    created_ms: i64,
}

impl Rows {
    pub fn is_empty(&self) -> bool {
        self.conversions.is_empty()
            && self.accruals.is_empty()
            && self.rules.is_empty()
            && self.commissions.is_empty()
            && self.transfers.is_empty()
            && self.events.is_empty()
            && self.outbox.is_empty()
            && self.answers.is_empty()
    }

    /// A new conversion, with its customer reference already sealed and hashed.
    pub fn conversion(&mut self, row: &NewRow<'_>, customer_ref: Option<String>, customer_ref_hash: Option<String>) {
        let c = row.conversion;
        self.conversions.push(ConversionRow {
            id: row.id.to_string(),
            program: c.program.clone(),
            order_id: c.order_id.clone(),
            amount_minor: c.amount_minor,
            currency: c.currency,
            occurred_at_ms: c.occurred_at_ms as i64,
            day: row.day,
            received_at_ms: row.received_at_ms as i64,
            click_id: c.click_id.clone(),
            visitor_id: c.visitor_id.clone(),
            coupon_code: c.coupon_code.clone(),
            customer_ref,
            customer_ref_hash,
            origin: c.origin.as_str(),
            fingerprint: row.fingerprint.to_vec(),
            method: row.method.to_string(),
            attribution: row.attribution.to_string(),
        });
    }

    pub fn accrual(&mut self, conversion_id: &str, at_ms: i64) {
        self.accruals.push((conversion_id.to_string(), at_ms));
    }

    pub fn rule_version(&mut self, version: &str, json: String) {
        self.rules.push((version.to_string(), json));
    }

    pub fn commission(&mut self, c: &Commission) {
        self.commissions.push(c.clone());
    }

    pub fn transfer(&mut self, t: &StoredTransfer) {
        self.transfers.push(t.clone());
    }

    pub fn event(&mut self, e: &CommissionEvent) {
        self.events.push(e.clone());
    }

    pub fn outbox(&mut self, e: &OutboxEvent<'_>) {
        self.outbox.push(OutboxRow {
            kind: e.kind.as_str(),
            cause: e.cause.to_string(),
            partner: e.partner.map(str::to_string),
            occurred_ms: e.occurred_ms,
            data: e.data.to_string(),
        });
    }

    /// An answer to keep, its body already sealed.
    pub fn answer(&mut self, key: &str, request_hash: &[u8], answer: &Answer, sealed_body: String, created_ms: i64) {
        self.answers.push(AnswerRow {
            key: key.to_string(),
            request_hash: request_hash.to_vec(),
            status: i32::from(answer.status),
            body: sealed_body,
            created_ms,
        });
    }
}

type Params<'a> = Vec<&'a (dyn ToSql + Sync)>;

/// Each table's rows as one statement with an array per column, its rows in the order they
/// were made (`seq` columns count in that order).
const CONVERSIONS: &str = "INSERT INTO conversions (id, program, order_id, amount_minor, currency, occurred_at_ms, day, received_at_ms,
        click_id, visitor_id, coupon_code, customer_ref, origin, fingerprint, method, attribution, customer_ref_hash, status, refunded_minor)
    SELECT r.*, 'pending', 0 FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::int8[], $7::int8[],
        $8::int8[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::bytea[], $15::text[], $16::text[],
        $17::text[]) AS r";
const ACCRUALS: &str = "INSERT INTO commission_accruals (conversion_id, at_ms) SELECT * FROM unnest($1::text[], $2::int8[])";
const RULES: &str = "INSERT INTO commission_rules (version, rules) SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING";
const EVENTS: &str = "INSERT INTO commission_events (commission_id, seq, kind, amount_minor, transfer_id, at_ms)
    SELECT r.c, coalesce((SELECT max(e.seq) FROM commission_events e WHERE e.commission_id = r.c), 0)
            + row_number() OVER (PARTITION BY r.c ORDER BY r.n), r.kind, r.amount, r.transfer, r.at
    FROM unnest($1::text[], $2::text[], $3::int8[], $4::bytea[], $5::int8[]) WITH ORDINALITY AS r(c, kind, amount, transfer, at, n)";
const OUTBOX: &str = "INSERT INTO webhook_events (type, cause, partner, occurred_ms, data)
    SELECT r.t, r.c, r.p, r.o, r.d FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[])
        WITH ORDINALITY AS r(t, c, p, o, d, n) ORDER BY r.n";
const ANSWERS: &str = "INSERT INTO idempotency_keys (key, request_hash, status, body, created_ms)
    SELECT * FROM unnest($1::text[], $2::bytea[], $3::int4[], $4::text[], $5::int8[])";

fn commissions_sql() -> String {
    format!(
        "INSERT INTO commissions ({COMMISSION_COLUMNS})
         SELECT r.i, r.cv, r.pg, r.pt, r.it, r.cu, r.am, r.vo, r.re, r.st, r.rv, r.pe, r.de, r.cr, r.lu, r.ap, r.pa, r.po, r.rs
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int8[], $8::int8[], $9::int8[],
            $10::text[], $11::text[], $12::text[], $13::text[], $14::int8[], $15::int8[], $16::int8[], $17::int8[], $18::text[],
            $19::int8[]) WITH ORDINALITY AS r(i, cv, pg, pt, it, cu, am, vo, re, st, rv, pe, de, cr, lu, ap, pa, po, rs, n)
         ORDER BY r.n"
    )
}

fn transfers_sql() -> String {
    format!(
        "INSERT INTO ledger_transfers ({COLUMNS})
         SELECT * FROM unnest($1::int8[], $2::bytea[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
            $9::int8[], $10::text[], $11::text[], $12::bytea[], $13::int8[], $14::bytea[], $15::bytea[])"
    )
}

/// Writes the held rows, one statement per table that has any, in an order the foreign keys
/// accept.
pub(super) fn write(tx: &mut PgTx<'_, '_>, rows: Rows) -> Result<(), ::postgres::Error> {
    if !rows.conversions.is_empty() {
        let r = &rows.conversions;
        let id: Vec<&str> = r.iter().map(|r| r.id.as_str()).collect();
        let program: Vec<&str> = r.iter().map(|r| r.program.as_str()).collect();
        let order_id: Vec<&str> = r.iter().map(|r| r.order_id.as_str()).collect();
        let amount: Vec<i64> = r.iter().map(|r| r.amount_minor).collect();
        let currency: Vec<&str> = r.iter().map(|r| r.currency.as_str()).collect();
        let occurred: Vec<i64> = r.iter().map(|r| r.occurred_at_ms).collect();
        let day: Vec<i64> = r.iter().map(|r| r.day).collect();
        let received: Vec<i64> = r.iter().map(|r| r.received_at_ms).collect();
        let click: Vec<Option<&str>> = r.iter().map(|r| r.click_id.as_deref()).collect();
        let visitor: Vec<Option<&str>> = r.iter().map(|r| r.visitor_id.as_deref()).collect();
        let coupon: Vec<Option<&str>> = r.iter().map(|r| r.coupon_code.as_deref()).collect();
        let customer: Vec<Option<&str>> = r.iter().map(|r| r.customer_ref.as_deref()).collect();
        let origin: Vec<&str> = r.iter().map(|r| r.origin).collect();
        let fingerprint: Vec<&[u8]> = r.iter().map(|r| r.fingerprint.as_slice()).collect();
        let method: Vec<&str> = r.iter().map(|r| r.method.as_str()).collect();
        let attribution: Vec<&str> = r.iter().map(|r| r.attribution.as_str()).collect();
        let customer_hash: Vec<Option<&str>> = r.iter().map(|r| r.customer_ref_hash.as_deref()).collect();
        let params: Params<'_> = vec![
            &id,
            &program,
            &order_id,
            &amount,
            &currency,
            &occurred,
            &day,
            &received,
            &click,
            &visitor,
            &coupon,
            &customer,
            &origin,
            &fingerprint,
            &method,
            &attribution,
            &customer_hash,
        ];
        tx.execute_now(CONVERSIONS, &params)?;
    }
    if !rows.accruals.is_empty() {
        let id: Vec<&str> = rows.accruals.iter().map(|a| a.0.as_str()).collect();
        let at: Vec<i64> = rows.accruals.iter().map(|a| a.1).collect();
        tx.execute_now(ACCRUALS, &[&id, &at])?;
    }
    if !rows.rules.is_empty() {
        let version: Vec<&str> = rows.rules.iter().map(|r| r.0.as_str()).collect();
        let json: Vec<&str> = rows.rules.iter().map(|r| r.1.as_str()).collect();
        tx.execute_now(RULES, &[&version, &json])?;
    }
    if !rows.commissions.is_empty() {
        write_commissions(tx, &rows.commissions)?;
    }
    if !rows.transfers.is_empty() {
        write_transfers(tx, &rows.transfers)?;
    }
    if !rows.events.is_empty() {
        let e = &rows.events;
        let commission: Vec<&str> = e.iter().map(|e| e.commission_id.as_str()).collect();
        let kind: Vec<&str> = e.iter().map(|e| e.kind).collect();
        let amount: Vec<i64> = e.iter().map(|e| e.amount_minor).collect();
        let transfer: Vec<&[u8]> = e.iter().map(|e| &e.transfer_id.0[..]).collect();
        let at: Vec<i64> = e.iter().map(|e| e.at_ms).collect();
        tx.execute_now(EVENTS, &[&commission, &kind, &amount, &transfer, &at])?;
    }
    if !rows.outbox.is_empty() {
        let o = &rows.outbox;
        let kind: Vec<&str> = o.iter().map(|o| o.kind).collect();
        let cause: Vec<&str> = o.iter().map(|o| o.cause.as_str()).collect();
        let partner: Vec<Option<&str>> = o.iter().map(|o| o.partner.as_deref()).collect();
        let occurred: Vec<i64> = o.iter().map(|o| o.occurred_ms).collect();
        let data: Vec<&str> = o.iter().map(|o| o.data.as_str()).collect();
        tx.execute_now(OUTBOX, &[&kind, &cause, &partner, &occurred, &data])?;
    }
    if !rows.answers.is_empty() {
        let a = &rows.answers;
        let key: Vec<&str> = a.iter().map(|a| a.key.as_str()).collect();
        let hash: Vec<&[u8]> = a.iter().map(|a| a.request_hash.as_slice()).collect();
        let status: Vec<i32> = a.iter().map(|a| a.status).collect();
        let body: Vec<&str> = a.iter().map(|a| a.body.as_str()).collect();
        let created: Vec<i64> = a.iter().map(|a| a.created_ms).collect();
        tx.execute_now(ANSWERS, &[&key, &hash, &status, &body, &created])?;
    }
    Ok(())
}

fn write_commissions(tx: &mut PgTx<'_, '_>, c: &[Commission]) -> Result<(), ::postgres::Error> {
    let id: Vec<&str> = c.iter().map(|c| c.id.as_str()).collect();
    let conversion: Vec<&str> = c.iter().map(|c| c.conversion_id.as_str()).collect();
    let program: Vec<&str> = c.iter().map(|c| c.program.as_str()).collect();
    let partner: Vec<&str> = c.iter().map(|c| c.partner.as_str()).collect();
    let item: Vec<&str> = c.iter().map(|c| c.item.as_str()).collect();
    let currency: Vec<&str> = c.iter().map(|c| c.currency.as_str()).collect();
    let amount: Vec<i64> = c.iter().map(|c| c.amount_minor).collect();
    let voided: Vec<i64> = c.iter().map(|c| c.voided_minor).collect();
    let reversed: Vec<i64> = c.iter().map(|c| c.reversed_minor).collect();
    let status: Vec<&str> = c.iter().map(|c| c.status.as_str()).collect();
    let version: Vec<&str> = c.iter().map(|c| c.rule_version.as_str()).collect();
    let period: Vec<&str> = c.iter().map(|c| c.period.as_str()).collect();
    let detail: Vec<&str> = c.iter().map(|c| c.detail.as_str()).collect();
    let created: Vec<i64> = c.iter().map(|c| c.created_at_ms).collect();
    let lock: Vec<i64> = c.iter().map(|c| c.lock_until_ms).collect();
    let approved: Vec<Option<i64>> = c.iter().map(|c| c.approved_at_ms).collect();
    let paid: Vec<Option<i64>> = c.iter().map(|c| c.paid_at_ms).collect();
    let payout: Vec<Option<&str>> = c.iter().map(|c| c.payout_id.as_deref()).collect();
    let reserve: Vec<i64> = c.iter().map(|c| i64::from(c.reserve_seq)).collect();
    let params: Params<'_> = vec![
        &id,
        &conversion,
        &program,
        &partner,
        &item,
        &currency,
        &amount,
        &voided,
        &reversed,
        &status,
        &version,
        &period,
        &detail,
        &created,
        &lock,
        &approved,
        &paid,
        &payout,
        &reserve,
    ];
    tx.execute_now(&commissions_sql(), &params)?;
    Ok(())
}

fn write_transfers(tx: &mut PgTx<'_, '_>, t: &[StoredTransfer]) -> Result<(), ::postgres::Error> {
    let seq: Vec<i64> = t.iter().map(|t| t.seq as i64).collect();
    let id: Vec<&[u8]> = t.iter().map(|t| &t.transfer.id.0[..]).collect();
    let cause: Vec<&str> = t.iter().map(|t| t.transfer.cause.as_str()).collect();
    let debit_kind: Vec<&str> = t.iter().map(|t| t.transfer.debit.kind.as_str()).collect();
    let debit_owner: Vec<&str> = t.iter().map(|t| t.transfer.debit.owner.as_str()).collect();
    let credit_kind: Vec<&str> = t.iter().map(|t| t.transfer.credit.kind.as_str()).collect();
    let credit_owner: Vec<&str> = t.iter().map(|t| t.transfer.credit.owner.as_str()).collect();
    let currency: Vec<&str> = t.iter().map(|t| t.transfer.currency.as_str()).collect();
    let amount: Vec<i64> = t.iter().map(|t| t.transfer.amount_minor).collect();
    let kind: Vec<&str> = t.iter().map(|t| t.transfer.kind.as_str()).collect();
    let subject: Vec<Option<&str>> = t.iter().map(|t| t.transfer.subject.as_deref()).collect();
    let pending: Vec<Option<&[u8]>> = t.iter().map(|t| t.transfer.pending_id.as_ref().map(|p| &p.0[..])).collect();
    let at: Vec<i64> = t.iter().map(|t| t.transfer.at_ms).collect();
    let prev: Vec<&[u8]> = t.iter().map(|t| &t.prev_hash[..]).collect();
    let hash: Vec<&[u8]> = t.iter().map(|t| &t.hash[..]).collect();
    let params: Params<'_> = vec![
        &seq,
        &id,
        &cause,
        &debit_kind,
        &debit_owner,
        &credit_kind,
        &credit_owner,
        &currency,
        &amount,
        &kind,
        &subject,
        &pending,
        &at,
        &prev,
        &hash,
    ];
    tx.execute_now(&transfers_sql(), &params)?;
    Ok(())
}

/// Reads, for the whole group in one statement each, what its jobs look up first: whether each
/// conversion to record is stored (and accrued), each idempotency key's answer, and each
/// period its commissions count in (into the group's state). The ledger head's lock is held:
/// what is read here stays true to the commit, but for the group's own writes, which keep
/// `batch` up to date. A look-up not read here goes to the store when it is made.
pub(super) fn prefetch(tx: &mut PgTx<'_, '_>, jobs: &[Job], batch: &mut Batch) -> Result<(), ConversionError> {
    let ids: Vec<&str> = jobs.iter().filter_map(Job::recorded_id).collect();
    if !ids.is_empty() {
        let rows = tx.query(
            "SELECT i.id, c.fingerprint, a.conversion_id IS NOT NULL FROM unnest($1::text[]) AS i(id)
             LEFT JOIN conversions c ON c.id = i.id LEFT JOIN commission_accruals a ON a.conversion_id = i.id",
            &[&ids],
        )?;
        for r in &rows {
            let id: String = r.try_get(0)?;
            batch.accrued.insert(id.clone(), r.try_get(2)?);
            batch.conversions.insert(id, r.try_get(1)?);
        }
    }
    let keys: Vec<&str> = jobs.iter().filter_map(Job::idempotency_key).collect();
    if !keys.is_empty() {
        let rows = tx.query(
            "SELECT k.key, i.request_hash, i.status, i.body FROM unnest($1::text[]) AS k(key)
             LEFT JOIN idempotency_keys i ON i.key = k.key",
            &[&keys],
        )?;
        for r in &rows {
            let hash: Option<Vec<u8>> = r.try_get(1)?;
            let answer = match hash {
                Some(hash) => Some((hash, super::conversions::answer(&r.try_get::<_, String>(0)?, r.try_get(2)?, r.try_get(3)?)?)),
                None => None,
            };
            batch.answers.insert(r.try_get(0)?, answer);
        }
    }
    let mut periods: Vec<_> = jobs.iter().flat_map(Job::periods).collect();
    let mut seen = HashSet::new();
    periods.retain(|k| seen.insert(k.clone()));
    if periods.is_empty() {
        return Ok(());
    }
    let program: Vec<&str> = periods.iter().map(|k| k.program.as_str()).collect();
    let partner: Vec<&str> = periods.iter().map(|k| k.partner.as_str()).collect();
    let currency: Vec<&str> = periods.iter().map(|k| k.currency.as_str()).collect();
    let label: Vec<&str> = periods.iter().map(|k| k.label.as_str()).collect();
    let rows = tx.query(
        "SELECT k.n, p.volume_minor, p.conversions, p.commission_minor, p.bonuses_paid
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS k(program, partner, currency, period, n)
         LEFT JOIN commission_periods p
            ON p.program = k.program AND p.partner = k.partner AND p.currency = k.currency AND p.period = k.period",
        &[&program, &partner, &currency, &label],
    )?;
    let mut states = Vec::with_capacity(rows.len());
    for r in &rows {
        let n: i64 = r.try_get(0)?;
        states.push((n, super::lifecycle::period_state_row(r, 1).map_err(ConversionError::from)?));
    }
    // Kept only where the group's state is (the writer's group always defers).
    let Some(group) = tx.group() else { return Ok(()) };
    for (n, state) in states {
        if let Some(key) = usize::try_from(n - 1).ok().and_then(|i| periods.get(i)) {
            group.periods.entry(key.clone()).or_insert((state, false));
        }
    }
    Ok(())
}
