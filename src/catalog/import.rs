//! Bulk link import: a CSV file with a header row naming its columns, each row validated as
//! `link add` validates one link, the valid rows written in large transactions.
//!
//! Columns: `code`, `program`, `partner` and `destination` are required; `channel` (default
//! `web`), `utm_source`, `utm_medium`, `utm_campaign`, `expires_at` (empty: never) and `status`
//! (`active`, `paused` or `expired`; default `active`) may be left out or left empty. Any other
//! column is refused before anything is read, so a misspelt column never drops its values.
//! A rejected row is reported with its line and why, and the rows around it are still written.

use std::collections::HashMap;
use std::io::Read;

use super::{CatalogError, Catalogue, NewLink, NewLinkRow, Program};
use crate::audit::{Action, Stamp};
use crate::model::{Channel, Status};

/// The columns a file may have.
pub const COLUMNS: [&str; 10] =
    ["code", "program", "partner", "destination", "channel", "utm_source", "utm_medium", "utm_campaign", "expires_at", "status"];
const REQUIRED: [&str; 4] = ["code", "program", "partner", "destination"];

/// Rows written per transaction.
pub const BATCH_ROWS: usize = 50_000;

/// One rejected row: its line in the file (the header is line 1), its code if it had one, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub line: u64,
    pub code: String,
    pub why: String,
}

/// What to do with the good rows of a file that has rejected ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Import none of them: the file goes in whole or not at all.
    AllOrNothing,
    /// Import them, and skip the rejected rows.
    SkipBad,
}

/// What an import did.
#[derive(Debug, Default)]
pub struct Report {
    /// Links written.
    pub added: usize,
    pub rejected: Vec<Rejected>,
    /// Good rows not written because other rows were rejected (`Mode::AllOrNothing`).
    pub held_back: usize,
}

/// Why a file could not be imported at all (a row's error is a `Rejected` instead).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("the header row: {0}")]
    Header(String),
    #[error("reading the file: {0}")]
    Csv(#[from] csv::Error),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// A row's link and status, before the program and partner are looked up.
struct Row {
    line: u64,
    link: NewLink,
    status: Status,
}

/// Imports the links of a CSV file into `store`. `expiry` reads an `expires_at` cell into Unix
/// seconds, as `link add --expires-at` does.
pub fn import_links<C: Catalogue + ?Sized>(
    store: &C,
    input: impl Read,
    expiry: &dyn Fn(&str) -> Result<i64, String>,
    mode: Mode,
    stamp: &Stamp,
) -> Result<Report, ImportError> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(false).from_reader(input);
    let columns = header(reader.headers()?)?;
    let mut rows = || import_rows(store, &mut reader, &columns, expiry, stamp);
    if mode == Mode::SkipBad {
        return rows();
    }
    let mut out = None;
    store.atomically(&mut || {
        let report = rows();
        let keep = matches!(&report, Ok(r) if r.rejected.is_empty());
        out = Some(report);
        Ok(keep)
    })?;
    let mut report = out.unwrap_or_else(|| Ok(Report::default()))?;
    if !report.rejected.is_empty() {
        report.held_back = std::mem::take(&mut report.added);
    }
    Ok(report)
}

/// Reads, validates and writes every row after the header.
fn import_rows<C: Catalogue + ?Sized, R: Read>(
    store: &C,
    reader: &mut csv::Reader<R>,
    columns: &HashMap<&'static str, usize>,
    expiry: &dyn Fn(&str) -> Result<i64, String>,
    stamp: &Stamp,
) -> Result<Report, ImportError> {
    let programs: HashMap<String, Program> = store.programs()?.into_iter().map(|p| (p.spec.id.clone(), p)).collect();
    let partners: HashMap<String, i64> = store.partners()?.into_iter().map(|p| (p.spec.id, p.row_id)).collect();
    let mut report = Report::default();
    let mut batch: Vec<(Row, i64, i64)> = Vec::with_capacity(BATCH_ROWS);
    let mut record = csv::StringRecord::new();
    loop {
        let line = reader.position().line() + 1;
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            // A row with the wrong number of cells, or bytes that are not UTF-8, is that row's
            // error; the reader goes on with the next one.
            Err(e) if matches!(e.kind(), csv::ErrorKind::UnequalLengths { .. } | csv::ErrorKind::Utf8 { .. }) => {
                let line = e.position().map_or(line, |p| p.line());
                report.rejected.push(Rejected { line, code: String::new(), why: e.to_string() });
                continue;
            }
            Err(e) => return Err(e.into()),
        }
        let line = record.position().map_or(line, |p| p.line());
        let at = Cells { record: &record, columns };
        match row(line, &at, expiry).and_then(|r| {
            let program = programs.get(&r.link.program).ok_or_else(|| format!("program {:?} not found", r.link.program))?;
            let partner = *partners.get(&r.link.partner).ok_or_else(|| format!("partner {:?} not found", r.link.partner))?;
            r.link.validate(&program.spec).map_err(|e| e.to_string())?;
            Ok((r, program.row_id, partner))
        }) {
            Ok(valid) => batch.push(valid),
            Err(why) => report.rejected.push(Rejected { line, code: at.get("code").to_string(), why }),
        }
        if batch.len() == BATCH_ROWS {
            flush(store, &mut batch, &mut report, stamp)?;
        }
    }
    flush(store, &mut batch, &mut report, stamp)?;
    report.rejected.sort_by_key(|r| r.line);
    Ok(report)
}

/// Maps each known column to its position; refuses unknown, repeated and missing columns.
fn header(h: &csv::StringRecord) -> Result<HashMap<&'static str, usize>, ImportError> {
    let mut columns = HashMap::new();
    for (i, name) in h.iter().enumerate() {
        let name = name.trim();
        let known = COLUMNS
            .iter()
            .find(|c| **c == name)
            .ok_or_else(|| ImportError::Header(format!("unknown column {name:?}; the columns are {}", COLUMNS.join(", "))))?;
        if columns.insert(*known, i).is_some() {
            return Err(ImportError::Header(format!("column {name:?} appears twice")));
        }
    }
    if let Some(missing) = REQUIRED.iter().find(|c| !columns.contains_key(*c)) {
        return Err(ImportError::Header(format!("column {missing:?} is required")));
    }
    Ok(columns)
}

/// One record's cells by column name; a column the file leaves out reads as empty.
struct Cells<'r> {
    record: &'r csv::StringRecord,
    columns: &'r HashMap<&'static str, usize>,
}

impl<'r> Cells<'r> {
    fn get(&self, name: &str) -> &'r str {
        self.columns.get(name).and_then(|&i| self.record.get(i)).unwrap_or("").trim()
    }
}

fn row(line: u64, cells: &Cells<'_>, expiry: &dyn Fn(&str) -> Result<i64, String>) -> Result<Row, String> {
    let cell = |name: &str| cells.get(name);
    let channel = match cell("channel") {
        "" => Channel::Web,
        c => Channel::parse(c).ok_or_else(|| format!("channel {c:?} is not web, social, email, qr, offline or marketplace"))?,
    };
    let status = match cell("status") {
        "" => Status::Active,
        s => Status::parse(s).ok_or_else(|| format!("status {s:?} is not active, paused or expired"))?,
    };
    let expires_at = match cell("expires_at") {
        "" => None,
        e => Some(expiry(e).map_err(|why| format!("expires_at: {why}"))?),
    };
    let link = NewLink {
        code: cell("code").to_string(),
        program: cell("program").to_string(),
        partner: cell("partner").to_string(),
        destination: cell("destination").to_string(),
        channel,
        utm_source: cell("utm_source").to_string(),
        utm_medium: cell("utm_medium").to_string(),
        utm_campaign: cell("utm_campaign").to_string(),
        expires_at,
    };
    Ok(Row { line, link, status })
}

/// Writes a batch in one transaction with its audit entry (`link.import`, named by the first
/// code added, its `after` every code added): one entry per batch, so the log costs an import
/// one row per `BATCH_ROWS` links. A taken code is that row's rejection.
fn flush<C: Catalogue + ?Sized>(
    store: &C,
    batch: &mut Vec<(Row, i64, i64)>,
    report: &mut Report,
    stamp: &Stamp,
) -> Result<(), CatalogError> {
    if batch.is_empty() {
        return Ok(());
    }
    let rows: Vec<NewLinkRow<'_>> = batch
        .iter()
        .map(|(r, program, partner)| NewLinkRow { link: &r.link, status: r.status, program_row_id: *program, partner_row_id: *partner })
        .collect();
    let mut written = None;
    store.atomically(&mut || {
        let added = store.insert_links(&rows)?;
        let codes: Vec<&str> = rows.iter().zip(&added).filter(|(_, new)| **new).map(|(r, _)| r.link.code.as_str()).collect();
        if let Some(first) = codes.first() {
            let after = serde_json::json!({ "added": codes.len(), "codes": codes });
            store.append_audit(&stamp.entry(Action::LinkImport, first, None, Some(after)))?;
        }
        written = Some(added);
        Ok(true)
    })?;
    let added = written.unwrap_or_default();
    for ((r, _, _), new) in batch.iter().zip(added) {
        if new {
            report.added += 1;
        } else {
            report.rejected.push(Rejected {
                line: r.line,
                code: r.link.code.clone(),
                why: format!("link {:?} already exists", r.link.code),
            });
        }
    }
    batch.clear();
    Ok(())
}
