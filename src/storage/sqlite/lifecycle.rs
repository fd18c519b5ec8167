//! Commission rows in SQLite, in the same file and transaction as the ledger and conversions.
//! The tables, and why they are keyed and indexed as they are, are the file's migrations
//! (`sqlite::migrations`).

use std::sync::LazyLock;

use rusqlite::{params, Connection, OptionalExtension, Row};

pub use crate::storage::row::COMMISSION_COLUMNS;

use crate::commission::{PeriodState, RuleSet};
use crate::ledger::TransferId;
use crate::lifecycle::{Commission, CommissionEvent, CommissionStatus, CommissionTx, ConversionRef, LifecycleError, PeriodRef};
use crate::model::Currency;
use crate::storage::sqlite::SqliteTx;

/// A conversion's commissions, ordered by id: one range of the commissions' primary key.
pub fn commissions_of(conn: &Connection, conversion: &ConversionRef<'_>) -> rusqlite::Result<Vec<Commission>> {
    let (lo, hi) = conversion.commission_id_range();
    let mut st = conn.prepare_cached(&format!(
        "SELECT {COMMISSION_COLUMNS} FROM commissions WHERE id > ?1 AND id < ?2 AND conversion_id = ?3 ORDER BY id"
    ))?;
    let rows = st.query_map(params![lo, hi, conversion.id], commission_row)?;
    rows.collect()
}

fn read_period(conn: &Connection, k: &PeriodRef) -> Result<PeriodState, LifecycleError> {
    let mut st = conn
        .prepare_cached(
            "SELECT volume_minor, conversions, commission_minor, bonuses_paid FROM commission_periods
             WHERE program = ?1 AND partner = ?2 AND currency = ?3 AND period = ?4",
        )
        .map_err(storage)?;
    let s = st
        .query_row(params![k.program, k.partner, k.currency.as_str(), k.label], |r| {
            Ok(PeriodState {
                volume_minor: r.get(0)?,
                conversions: r.get::<_, i64>(1)? as u64,
                commission_minor: r.get(2)?,
                bonuses_paid: r.get::<_, i64>(3)? as u32,
            })
        })
        .optional()
        .map_err(storage)?;
    Ok(s.unwrap_or_default())
}

/// Stores a partner's period state: an update, and an insert only for a new period (see
/// `add_to_balance`). Grouped mode calls it from `SqliteTx::flush`.
pub(crate) fn write_period(conn: &Connection, k: &PeriodRef, s: &PeriodState) -> Result<(), LifecycleError> {
    let mut st = conn
        .prepare_cached(
            "UPDATE commission_periods SET volume_minor = ?5, conversions = ?6, commission_minor = ?7, bonuses_paid = ?8
             WHERE program = ?1 AND partner = ?2 AND currency = ?3 AND period = ?4",
        )
        .map_err(storage)?;
    let currency = k.currency.as_str();
    let p = params![
        k.program,
        k.partner,
        currency,
        k.label,
        s.volume_minor,
        s.conversions as i64,
        s.commission_minor,
        i64::from(s.bonuses_paid)
    ];
    if st.execute(p).map_err(storage)? == 0 {
        let mut st = conn
            .prepare_cached(
                "INSERT INTO commission_periods (program, partner, currency, period, volume_minor, conversions, commission_minor, bonuses_paid)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .map_err(storage)?;
        st.execute(p).map_err(storage)?;
    }
    Ok(())
}

fn storage(e: rusqlite::Error) -> LifecycleError {
    LifecycleError::Storage(e.to_string())
}

/// Reads a row of `COMMISSION_COLUMNS`.
pub fn commission_row(r: &Row<'_>) -> rusqlite::Result<Commission> {
    let bad = |i: usize, what: &str| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, what.to_string().into());
    let currency: String = r.get(5)?;
    let status: String = r.get(9)?;
    Ok(Commission {
        id: r.get(0)?,
        conversion_id: r.get(1)?,
        program: r.get(2)?,
        partner: r.get(3)?,
        item: r.get(4)?,
        currency: Currency::parse(&currency).map_err(|e| bad(5, &format!("column currency: {e}")))?,
        amount_minor: r.get(6)?,
        voided_minor: r.get(7)?,
        reversed_minor: r.get(8)?,
        status: CommissionStatus::parse(&status).ok_or_else(|| bad(9, "not a commission status"))?,
        rule_version: r.get(10)?,
        period: r.get(11)?,
        detail: r.get(12)?,
        created_at_ms: r.get(13)?,
        lock_until_ms: r.get(14)?,
        approved_at_ms: r.get(15)?,
        paid_at_ms: r.get(16)?,
        payout_id: r.get(17)?,
        reserve_seq: r.get(18)?,
    })
}

/// Reads a commission event row: commission_id, kind, amount_minor, transfer_id, at_ms.
pub fn event_row(r: &Row<'_>) -> rusqlite::Result<CommissionEvent> {
    let kind: String = r.get(1)?;
    let id: Vec<u8> = r.get(3)?;
    let id: [u8; 16] = id
        .try_into()
        .map_err(|_| rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Blob, "a transfer id is 16 bytes".into()))?;
    Ok(CommissionEvent {
        commission_id: r.get(0)?,
        kind: CommissionEvent::parse_kind(&kind).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                1,
                rusqlite::types::Type::Text,
                format!("{kind:?} is not a commission event kind").into(),
            )
        })?,
        amount_minor: r.get(2)?,
        transfer_id: TransferId(id),
        at_ms: r.get(4)?,
    })
}

fn many(conn: &Connection, sql: &str, p: impl rusqlite::Params) -> Result<Vec<Commission>, LifecycleError> {
    let mut st = conn.prepare_cached(sql).map_err(storage)?;
    let rows = st.query_map(p, commission_row).map_err(storage)?;
    rows.collect::<Result<_, _>>().map_err(storage)
}

impl CommissionTx for SqliteTx<'_> {
    fn mark_accrued(&mut self, conversion: &ConversionRef<'_>, at_ms: i64) -> Result<bool, LifecycleError> {
        let mut st = self
            .conn()
            .prepare_cached("INSERT OR IGNORE INTO commission_accrued (occurred_at_ms, conversion_id, at_ms) VALUES (?1, ?2, ?3)")
            .map_err(storage)?;
        Ok(st.execute(params![conversion.occurred_at_ms as i64, conversion.id, at_ms]).map_err(storage)? == 1)
    }

    fn period_state(&mut self, k: &PeriodRef) -> Result<PeriodState, LifecycleError> {
        if let Some(s) = self.group().and_then(|g| g.periods.get(k)) {
            return Ok(s.0);
        }
        let s = read_period(self.conn(), k)?;
        if let Some(g) = self.group() {
            g.periods.insert(k.clone(), (s, false));
        }
        Ok(s)
    }

    fn put_period_state(&mut self, k: &PeriodRef, s: &PeriodState) -> Result<(), LifecycleError> {
        match self.group() {
            Some(g) => {
                g.periods.insert(k.clone(), (*s, true));
                Ok(())
            }
            None => write_period(self.conn(), k, s),
        }
    }

    fn put_rule_version(&mut self, version: &str, rules: &RuleSet) -> Result<(), LifecycleError> {
        if self.group().is_some_and(|g| g.rule_versions.contains(version)) {
            return Ok(());
        }
        let mut known = self.conn().prepare_cached("SELECT 1 FROM commission_rules WHERE version = ?1").map_err(storage)?;
        if !known.exists([version]).map_err(storage)? {
            let json = serde_json::to_string(rules).map_err(|e| LifecycleError::Storage(format!("serializing rules {version}: {e}")))?;
            let mut st = self.conn().prepare_cached("INSERT INTO commission_rules (version, rules) VALUES (?1, ?2)").map_err(storage)?;
            st.execute(params![version, json]).map_err(storage)?;
        }
        if let Some(g) = self.group() {
            g.rule_versions.insert(version.to_string());
        }
        Ok(())
    }

    fn insert_commission(&mut self, c: &Commission) -> Result<(), LifecycleError> {
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!(
                "INSERT INTO commissions ({COMMISSION_COLUMNS})
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)"
            )
        });
        let mut st = self.conn().prepare_cached(&SQL).map_err(storage)?;
        st.execute(params![
            c.id,
            c.conversion_id,
            c.program,
            c.partner,
            c.item,
            c.currency.as_str(),
            c.amount_minor,
            c.voided_minor,
            c.reversed_minor,
            c.status.as_str(),
            c.rule_version,
            c.period,
            c.detail,
            c.created_at_ms,
            c.lock_until_ms,
            c.approved_at_ms,
            c.paid_at_ms,
            c.payout_id,
            c.reserve_seq,
        ])
        .map_err(storage)?;
        Ok(())
    }

    fn update_commission(&mut self, c: &Commission) -> Result<(), LifecycleError> {
        let mut st = self
            .conn()
            .prepare_cached(
                "UPDATE commissions SET voided_minor = ?2, reversed_minor = ?3, status = ?4, approved_at_ms = ?5, paid_at_ms = ?6,
                    payout_id = ?7, reserve_seq = ?8 WHERE id = ?1",
            )
            .map_err(storage)?;
        let n = st
            .execute(params![
                c.id,
                c.voided_minor,
                c.reversed_minor,
                c.status.as_str(),
                c.approved_at_ms,
                c.paid_at_ms,
                c.payout_id,
                c.reserve_seq
            ])
            .map_err(storage)?;
        if n != 1 {
            return Err(LifecycleError::NotFound(c.id.clone()));
        }
        Ok(())
    }

    fn commission(&mut self, id: &str) -> Result<Option<Commission>, LifecycleError> {
        Ok(many(self.conn(), &format!("SELECT {COMMISSION_COLUMNS} FROM commissions WHERE id = ?1"), [id])?.pop())
    }

    fn commissions_of(&mut self, conversion: &ConversionRef<'_>) -> Result<Vec<Commission>, LifecycleError> {
        commissions_of(self.conn(), conversion).map_err(storage)
    }

    fn due_for_approval(&mut self, now_ms: i64, limit: usize) -> Result<Vec<Commission>, LifecycleError> {
        many(
            self.conn(),
            &format!(
                "SELECT {COMMISSION_COLUMNS} FROM commissions WHERE status = 'pending' AND lock_until_ms <= ?1
                 ORDER BY lock_until_ms, id LIMIT ?2"
            ),
            params![now_ms, limit as i64],
        )
    }

    fn insert_event(&mut self, e: &CommissionEvent) -> Result<(), LifecycleError> {
        // A commission's creation is its first event (`accrue` writes it with the row), so it
        // needs no look-up of the last seq; were it not the first, the key would refuse it.
        let sql = if e.kind == "created" {
            "INSERT INTO commission_events (commission_id, seq, kind, amount_minor, transfer_id, at_ms) VALUES (?1, 1, ?2, ?3, ?4, ?5)"
        } else {
            "INSERT INTO commission_events (commission_id, seq, kind, amount_minor, transfer_id, at_ms)
             VALUES (?1, (SELECT coalesce(max(seq), 0) + 1 FROM commission_events WHERE commission_id = ?1), ?2, ?3, ?4, ?5)"
        };
        let mut st = self.conn().prepare_cached(sql).map_err(storage)?;
        st.execute(params![e.commission_id, e.kind, e.amount_minor, &e.transfer_id.0[..], e.at_ms]).map_err(storage)?;
        Ok(())
    }

    fn events_of(&mut self, commission_id: &str) -> Result<Vec<CommissionEvent>, LifecycleError> {
        let mut st = self
            .conn()
            .prepare_cached(
                "SELECT commission_id, kind, amount_minor, transfer_id, at_ms FROM commission_events WHERE commission_id = ?1 ORDER BY seq",
            )
            .map_err(storage)?;
        let rows = st.query_map([commission_id], event_row).map_err(storage)?;
        rows.collect::<Result<_, _>>().map_err(storage)
    }
}
