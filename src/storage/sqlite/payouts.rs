//! Payout runs, payouts and the run lock in SQLite, in the same file and transaction as the
//! ledger and the commissions. The tables are migration `0003_payouts`.

use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};

use crate::lifecycle::Commission;
use crate::model::Currency;
use crate::payouts::state::Unpaid;
use crate::payouts::{Payout, PayoutError, PayoutFilter, PayoutMethod, PayoutStatus, PayoutTx, Run, Trigger};
use crate::storage::data_key;
use crate::storage::row::COMMISSION_COLUMNS;
use crate::storage::sqlite::lifecycle::commission_row;
use crate::storage::sqlite::SqliteTx;

const RUN_COLUMNS: &str = "id, program, currency, trigger, status, started_ms, finished_ms";
const PAYOUT_COLUMNS: &str = "id, run_id, partner, currency, amount_minor, method, destination, status, reference, failure, \
                              insufficient, created_ms, sent_ms, settled_ms";

fn storage(e: rusqlite::Error) -> PayoutError {
    PayoutError::Storage(format!("sqlite: {e}"))
}

fn bad(i: usize, what: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, what.into())
}

fn currency_at(r: &Row<'_>, i: usize) -> rusqlite::Result<Currency> {
    let s: String = r.get(i)?;
    Currency::parse(&s).map_err(|e| bad(i, format!("column currency: {e}")))
}

fn run_row(r: &Row<'_>) -> rusqlite::Result<Run> {
    let currency: Option<String> = r.get(2)?;
    let trigger: String = r.get(3)?;
    let status: String = r.get(4)?;
    Ok(Run {
        id: r.get(0)?,
        program: r.get(1)?,
        currency: currency.map(|c| Currency::parse(&c).map_err(|e| bad(2, format!("column currency: {e}")))).transpose()?,
        trigger: Trigger::parse(&trigger).ok_or_else(|| bad(3, format!("{trigger:?} is not a run trigger")))?,
        finished: match status.as_str() {
            "running" => false,
            "finished" => true,
            _ => return Err(bad(4, format!("{status:?} is not a run status"))),
        },
        started_ms: r.get(5)?,
        finished_ms: r.get(6)?,
    })
}

fn payout_row(r: &Row<'_>) -> rusqlite::Result<Payout> {
    let method: String = r.get(5)?;
    let status: String = r.get(7)?;
    Ok(Payout {
        id: r.get(0)?,
        run_id: r.get(1)?,
        partner: r.get(2)?,
        currency: currency_at(r, 3)?,
        amount_minor: r.get(4)?,
        method: PayoutMethod::parse(&method).map_err(|e| bad(5, e.to_string()))?,
        destination: {
            let id: String = r.get(0)?;
            data_key::open("payouts", "destination", &id, &r.get::<_, String>(6)?).map_err(data_key::sqlite_err(6))?
        },
        status: PayoutStatus::parse(&status).ok_or_else(|| bad(7, format!("{status:?} is not a payout status")))?,
        reference: r.get(8)?,
        failure: r.get(9)?,
        insufficient: r.get::<_, i64>(10)? != 0,
        created_ms: r.get(11)?,
        sent_ms: r.get(12)?,
        settled_ms: r.get(13)?,
    })
}

fn many<T>(
    conn: &Connection,
    sql: &str,
    p: impl rusqlite::Params,
    row: fn(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, PayoutError> {
    let mut st = conn.prepare_cached(sql).map_err(storage)?;
    let rows = st.query_map(p, row).map_err(storage)?;
    rows.collect::<rusqlite::Result<Vec<T>>>().map_err(storage)
}

impl PayoutTx for SqliteTx<'_> {
    fn take_lock(&mut self, holder: &str, run_id: &str, now_ms: i64, expires_ms: i64) -> Result<(), PayoutError> {
        let held: Option<(String, String, i64)> = self
            .conn()
            .query_row("SELECT holder, run_id, expires_ms FROM payout_lock WHERE singleton = 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()
            .map_err(storage)?;
        if let Some((other, run, expires)) = held {
            if other != holder && expires > now_ms {
                return Err(PayoutError::Locked { run, expires_ms: expires });
            }
            if other != holder {
                tracing::warn!(run = run_id, expired = run, "A payout run takes over an expired run lock.");
            }
        }
        self.conn()
            .execute(
                "INSERT INTO payout_lock (singleton, run_id, holder, expires_ms) VALUES (1, ?1, ?2, ?3)
                 ON CONFLICT (singleton) DO UPDATE SET run_id = excluded.run_id, holder = excluded.holder, expires_ms = excluded.expires_ms",
                params![run_id, holder, expires_ms],
            )
            .map_err(storage)?;
        Ok(())
    }

    fn renew_lock(&mut self, holder: &str, run_id: &str, expires_ms: i64) -> Result<bool, PayoutError> {
        let n = self
            .conn()
            .execute(
                "UPDATE payout_lock SET expires_ms = ?3 WHERE singleton = 1 AND holder = ?1 AND run_id = ?2",
                params![holder, run_id, expires_ms],
            )
            .map_err(storage)?;
        Ok(n == 1)
    }

    fn release_lock(&mut self, holder: &str) -> Result<(), PayoutError> {
        self.conn().execute("DELETE FROM payout_lock WHERE singleton = 1 AND holder = ?1", [holder]).map_err(storage)?;
        Ok(())
    }

    fn insert_run(&mut self, run: &Run) -> Result<(), PayoutError> {
        self.conn()
            .execute(
                "INSERT INTO payout_runs (id, program, currency, trigger, status, started_ms) VALUES (?1, ?2, ?3, ?4, 'running', ?5)",
                params![run.id, run.program, run.currency.map(|c| c.as_str().to_string()), run.trigger.as_str(), run.started_ms],
            )
            .map_err(storage)?;
        Ok(())
    }

    fn finish_run(&mut self, run_id: &str, now_ms: i64) -> Result<(), PayoutError> {
        self.conn()
            .execute("UPDATE payout_runs SET status = 'finished', finished_ms = ?2 WHERE id = ?1", params![run_id, now_ms])
            .map_err(storage)?;
        Ok(())
    }

    fn run(&mut self, id: &str) -> Result<Option<Run>, PayoutError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM payout_runs WHERE id = ?1");
        self.conn().query_row(&sql, [id], run_row).optional().map_err(storage)
    }

    fn unfinished_runs(&mut self) -> Result<Vec<Run>, PayoutError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM payout_runs WHERE status = 'running' ORDER BY started_ms, id");
        many(self.conn(), &sql, [], run_row)
    }

    fn runs(&mut self, before: Option<&str>, limit: usize) -> Result<Vec<Run>, PayoutError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM payout_runs WHERE ?1 IS NULL OR id < ?1 ORDER BY id DESC LIMIT ?2");
        many(self.conn(), &sql, params![before, limit.min(i64::MAX as usize) as i64], run_row)
    }

    fn last_scheduled_run_ms(&mut self, program: &str) -> Result<Option<i64>, PayoutError> {
        self.conn()
            .query_row("SELECT max(started_ms) FROM payout_runs WHERE program = ?1 AND trigger = 'schedule'", [program], |r| r.get(0))
            .map_err(storage)
    }

    fn insert_payout(&mut self, p: &Payout) -> Result<(), PayoutError> {
        let destination =
            data_key::seal("payouts", "destination", &p.id, &p.destination).map_err(|e| PayoutError::Storage(e.to_string()))?;
        self.conn()
            .prepare_cached(&format!(
                "INSERT INTO payouts ({PAYOUT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
            ))
            .map_err(storage)?
            .execute(params![
                p.id,
                p.run_id,
                p.partner,
                p.currency.as_str(),
                p.amount_minor,
                p.method.as_str(),
                destination,
                p.status.as_str(),
                p.reference,
                p.failure,
                i64::from(p.insufficient),
                p.created_ms,
                p.sent_ms,
                p.settled_ms
            ])
            .map_err(storage)?;
        Ok(())
    }

    fn update_payout(&mut self, p: &Payout) -> Result<(), PayoutError> {
        let n = self
            .conn()
            .prepare_cached(
                "UPDATE payouts SET status = ?2, reference = ?3, failure = ?4, insufficient = ?5, sent_ms = ?6, settled_ms = ?7 WHERE id = ?1",
            )
            .map_err(storage)?
            .execute(params![p.id, p.status.as_str(), p.reference, p.failure, i64::from(p.insufficient), p.sent_ms, p.settled_ms])
            .map_err(storage)?;
        if n != 1 {
            return Err(PayoutError::NotFound(format!("payout {:?} not found", p.id)));
        }
        Ok(())
    }

    fn payout(&mut self, id: &str) -> Result<Option<Payout>, PayoutError> {
        let sql = format!("SELECT {PAYOUT_COLUMNS} FROM payouts WHERE id = ?1");
        self.conn().prepare_cached(&sql).map_err(storage)?.query_row([id], payout_row).optional().map_err(storage)
    }

    fn payouts(&mut self, f: &PayoutFilter) -> Result<Vec<Payout>, PayoutError> {
        let mut sql = format!("SELECT {PAYOUT_COLUMNS} FROM payouts WHERE 1 = 1");
        let mut args: Vec<String> = Vec::new();
        let status = f.status.map(|s| s.as_str().to_string());
        for (column, value) in [("run_id", &f.run), ("partner", &f.partner), ("status", &status)] {
            if let Some(v) = value {
                args.push(v.clone());
                sql.push_str(&format!(" AND {column} = ?{}", args.len()));
            }
        }
        if let Some(after) = &f.after {
            args.push(after.clone());
            sql.push_str(&format!(" AND id > ?{}", args.len()));
        }
        sql.push_str(&format!(" ORDER BY id LIMIT {}", f.limit.min(i64::MAX as usize)));
        many(self.conn(), &sql, params_from_iter(args.iter()), payout_row)
    }

    fn open_stripe_payouts(&mut self, sent_since_ms: i64, limit: usize) -> Result<Vec<Payout>, PayoutError> {
        let sql = format!(
            "SELECT {PAYOUT_COLUMNS} FROM payouts WHERE status = 'sent' AND method = 'stripe' AND coalesce(sent_ms, created_ms) >= ?2
             ORDER BY created_ms, id LIMIT ?1"
        );
        many(self.conn(), &sql, params![limit.min(i64::MAX as usize) as i64, sent_since_ms], payout_row)
    }

    fn unpaid(&mut self, program: Option<&str>, currency: Option<Currency>) -> Result<Vec<Unpaid>, PayoutError> {
        let sql = "SELECT program, partner, currency, sum(amount_minor - voided_minor - reversed_minor) FROM commissions
                   WHERE status = 'approved' AND payout_id IS NULL AND (?1 IS NULL OR program = ?1) AND (?2 IS NULL OR currency = ?2)
                   GROUP BY program, partner, currency ORDER BY partner, currency, program";
        many(self.conn(), sql, params![program, currency.map(|c| c.as_str().to_string())], |r| {
            Ok(Unpaid { program: r.get(0)?, partner: r.get(1)?, currency: currency_at(r, 2)?, amount_minor: r.get(3)? })
        })
    }

    fn hold_commissions(&mut self, partner: &str, currency: Currency, programs: &[String], payout_id: &str) -> Result<usize, PayoutError> {
        let mut st = self
            .conn()
            .prepare_cached(
                "UPDATE commissions SET payout_id = ?1
                 WHERE program = ?2 AND partner = ?3 AND currency = ?4 AND status = 'approved' AND payout_id IS NULL",
            )
            .map_err(storage)?;
        let mut n = 0;
        for program in programs {
            n += st.execute(params![payout_id, program, partner, currency.as_str()]).map_err(storage)?;
        }
        Ok(n)
    }

    fn commissions_of_payout(&mut self, payout_id: &str) -> Result<Vec<Commission>, PayoutError> {
        let sql = format!("SELECT {COMMISSION_COLUMNS} FROM commissions WHERE payout_id = ?1 ORDER BY created_at_ms, id");
        many(self.conn(), &sql, [payout_id], commission_row)
    }
}
