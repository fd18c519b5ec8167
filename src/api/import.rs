//! CSV import of marketplace order reports: `POST /v1/conversions/import?program=<id>` with a
//! `text/csv` body, and `clickgate import`, which sends a file there.
//!
//! The header row names the columns. Known columns: `order_id` (required), `amount_minor` or
//! `amount` (a decimal in major units, converted exactly with the currency's minor units),
//! `currency` (default: the program's), `occurred_at` (RFC 3339, or a `YYYY-MM-DD` date taken
//! as midnight UTC), `click_id`, `visitor_id`, `coupon_code`, `customer_ref` and `program`
//! (default: the query's). Other columns are ignored and listed in the answer. Each row is one
//! conversion; re-importing a file replays the rows already recorded instead of adding them
//! again, because conversion ids derive from (program, order_id).

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::join_all;
use hyper::StatusCode;
use serde::Serialize;

use super::conversions::{record, validate, ConversionBody};
use super::{json, ApiError, ApiResult, ApiState};
use crate::conversions::Origin;
use crate::model::Currency;

const KNOWN: [&str; 10] =
    ["order_id", "amount_minor", "amount", "currency", "occurred_at", "click_id", "visitor_id", "coupon_code", "customer_ref", "program"];

/// Rows sent to the writer at once; the writer groups them into few commits.
const CHUNK_ROWS: usize = 256;

/// What an import did.
#[derive(Debug, Default, Serialize, serde::Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ImportSummary {
    pub rows: usize,
    pub created: usize,
    pub replayed: usize,
    pub rejected: Vec<RowError>,
    pub ignored_columns: Vec<String>,
}

/// Why one row was not recorded. Lines count from 1, the header being line 1.
#[derive(Debug, Serialize, serde::Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct RowError {
    pub line: u64,
    pub error: String,
}

/// Converts a decimal amount in major units to minor units, exactly.
pub fn parse_amount(s: &str, minor_units: u32) -> Result<i64, String> {
    let s = s.trim();
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{s:?} is not a non-negative decimal such as 12.50"));
    }
    if frac.len() > minor_units as usize {
        return Err(format!("{s:?} has more than {minor_units} decimal places"));
    }
    let scale = 10i64.pow(minor_units);
    let whole: i64 = whole.parse().map_err(|_| format!("{s:?} is too large"))?;
    let frac_minor: i64 =
        if frac.is_empty() { 0 } else { frac.parse::<i64>().map_err(|e| e.to_string())? * 10i64.pow(minor_units - frac.len() as u32) };
    whole.checked_mul(scale).and_then(|w| w.checked_add(frac_minor)).ok_or_else(|| format!("{s:?} is too large"))
}

fn row_body(headers: &[String], row: &csv::StringRecord, default_program: &str, state: &ApiState) -> Result<ConversionBody, String> {
    let get = |name: &str| headers.iter().position(|h| h == name).and_then(|i| row.get(i)).map(str::trim).filter(|v| !v.is_empty());
    let program = get("program").unwrap_or(default_program).to_string();
    let program_currency = state.catalog.load().program(&program).map(|p| p.currency.to_string());
    let currency = get("currency").map(String::from).or(program_currency).ok_or_else(|| format!("program: unknown program {program:?}"))?;
    let amount_minor = match (get("amount_minor"), get("amount")) {
        (Some(m), _) => m.parse::<i64>().map_err(|_| format!("amount_minor: {m:?} is not an integer"))?,
        (None, Some(a)) => {
            let units = Currency::parse(&currency).map_err(|_| format!("currency: {currency:?} is not an ISO 4217 code"))?.minor_units();
            parse_amount(a, units.into()).map_err(|e| format!("amount: {e}"))?
        }
        (None, None) => return Err("amount_minor: the row has neither amount_minor nor amount".into()),
    };
    let occurred_at = get("occurred_at").ok_or("occurred_at: is required")?;
    let occurred_at = if occurred_at.len() == 10 { format!("{occurred_at}T00:00:00Z") } else { occurred_at.to_string() };
    Ok(ConversionBody {
        order_id: get("order_id").ok_or("order_id: is required")?.to_string(),
        program,
        amount_minor,
        currency,
        occurred_at,
        click_id: get("click_id").map(String::from),
        visitor_id: get("visitor_id").map(String::from),
        coupon_code: get("coupon_code").map(String::from),
        customer_ref: get("customer_ref").map(String::from),
    })
}

pub async fn handle(state: &Arc<ApiState>, query: &str, body: &Bytes) -> ApiResult {
    let program = form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "program").map(|(_, v)| v.into_owned()).unwrap_or_default();
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(&body[..]);
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| ApiError::bad_request(format!("CSV header: {e}")))?
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    if !headers.iter().any(|h| h == "order_id") {
        return Err(ApiError::bad_request("CSV header: needs an order_id column"));
    }
    let mut summary = ImportSummary {
        ignored_columns: headers.iter().filter(|h| !KNOWN.contains(&h.as_str())).cloned().collect(),
        ..ImportSummary::default()
    };
    let now_ms = (state.now_ms)();
    let mut pending = Vec::new();
    for row in reader.records() {
        summary.rows += 1;
        let (line, result) = match row {
            Ok(r) => (r.position().map_or(0, |p| p.line()), Ok(r)),
            Err(e) => (e.position().map_or(0, |p| p.line()), Err(e.to_string())),
        };
        let conversion = result
            .and_then(|r| row_body(&headers, &r, &program, state))
            .and_then(|b| validate(state, b, Origin::Import, now_ms).map_err(|e| e.message));
        match conversion {
            Ok(c) => pending.push((line, c)),
            Err(error) => summary.rejected.push(RowError { line, error }),
        }
        if pending.len() >= CHUNK_ROWS {
            flush(state, &mut pending, now_ms, &mut summary).await;
        }
    }
    flush(state, &mut pending, now_ms, &mut summary).await;
    summary.rejected.sort_by_key(|r| r.line);
    Ok(json(StatusCode::OK, &summary))
}

async fn flush(state: &ApiState, pending: &mut Vec<(u64, crate::conversions::NewConversion)>, now_ms: u64, summary: &mut ImportSummary) {
    let rows: Vec<_> = std::mem::take(pending);
    let results = join_all(rows.into_iter().map(|(line, c)| async move { (line, record(state, c, None, now_ms).await) })).await;
    for (line, r) in results {
        match r {
            Ok(w) if super::conversions::replayed(&w) => summary.replayed += 1,
            Ok(_) => summary.created += 1,
            Err(e) => summary.rejected.push(RowError { line, error: e.message }),
        }
    }
}

/// `clickgate import`: sends a CSV file to a running API and returns its summary.
pub async fn import_csv_via_api(api: std::net::SocketAddr, key: &str, program: &str, csv: Vec<u8>) -> anyhow::Result<(u16, String)> {
    use http_body_util::{BodyExt, Full};
    let stream = tokio::net::TcpStream::connect(api).await.map_err(|e| anyhow::anyhow!("cannot reach the API at {api}: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let query: String = form_urlencoded::Serializer::new(String::new()).append_pair("program", program).finish();
    let req = hyper::Request::post(format!("/v1/conversions/import?{query}"))
        .header(hyper::header::HOST, api.to_string())
        .header(hyper::header::AUTHORIZATION, format!("Bearer {key}"))
        .header(hyper::header::CONTENT_TYPE, "text/csv")
        .body(Full::new(Bytes::from(csv)))?;
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::parse_amount;

    #[test]
    fn amounts_convert_exactly() {
        let check = |s: &str, units: u32, want: Result<i64, ()>| assert_eq!(parse_amount(s, units).map_err(|_| ()), want, "{s}");
        check("12.50", 2, Ok(1250));
        check("12.5", 2, Ok(1250));
        check("12", 2, Ok(1200));
        check("0.01", 2, Ok(1));
        check("1500", 0, Ok(1500));
        check("1.234", 3, Ok(1234));
        check("12.345", 2, Err(()));
        check("-1", 2, Err(()));
        check("1,000.00", 2, Err(()));
        check(".5", 2, Err(()));
        check("99999999999999999999", 2, Err(()));
    }
}
