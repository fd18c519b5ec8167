//! Payout runs, payouts and the run lock in PostgreSQL (cluster mode): the same rows as
//! SQLite's, migration `0003_payouts`. Each transaction a run opens first takes the ledger
//! head's lock (`storage::payouts`), so its reads and writes are serialised with every writer.

use ::postgres::types::ToSql;
use ::postgres::Row;

use crate::lifecycle::Commission;
use crate::model::Currency;
use crate::payouts::state::Unpaid;
use crate::payouts::{Payout, PayoutError, PayoutFilter, PayoutMethod, PayoutStatus, PayoutTx, Run, Trigger};
use crate::storage::data_key;
use crate::storage::pg::lifecycle::commission_row;
use crate::storage::pg::PgTx;
use crate::storage::row::COMMISSION_COLUMNS;

const RUN_COLUMNS: &str = "id, program, currency, trigger, status, started_ms, finished_ms";
const PAYOUT_COLUMNS: &str = "id, run_id, partner, currency, amount_minor, method, destination, status, reference, failure, \
                              insufficient, created_ms, sent_ms, settled_ms";

fn storage(e: ::postgres::Error) -> PayoutError {
    match e.as_db_error() {
        Some(db) => PayoutError::Storage(format!("PostgreSQL {}: {}", db.code().code(), db.message())),
        None => PayoutError::Storage(format!("PostgreSQL: {e}")),
    }
}

fn bad(what: String) -> PayoutError {
    PayoutError::Storage(format!("PostgreSQL: {what}"))
}

fn currency(s: &str) -> Result<Currency, PayoutError> {
    Currency::parse(s).map_err(|e| bad(format!("column currency: {e}")))
}

fn run_row(r: &Row) -> Result<Run, PayoutError> {
    let cur: Option<String> = r.try_get(2).map_err(storage)?;
    let trigger: String = r.try_get(3).map_err(storage)?;
    let status: String = r.try_get(4).map_err(storage)?;
    Ok(Run {
        id: r.try_get(0).map_err(storage)?,
        program: r.try_get(1).map_err(storage)?,
        currency: cur.as_deref().map(currency).transpose()?,
        trigger: Trigger::parse(&trigger).ok_or_else(|| bad(format!("{trigger:?} is not a run trigger")))?,
        finished: match status.as_str() {
            "running" => false,
            "finished" => true,
            _ => return Err(bad(format!("{status:?} is not a run status"))),
        },
        started_ms: r.try_get(5).map_err(storage)?,
        finished_ms: r.try_get(6).map_err(storage)?,
    })
}

fn payout_row(r: &Row) -> Result<Payout, PayoutError> {
    let cur: String = r.try_get(3).map_err(storage)?;
    let method: String = r.try_get(5).map_err(storage)?;
    let status: String = r.try_get(7).map_err(storage)?;
    Ok(Payout {
        id: r.try_get(0).map_err(storage)?,
        run_id: r.try_get(1).map_err(storage)?,
        partner: r.try_get(2).map_err(storage)?,
        currency: currency(&cur)?,
        amount_minor: r.try_get(4).map_err(storage)?,
        method: PayoutMethod::parse(&method).map_err(|e| bad(e.to_string()))?,
        destination: {
            let id: String = r.try_get(0).map_err(storage)?;
            let sealed: String = r.try_get(6).map_err(storage)?;
            data_key::open("payouts", "destination", &id, &sealed).map_err(|e| PayoutError::Storage(e.to_string()))?
        },
        status: PayoutStatus::parse(&status).ok_or_else(|| bad(format!("{status:?} is not a payout status")))?,
        reference: r.try_get(8).map_err(storage)?,
        failure: r.try_get(9).map_err(storage)?,
        insufficient: r.try_get(10).map_err(storage)?,
        created_ms: r.try_get(11).map_err(storage)?,
        sent_ms: r.try_get(12).map_err(storage)?,
        settled_ms: r.try_get(13).map_err(storage)?,
    })
}

impl PgTx<'_, '_> {
    fn rows<T>(&mut self, sql: &str, p: &[&(dyn ToSql + Sync)], row: fn(&Row) -> Result<T, PayoutError>) -> Result<Vec<T>, PayoutError> {
        self.query(sql, p).map_err(storage)?.iter().map(row).collect()
    }
}

fn limit(n: usize) -> i64 {
    n.min(i64::MAX as usize) as i64
}

impl PayoutTx for PgTx<'_, '_> {
    fn take_lock(&mut self, holder: &str, run_id: &str, now_ms: i64, expires_ms: i64) -> Result<(), PayoutError> {
        let held =
            self.query_opt("SELECT holder, run_id, expires_ms FROM payout_lock WHERE singleton = 1 FOR UPDATE", &[]).map_err(storage)?;
        if let Some(r) = held {
            let other: String = r.try_get(0).map_err(storage)?;
            let (run, expires): (String, i64) = (r.try_get(1).map_err(storage)?, r.try_get(2).map_err(storage)?);
            if other != holder && expires > now_ms {
                return Err(PayoutError::Locked { run, expires_ms: expires });
            }
            if other != holder {
                tracing::warn!(run = run_id, expired = run, "A payout run takes over an expired run lock.");
            }
        }
        self.execute(
            "INSERT INTO payout_lock (singleton, run_id, holder, expires_ms) VALUES (1, $1, $2, $3)
             ON CONFLICT (singleton) DO UPDATE SET run_id = EXCLUDED.run_id, holder = EXCLUDED.holder, expires_ms = EXCLUDED.expires_ms",
            &[&run_id, &holder, &expires_ms],
        )
        .map_err(storage)?;
        Ok(())
    }

    fn renew_lock(&mut self, holder: &str, run_id: &str, expires_ms: i64) -> Result<bool, PayoutError> {
        let n = self
            .execute(
                "UPDATE payout_lock SET expires_ms = $3 WHERE singleton = 1 AND holder = $1 AND run_id = $2",
                &[&holder, &run_id, &expires_ms],
            )
            .map_err(storage)?;
        Ok(n == 1)
    }

    fn release_lock(&mut self, holder: &str) -> Result<(), PayoutError> {
        self.execute("DELETE FROM payout_lock WHERE singleton = 1 AND holder = $1", &[&holder]).map_err(storage)?;
        Ok(())
    }

    fn insert_run(&mut self, run: &Run) -> Result<(), PayoutError> {
        let cur = run.currency.map(|c| c.as_str().to_string());
        self.execute(
            "INSERT INTO payout_runs (id, program, currency, trigger, status, started_ms) VALUES ($1, $2, $3, $4, 'running', $5)",
            &[&run.id, &run.program, &cur, &run.trigger.as_str(), &run.started_ms],
        )
        .map_err(storage)?;
        Ok(())
    }

    fn finish_run(&mut self, run_id: &str, now_ms: i64) -> Result<(), PayoutError> {
        self.execute("UPDATE payout_runs SET status = 'finished', finished_ms = $2 WHERE id = $1", &[&run_id, &now_ms]).map_err(storage)?;
        Ok(())
    }

    fn run(&mut self, id: &str) -> Result<Option<Run>, PayoutError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM payout_runs WHERE id = $1");
        self.query_opt(&sql, &[&id]).map_err(storage)?.as_ref().map(run_row).transpose()
    }

    fn unfinished_runs(&mut self) -> Result<Vec<Run>, PayoutError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM payout_runs WHERE status = 'running' ORDER BY started_ms, id COLLATE \"C\"");
        self.rows(&sql, &[], run_row)
    }

    fn runs(&mut self, before: Option<&str>, n: usize) -> Result<Vec<Run>, PayoutError> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM payout_runs WHERE $1::TEXT IS NULL OR id COLLATE \"C\" < $1 ORDER BY id COLLATE \"C\" DESC LIMIT $2"
        );
        self.rows(&sql, &[&before, &limit(n)], run_row)
    }

    fn last_scheduled_run_ms(&mut self, program: &str) -> Result<Option<i64>, PayoutError> {
        let r = self
            .query_one("SELECT max(started_ms) FROM payout_runs WHERE program = $1 AND trigger = 'schedule'", &[&program])
            .map_err(storage)?;
        r.try_get(0).map_err(storage)
    }

    fn insert_payout(&mut self, p: &Payout) -> Result<(), PayoutError> {
        let destination =
            data_key::seal("payouts", "destination", &p.id, &p.destination).map_err(|e| PayoutError::Storage(e.to_string()))?;
        self.execute(
            &format!("INSERT INTO payouts ({PAYOUT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"),
            &[
                &p.id,
                &p.run_id,
                &p.partner,
                &p.currency.as_str(),
                &p.amount_minor,
                &p.method.as_str(),
                &destination,
                &p.status.as_str(),
                &p.reference,
                &p.failure,
                &p.insufficient,
                &p.created_ms,
                &p.sent_ms,
                &p.settled_ms,
            ],
        )
        .map_err(storage)?;
        Ok(())
    }

    fn update_payout(&mut self, p: &Payout) -> Result<(), PayoutError> {
        let n = self
            .execute(
                "UPDATE payouts SET status = $2, reference = $3, failure = $4, insufficient = $5, sent_ms = $6, settled_ms = $7 WHERE id = $1",
                &[&p.id, &p.status.as_str(), &p.reference, &p.failure, &p.insufficient, &p.sent_ms, &p.settled_ms],
            )
            .map_err(storage)?;
        if n != 1 {
            return Err(PayoutError::NotFound(format!("payout {:?} not found", p.id)));
        }
        Ok(())
    }

    fn payout(&mut self, id: &str) -> Result<Option<Payout>, PayoutError> {
        let sql = format!("SELECT {PAYOUT_COLUMNS} FROM payouts WHERE id = $1");
        self.query_opt(&sql, &[&id]).map_err(storage)?.as_ref().map(payout_row).transpose()
    }

    fn payouts(&mut self, f: &PayoutFilter) -> Result<Vec<Payout>, PayoutError> {
        let status = f.status.map(|s| s.as_str());
        let sql = format!(
            "SELECT {PAYOUT_COLUMNS} FROM payouts WHERE ($1::TEXT IS NULL OR run_id = $1) AND ($2::TEXT IS NULL OR partner = $2)
             AND ($3::TEXT IS NULL OR status = $3) AND ($4::TEXT IS NULL OR id COLLATE \"C\" > $4)
             ORDER BY id COLLATE \"C\" LIMIT $5"
        );
        self.rows(&sql, &[&f.run, &f.partner, &status, &f.after, &limit(f.limit)], payout_row)
    }

    fn open_stripe_payouts(&mut self, sent_since_ms: i64, n: usize) -> Result<Vec<Payout>, PayoutError> {
        let sql = format!(
            "SELECT {PAYOUT_COLUMNS} FROM payouts WHERE status = 'sent' AND method = 'stripe' AND coalesce(sent_ms, created_ms) >= $2
             ORDER BY created_ms, id COLLATE \"C\" LIMIT $1"
        );
        self.rows(&sql, &[&limit(n), &sent_since_ms], payout_row)
    }

    fn unpaid(&mut self, program: Option<&str>, cur: Option<Currency>) -> Result<Vec<Unpaid>, PayoutError> {
        let cur = cur.map(|c| c.as_str().to_string());
        let rows = self
            .query(
                "SELECT program, partner, currency, sum(amount_minor - voided_minor - reversed_minor)::BIGINT FROM commissions
                 WHERE status = 'approved' AND payout_id IS NULL AND ($1::TEXT IS NULL OR program = $1) AND ($2::TEXT IS NULL OR currency = $2)
                 GROUP BY program, partner, currency ORDER BY partner COLLATE \"C\", currency, program COLLATE \"C\"",
                &[&program, &cur],
            )
            .map_err(storage)?;
        rows.iter()
            .map(|r| {
                let c: String = r.try_get(2).map_err(storage)?;
                Ok(Unpaid {
                    program: r.try_get(0).map_err(storage)?,
                    partner: r.try_get(1).map_err(storage)?,
                    currency: currency(&c)?,
                    amount_minor: r.try_get(3).map_err(storage)?,
                })
            })
            .collect()
    }

    fn hold_commissions(&mut self, partner: &str, cur: Currency, programs: &[String], payout_id: &str) -> Result<usize, PayoutError> {
        let n = self
            .execute(
                "UPDATE commissions SET payout_id = $1
                 WHERE program = ANY($2) AND partner = $3 AND currency = $4 AND status = 'approved' AND payout_id IS NULL",
                &[&payout_id, &programs, &partner, &cur.as_str()],
            )
            .map_err(storage)?;
        Ok(n as usize)
    }

    fn commissions_of_payout(&mut self, payout_id: &str) -> Result<Vec<Commission>, PayoutError> {
        let sql = format!("SELECT {COMMISSION_COLUMNS} FROM commissions WHERE payout_id = $1 ORDER BY created_at_ms, id COLLATE \"C\"");
        let rows = self.query(&sql, &[&payout_id]).map_err(storage)?;
        rows.iter().map(|r| commission_row(r).map_err(PayoutError::from)).collect()
    }
}
