//! Commission rows in PostgreSQL, in the same schema and transaction as the ledger (cluster
//! mode): the same tables and constraints as SQLite's, in the store's migrations
//! (`pg::migrations`).
//!
//! Several processes may run lifecycle steps at once here, so the reads a step decides on
//! first take the ledger head's row lock: steps on the same data run one after another, each
//! seeing what the one before committed.

use ::postgres::Row;

use crate::commission::{PeriodState, RuleSet};
use crate::ledger::TransferId;
use crate::lifecycle::{Commission, CommissionEvent, CommissionStatus, CommissionTx, ConversionRef, LifecycleError, PeriodRef};
use crate::model::Currency;
use crate::storage::pg::PgTx;
use crate::storage::row::COMMISSION_COLUMNS;

/// Worded like the ledger's PostgreSQL errors: the SQLSTATE and the server's message.
fn storage(e: ::postgres::Error) -> LifecycleError {
    match e.as_db_error() {
        Some(db) => LifecycleError::Storage(format!("PostgreSQL {}: {}", db.code().code(), db.message())),
        None => LifecycleError::Storage(format!("PostgreSQL: {e}")),
    }
}

fn bad_row(what: String) -> LifecycleError {
    LifecycleError::Storage(format!("PostgreSQL: {what}"))
}

/// Reads a row of `COMMISSION_COLUMNS`.
pub fn commission_row(r: &Row) -> Result<Commission, LifecycleError> {
    let currency: String = r.try_get(5).map_err(storage)?;
    let status: String = r.try_get(9).map_err(storage)?;
    let reserve_seq: i64 = r.try_get(18).map_err(storage)?;
    Ok(Commission {
        id: r.try_get(0).map_err(storage)?,
        conversion_id: r.try_get(1).map_err(storage)?,
        program: r.try_get(2).map_err(storage)?,
        partner: r.try_get(3).map_err(storage)?,
        item: r.try_get(4).map_err(storage)?,
        currency: Currency::parse(&currency).map_err(|e| bad_row(format!("column currency: {e}")))?,
        amount_minor: r.try_get(6).map_err(storage)?,
        voided_minor: r.try_get(7).map_err(storage)?,
        reversed_minor: r.try_get(8).map_err(storage)?,
        status: CommissionStatus::parse(&status).ok_or_else(|| bad_row(format!("{status:?} is not a commission status")))?,
        rule_version: r.try_get(10).map_err(storage)?,
        period: r.try_get(11).map_err(storage)?,
        detail: r.try_get(12).map_err(storage)?,
        created_at_ms: r.try_get(13).map_err(storage)?,
        lock_until_ms: r.try_get(14).map_err(storage)?,
        approved_at_ms: r.try_get(15).map_err(storage)?,
        paid_at_ms: r.try_get(16).map_err(storage)?,
        payout_id: r.try_get(17).map_err(storage)?,
        reserve_seq: u32::try_from(reserve_seq).map_err(|_| bad_row(format!("reserve_seq {reserve_seq} is not a u32")))?,
    })
}

/// Reads a commission event row: commission_id, kind, amount_minor, transfer_id, at_ms.
fn event_row(r: &Row) -> Result<CommissionEvent, LifecycleError> {
    let kind: String = r.try_get(1).map_err(storage)?;
    let id: Vec<u8> = r.try_get(3).map_err(storage)?;
    let id: [u8; 16] = id.try_into().map_err(|_| bad_row("a transfer id is 16 bytes".to_string()))?;
    Ok(CommissionEvent {
        commission_id: r.try_get(0).map_err(storage)?,
        kind: CommissionEvent::parse_kind(&kind).ok_or_else(|| bad_row(format!("{kind:?} is not a commission event kind")))?,
        amount_minor: r.try_get(2).map_err(storage)?,
        transfer_id: TransferId(id),
        at_ms: r.try_get(4).map_err(storage)?,
    })
}

/// Reads a period state from the row's columns from `first` on (volume, conversions,
/// commission, bonuses paid); zero when they are null, as for a period never stored.
pub(crate) fn period_state_row(r: &Row, first: usize) -> Result<PeriodState, LifecycleError> {
    let volume_minor: Option<i64> = r.try_get(first).map_err(storage)?;
    let conversions: Option<i64> = r.try_get(first + 1).map_err(storage)?;
    let commission_minor: Option<i64> = r.try_get(first + 2).map_err(storage)?;
    let bonuses_paid: Option<i64> = r.try_get(first + 3).map_err(storage)?;
    let Some(volume_minor) = volume_minor else { return Ok(PeriodState::default()) };
    Ok(PeriodState {
        volume_minor,
        conversions: conversions.unwrap_or(0) as u64,
        commission_minor: commission_minor.unwrap_or(0),
        bonuses_paid: bonuses_paid.unwrap_or(0) as u32,
    })
}

impl PgTx<'_, '_> {
    /// A partner's stored period state; zero when none is stored.
    fn read_period(&mut self, k: &PeriodRef) -> Result<PeriodState, LifecycleError> {
        let row = self
            .query_opt(
                "SELECT volume_minor, conversions, commission_minor, bonuses_paid FROM commission_periods
                 WHERE program = $1 AND partner = $2 AND currency = $3 AND period = $4",
                &[&k.program, &k.partner, &k.currency.as_str(), &k.label],
            )
            .map_err(storage)?;
        let Some(r) = row else { return Ok(PeriodState::default()) };
        period_state_row(&r, 0)
    }

    /// Stores partners' period states, in one statement.
    pub(crate) fn write_periods(&mut self, periods: &[(PeriodRef, PeriodState)]) -> Result<(), LifecycleError> {
        let program: Vec<&str> = periods.iter().map(|(k, _)| k.program.as_str()).collect();
        let partner: Vec<&str> = periods.iter().map(|(k, _)| k.partner.as_str()).collect();
        let currency: Vec<&str> = periods.iter().map(|(k, _)| k.currency.as_str()).collect();
        let label: Vec<&str> = periods.iter().map(|(k, _)| k.label.as_str()).collect();
        let volume: Vec<i64> = periods.iter().map(|(_, s)| s.volume_minor).collect();
        let conversions: Vec<i64> = periods.iter().map(|(_, s)| s.conversions as i64).collect();
        let commission: Vec<i64> = periods.iter().map(|(_, s)| s.commission_minor).collect();
        let bonuses: Vec<i64> = periods.iter().map(|(_, s)| i64::from(s.bonuses_paid)).collect();
        self.execute(
            "INSERT INTO commission_periods (program, partner, currency, period, volume_minor, conversions, commission_minor, bonuses_paid)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::int8[], $7::int8[], $8::int8[])
                 ON CONFLICT (program, partner, currency, period) DO UPDATE SET volume_minor = EXCLUDED.volume_minor,
                    conversions = EXCLUDED.conversions, commission_minor = EXCLUDED.commission_minor, bonuses_paid = EXCLUDED.bonuses_paid",
            &[&program, &partner, &currency, &label, &volume, &conversions, &commission, &bonuses],
        )
        .map_err(storage)?;
        Ok(())
    }

    /// Stores a partner's period state.
    pub(crate) fn write_period(&mut self, k: &PeriodRef, s: &PeriodState) -> Result<(), LifecycleError> {
        self.execute(
            "INSERT INTO commission_periods (program, partner, currency, period, volume_minor, conversions, commission_minor, bonuses_paid)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (program, partner, currency, period) DO UPDATE SET volume_minor = EXCLUDED.volume_minor,
                    conversions = EXCLUDED.conversions, commission_minor = EXCLUDED.commission_minor, bonuses_paid = EXCLUDED.bonuses_paid",
            &[
                &k.program,
                &k.partner,
                &k.currency.as_str(),
                &k.label,
                &s.volume_minor,
                &(s.conversions as i64),
                &s.commission_minor,
                &i64::from(s.bonuses_paid),
            ],
        )
        .map_err(storage)?;
        Ok(())
    }
}

impl PgTx<'_, '_> {
    /// Takes the ledger head's row lock, which `ledger::apply` takes anyway, before a read a
    /// lifecycle step decides on. Under READ COMMITTED each statement sees what committed
    /// before it began, so a step racing another on the same commissions or period waits for
    /// that step's commit and then reads its result. Reading first and locking only at the
    /// first `apply` would act on a stale row: a second payout would re-pay a paid commission
    /// under its own id (the pay transfer already exists, so `apply` answers `AlreadyExists`),
    /// a second sweep would approve twice, and two accruals in one period would lose one's
    /// volume and count. Locked again in one transaction, the row costs a round trip only.
    pub(crate) fn lock_head(&mut self) -> Result<(), LifecycleError> {
        if self.is_deferring() {
            // Reads the head under its lock once per transaction (the lock holds until it
            // ends) and keeps it for the group's appends.
            crate::ledger::LedgerTx::head(self)?;
            return Ok(());
        }
        self.execute("SELECT 1 FROM ledger_head WHERE singleton = 1 FOR UPDATE", &[]).map_err(storage)?;
        Ok(())
    }

    fn many(&mut self, sql: &str, params: &[&(dyn ::postgres::types::ToSql + Sync)]) -> Result<Vec<Commission>, LifecycleError> {
        self.query(sql, params).map_err(storage)?.iter().map(commission_row).collect()
    }
}

// Every read a step decides on locks the ledger head first (see `lock_head`). Orderings name
// `COLLATE "C"` so ids sort bytewise, as SQLite sorts them, whatever the database's
// collation: a sweep with a limit then picks the same commissions on both.
impl CommissionTx for PgTx<'_, '_> {
    fn mark_accrued(&mut self, conversion: &ConversionRef<'_>, at_ms: i64) -> Result<bool, LifecycleError> {
        self.lock_head()?;
        // Read for the group first (`batch::prefetch`): held back when it is new.
        if let Some(b) = self.batch() {
            if let Some(accrued) = b.accrued.get_mut(conversion.id) {
                if *accrued {
                    return Ok(false);
                }
                *accrued = true;
                b.rows.accrual(conversion.id, at_ms);
                return Ok(true);
            }
        }
        let n = self
            .execute(
                "INSERT INTO commission_accruals (conversion_id, at_ms) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&conversion.id, &at_ms],
            )
            .map_err(storage)?;
        Ok(n == 1)
    }

    fn period_state(&mut self, k: &PeriodRef) -> Result<PeriodState, LifecycleError> {
        self.lock_head()?;
        if let Some(s) = self.group().and_then(|g| g.periods.get(k)) {
            return Ok(s.0);
        }
        let s = self.read_period(k)?;
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
            None => self.write_period(k, s),
        }
    }

    fn put_rule_version(&mut self, version: &str, rules: &RuleSet) -> Result<(), LifecycleError> {
        if self.group().is_some_and(|g| g.rule_versions.contains(version)) {
            return Ok(());
        }
        let json = serde_json::to_string(rules).map_err(|e| LifecycleError::Storage(format!("serializing rules {version}: {e}")))?;
        if let Some(b) = self.batch() {
            b.rows.rule_version(version, json);
        } else {
            self.execute("INSERT INTO commission_rules (version, rules) VALUES ($1, $2) ON CONFLICT DO NOTHING", &[&version, &json])
                .map_err(storage)?;
        }
        if let Some(g) = self.group() {
            g.rule_versions.insert(version.to_string());
        }
        Ok(())
    }

    fn insert_commission(&mut self, c: &Commission) -> Result<(), LifecycleError> {
        if let Some(b) = self.batch() {
            b.rows.commission(c);
            return Ok(());
        }
        let sql = format!(
            "INSERT INTO commissions ({COMMISSION_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)"
        );
        self.execute(
            &sql,
            &[
                &c.id,
                &c.conversion_id,
                &c.program,
                &c.partner,
                &c.item,
                &c.currency.as_str(),
                &c.amount_minor,
                &c.voided_minor,
                &c.reversed_minor,
                &c.status.as_str(),
                &c.rule_version,
                &c.period,
                &c.detail,
                &c.created_at_ms,
                &c.lock_until_ms,
                &c.approved_at_ms,
                &c.paid_at_ms,
                &c.payout_id,
                &i64::from(c.reserve_seq),
            ],
        )
        .map_err(storage)?;
        Ok(())
    }

    fn update_commission(&mut self, c: &Commission) -> Result<(), LifecycleError> {
        let n = self
            .execute(
                "UPDATE commissions SET voided_minor = $2, reversed_minor = $3, status = $4, approved_at_ms = $5, paid_at_ms = $6,
                    payout_id = $7, reserve_seq = $8 WHERE id = $1",
                &[
                    &c.id,
                    &c.voided_minor,
                    &c.reversed_minor,
                    &c.status.as_str(),
                    &c.approved_at_ms,
                    &c.paid_at_ms,
                    &c.payout_id,
                    &i64::from(c.reserve_seq),
                ],
            )
            .map_err(storage)?;
        if n != 1 {
            return Err(LifecycleError::NotFound(c.id.clone()));
        }
        Ok(())
    }

    fn commission(&mut self, id: &str) -> Result<Option<Commission>, LifecycleError> {
        self.lock_head()?;
        Ok(self.many(&format!("SELECT {COMMISSION_COLUMNS} FROM commissions WHERE id = $1"), &[&id])?.pop())
    }

    fn commissions_of(&mut self, conversion: &ConversionRef<'_>) -> Result<Vec<Commission>, LifecycleError> {
        self.lock_head()?;
        self.many(
            &format!("SELECT {COMMISSION_COLUMNS} FROM commissions WHERE conversion_id = $1 ORDER BY id COLLATE \"C\""),
            &[&conversion.id],
        )
    }

    fn due_for_approval(&mut self, now_ms: i64, limit: usize) -> Result<Vec<Commission>, LifecycleError> {
        self.lock_head()?;
        self.many(
            &format!(
                "SELECT {COMMISSION_COLUMNS} FROM commissions WHERE status = 'pending' AND lock_until_ms <= $1
                 ORDER BY lock_until_ms, id COLLATE \"C\" LIMIT $2"
            ),
            &[&now_ms, &(limit as i64)],
        )
    }

    fn insert_event(&mut self, e: &CommissionEvent) -> Result<(), LifecycleError> {
        // The next seq is read in the insert itself; steps run under the ledger head's lock,
        // so no other writer adds an event to the commission meanwhile. A batch numbers its
        // events the same way when it writes them.
        if let Some(b) = self.batch() {
            b.rows.event(e);
            return Ok(());
        }
        self.execute(
            "INSERT INTO commission_events (commission_id, seq, kind, amount_minor, transfer_id, at_ms)
                 VALUES ($1, (SELECT coalesce(max(seq), 0) + 1 FROM commission_events WHERE commission_id = $1), $2, $3, $4, $5)",
            &[&e.commission_id, &e.kind, &e.amount_minor, &&e.transfer_id.0[..], &e.at_ms],
        )
        .map_err(storage)?;
        Ok(())
    }

    fn events_of(&mut self, commission_id: &str) -> Result<Vec<CommissionEvent>, LifecycleError> {
        let rows = self
            .query(
                "SELECT commission_id, kind, amount_minor, transfer_id, at_ms FROM commission_events WHERE commission_id = $1 ORDER BY seq",
                &[&commission_id],
            )
            .map_err(storage)?;
        rows.iter().map(event_row).collect()
    }
}
