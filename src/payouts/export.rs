//! The file providers: a run's PayPal and Wise payouts written as the CSV files each service
//! takes for a batch upload, one currency per file, and read back to check them.
//!
//! - **PayPal Payouts CSV** (the Payouts web upload): no header, one line per payout:
//!   recipient email, amount in major units (`50.00`), currency code, the payout id as the
//!   customer reference, and a note.
//! - **Wise batch CSV**, following Wise's "Send by email" batch template (recipients paid to
//!   their email address, who give Wise their bank details themselves): a header row and the
//!   columns `name, recipientEmail, paymentReference, receiverType, amountCurrency, amount,
//!   sourceCurrency, targetCurrency`. `receiverType` is `PRIVATE`, `amountCurrency` is
//!   `target` (the partner gets the exact amount and the fees fall on the program), source and
//!   target are the file's currency, and the payment reference is the payout id.
//!
//! A file is written to a temporary name, synced, then renamed into place, so a crash never
//! leaves half a file under the final name; a rerun writes the same bytes again. Every cell is
//! checked to hold no control character, because the upload forms take one line per payout.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::provider::{Destination, PayoutRequest};
use crate::model::Currency;

/// Why an export could not be written or read back.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("no payouts to export")]
    Empty,
    #[error("run id {0:?} cannot name a file: use letters, digits, '.', '_' and '-'")]
    FileName(String),
    #[error("payout {payout} is in {got}, but this file is in {want}")]
    Currency { payout: String, got: Currency, want: Currency },
    #[error("payout {payout} goes by {method}, not {format}")]
    Destination { payout: String, method: &'static str, format: &'static str },
    #[error("payout {0} appears twice")]
    Duplicate(String),
    #[error("{field} {value:?} holds a control character or starts with = + - @, which a spreadsheet would run")]
    Cell { field: &'static str, value: String },
    #[error("the total overflows")]
    Overflow,
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Csv { path: PathBuf, source: csv::Error },
    #[error("{path} line {line}: {why}")]
    Parse { path: PathBuf, line: u64, why: String },
}

/// Which service's CSV.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExportFormat {
    /// PayPal Payouts CSV.
    Paypal,
    /// Wise batch CSV ("Send by email" template).
    Wise,
}

impl ExportFormat {
    /// The name in a file name and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Paypal => "paypal",
            ExportFormat::Wise => "wise",
        }
    }
}

/// The header of Wise's "Send by email" batch template.
pub const WISE_HEADER: [&str; 8] =
    ["name", "recipientEmail", "paymentReference", "receiverType", "amountCurrency", "amount", "sourceCurrency", "targetCurrency"];

/// A written file: where it is and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    pub path: PathBuf,
    pub format: ExportFormat,
    pub currency: Currency,
    /// Payouts in the file.
    pub count: usize,
    /// Their sum, in the currency's minor units.
    pub total_minor: i64,
}

/// One payout as a file holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportLine {
    pub payout_id: String,
    pub email: String,
    /// The recipient's name (Wise only).
    pub name: Option<String>,
    pub currency: Currency,
    pub amount_minor: i64,
    /// The note to the recipient (PayPal only).
    pub note: Option<String>,
}

/// The file a run's payouts in one currency go to: `<run>-<format>-<CUR>.csv`.
pub fn file_name(format: ExportFormat, run_id: &str, currency: Currency) -> Result<String, ExportError> {
    let ok = !run_id.is_empty() && !run_id.starts_with('.') && run_id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !ok {
        return Err(ExportError::FileName(run_id.to_string()));
    }
    Ok(format!("{run_id}-{}-{currency}.csv", format.as_str()))
}

/// Writes one currency's payouts of a run to `dir`, atomically, and answers what it wrote.
/// Every payout must be in `currency` and go by `format`'s method. `note` is PayPal's note to
/// each recipient.
pub fn write(
    dir: &Path,
    format: ExportFormat,
    run_id: &str,
    currency: Currency,
    payouts: &[PayoutRequest],
    note: &str,
) -> Result<Export, ExportError> {
    if payouts.is_empty() {
        return Err(ExportError::Empty);
    }
    check_cell("note", note)?;
    let path = dir.join(file_name(format, run_id, currency)?);
    let mut seen = std::collections::HashSet::with_capacity(payouts.len());
    let mut rows = Vec::with_capacity(payouts.len() + 1);
    if format == ExportFormat::Wise {
        rows.push(WISE_HEADER.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    }
    let mut total_minor: i64 = 0;
    for p in payouts {
        if p.currency() != currency {
            return Err(ExportError::Currency { payout: p.payout_id().to_string(), got: p.currency(), want: currency });
        }
        if !seen.insert(p.payout_id()) {
            return Err(ExportError::Duplicate(p.payout_id().to_string()));
        }
        total_minor = total_minor.checked_add(p.amount_minor()).ok_or(ExportError::Overflow)?;
        let amount = format_amount(p.amount_minor(), currency.minor_units());
        let code = currency.as_str().to_string();
        let row = match (format, p.destination()) {
            (ExportFormat::Paypal, Destination::Paypal(email)) => {
                vec![email.as_str().to_string(), amount, code, p.payout_id().to_string(), note.to_string()]
            }
            (ExportFormat::Wise, Destination::Wise { name, email }) => {
                check_cell("name", name)?;
                let (id, email) = (p.payout_id().to_string(), email.as_str().to_string());
                vec![name.clone(), email, id, "PRIVATE".into(), "target".into(), amount, code.clone(), code]
            }
            (_, other) => {
                let method = other.method().as_str();
                return Err(ExportError::Destination { payout: p.payout_id().to_string(), method, format: format.as_str() });
            }
        };
        rows.push(row);
    }
    write_atomically(&path, &rows)?;
    Ok(Export { path, format, currency, count: payouts.len(), total_minor })
}

/// A cell that the upload forms and a spreadsheet both take as plain text.
fn check_cell(field: &'static str, value: &str) -> Result<(), ExportError> {
    if value.chars().any(char::is_control) || value.starts_with(['=', '+', '-', '@']) {
        return Err(ExportError::Cell { field, value: value.to_string() });
    }
    Ok(())
}

/// Writes the rows to `<dir>/.<name>.tmp`, syncs it, renames it over `path` and syncs the
/// directory, so the final name only ever holds a whole file.
fn write_atomically(path: &Path, rows: &[Vec<String>]) -> Result<(), ExportError> {
    let io = |source| ExportError::Io { path: path.to_path_buf(), source };
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let file = File::create(&tmp).map_err(io)?;
    let mut csv = csv::WriterBuilder::new().has_headers(false).terminator(csv::Terminator::CRLF).from_writer(file);
    for row in rows {
        csv.write_record(row).map_err(|source| ExportError::Csv { path: tmp.clone(), source })?;
    }
    let mut file = csv.into_inner().map_err(|e| io(e.into_error()))?;
    file.flush().map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io)?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(io)
}

/// `minor` in major units with `exponent` decimals: 5000, 2 → `50.00`; 500, 0 → `500`.
pub fn format_amount(minor: i64, exponent: u8) -> String {
    if exponent == 0 {
        return minor.to_string();
    }
    let scale = 10u64.pow(u32::from(exponent));
    let abs = minor.unsigned_abs();
    let sign = if minor < 0 { "-" } else { "" };
    format!("{sign}{}.{:0width$}", abs / scale, abs % scale, width = usize::from(exponent))
}

/// The inverse of [`format_amount`] for a positive amount, strictly: digits, and exactly
/// `exponent` decimals after a point when the exponent is not 0.
pub fn parse_amount(s: &str, exponent: u8) -> Option<i64> {
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let (int, frac) = match s.split_once('.') {
        None if exponent == 0 => (s, ""),
        Some((i, f)) if exponent > 0 && f.len() == usize::from(exponent) && digits(f) => (i, f),
        _ => return None,
    };
    if !digits(int) {
        return None;
    }
    let scale = 10i64.checked_pow(u32::from(exponent))?;
    let minor = int.parse::<i64>().ok()?.checked_mul(scale)?.checked_add(if frac.is_empty() { 0 } else { frac.parse().ok()? })?;
    (minor > 0).then_some(minor)
}

/// Reads a file written by [`write`] back into its lines, checking each one: a known
/// currency, the same in every line, and a positive amount in that currency's decimals.
pub fn read(path: &Path, format: ExportFormat) -> Result<Vec<ExportLine>, ExportError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(format == ExportFormat::Wise)
        .from_path(path)
        .map_err(|source| ExportError::Csv { path: path.to_path_buf(), source })?;
    let parse = |line: u64, why: String| ExportError::Parse { path: path.to_path_buf(), line, why };
    if format == ExportFormat::Wise {
        let header = reader.headers().map_err(|source| ExportError::Csv { path: path.to_path_buf(), source })?;
        if header.iter().ne(WISE_HEADER) {
            return Err(parse(1, format!("the header is not Wise's {WISE_HEADER:?}")));
        }
    }
    let mut lines: Vec<ExportLine> = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|source| ExportError::Csv { path: path.to_path_buf(), source })?;
        let line = record.position().map_or(0, |p| p.line());
        let cell = |i: usize| record.get(i).unwrap_or("").to_string();
        let (want, code_at, amount_at) = match format {
            ExportFormat::Paypal => (5, 2, 1),
            ExportFormat::Wise => (8, 7, 5),
        };
        if record.len() != want {
            return Err(parse(line, format!("{} cells where {want} belong", record.len())));
        }
        let currency = Currency::parse(&cell(code_at)).map_err(|e| parse(line, e.to_string()))?;
        if lines.first().is_some_and(|first| first.currency != currency) || (format == ExportFormat::Wise && cell(6) != cell(7)) {
            return Err(parse(line, "a second currency in a one-currency file".into()));
        }
        let amount_minor = parse_amount(&cell(amount_at), currency.minor_units())
            .ok_or_else(|| parse(line, format!("amount {:?} is not a positive {currency} amount", cell(amount_at))))?;
        lines.push(match format {
            ExportFormat::Paypal => {
                ExportLine { payout_id: cell(3), email: cell(0), name: None, currency, amount_minor, note: Some(cell(4)) }
            }
            ExportFormat::Wise => {
                ExportLine { payout_id: cell(2), email: cell(1), name: Some(cell(0)), currency, amount_minor, note: None }
            }
        });
    }
    Ok(lines)
}

/// The count and the sum of a file's lines, to compare with the [`Export`] that wrote it.
pub fn totals(lines: &[ExportLine]) -> Result<(usize, i64), ExportError> {
    let sum = lines.iter().try_fold(0i64, |acc, l| acc.checked_add(l.amount_minor)).ok_or(ExportError::Overflow)?;
    Ok((lines.len(), sum))
}

#[cfg(test)]
mod tests;
