//! The data key's record in the store, and the passes that (re)seal every personal value in
//! it, on either backend: `load` at the store's open (check the key against the record, seal
//! rows left in clear from before migration 0009/0008), and `rotate` for
//! `clickgate data-key rotate`.
//!
//! A pass walks each sealed column in batches of rows that are not yet under the target key
//! (the first 17 characters of a sealed value name its key: `sealed::stored_prefix`), and
//! rewrites each batch in one transaction. A killed pass resumes where it stopped: the rows it
//! rewrote no longer match, so running it again is the resume, and running it once more finds
//! nothing.

use std::path::Path;

use rusqlite::OptionalExtension;

use super::CatalogDb;
use crate::catalog::CatalogError;
use crate::privacy::sealed::{is_sealed, stored_prefix, PREFIX};
use crate::privacy::{keys, DataKey, Field, PrivacyError};

/// A column holding sealed values: its table, the row's id column (bound into the seal) and,
/// for a value looked up by, the column of its keyed hash.
pub struct Sealed {
    pub table: &'static str,
    pub id: &'static str,
    pub column: &'static str,
    pub hash: Option<&'static str>,
}

/// Every sealed column of the store.
pub const COLUMNS: &[Sealed] = &[
    Sealed { table: "partners", id: "slug", column: "email", hash: None },
    Sealed { table: "partners", id: "slug", column: "stripe_account", hash: None },
    Sealed { table: "partners", id: "slug", column: "paypal_email", hash: None },
    Sealed { table: "conversions", id: "id", column: "customer_ref", hash: Some("customer_ref_hash") },
    Sealed { table: "idempotency_keys", id: "key", column: "body", hash: None },
    Sealed { table: "payouts", id: "id", column: "destination", hash: None },
];

/// Rows rewritten per transaction.
const BATCH_ROWS_MAX: i64 = 500;

impl From<PrivacyError> for CatalogError {
    fn from(e: PrivacyError) -> Self {
        CatalogError::Storage(e.to_string())
    }
}

/// The store's record: the key its values are under, and the key a rotation under way moves
/// them to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub key_id: String,
    pub rotating_to: Option<String>,
}

/// What a pass rewrote, per column (`table.column`).
#[derive(Debug, Default, serde::Serialize)]
pub struct Resealed {
    pub columns: Vec<(String, u64)>,
}

impl Resealed {
    pub fn total(&self) -> u64 {
        self.columns.iter().map(|c| c.1).sum()
    }
}

/// Loads the process's data key for `store` (under `data_dir`) and makes the store use it:
/// refuses a key other than the one the store records, records it on a store that has none,
/// and seals any value still in clear. What every open of the store for writing runs first.
pub fn load(store: &CatalogDb, data_dir: &Path) -> Result<&'static DataKey, CatalogError> {
    let record = read(store)?;
    let key = keys::resolve(data_dir, record.as_ref().map(|r| r.key_id.as_str()))?;
    if let Some(r) = &record {
        if let Some(to) = &r.rotating_to {
            return Err(CatalogError::Storage(format!(
                "a data key rotation from key id {} to {to} is under way; finish it with `clickgate data-key rotate` first",
                r.key_id
            )));
        }
        if r.key_id != key.id_hex() {
            return Err(CatalogError::Storage(format!(
                "the data key given (id {}) is not the key this store is sealed under (id {}); set CLICKGATE_DATA_KEY to that key",
                key.id_hex(),
                r.key_id
            )));
        }
    }
    let key = keys::install(key)?;
    let sealed = pass(store, None, key, true)?;
    if record.is_none() {
        write(store, &Record { key_id: key.id_hex(), rotating_to: None })?;
        tracing::info!(key_id = %key.id_hex(), sealed = sealed.total(), "the store records its data key");
    } else if sealed.total() > 0 {
        tracing::info!(key_id = %key.id_hex(), sealed = sealed.total(), "sealed values the store held in clear");
    }
    Ok(key)
}

/// Re-seals every value under `new` and recomputes the keyed hashes, in a transaction per
/// batch: `clickgate data-key rotate`. Resumable (the record names the rotation under way) and
/// idempotent (a value already under `new` is skipped; a finished rotation finds nothing).
pub fn rotate(store: &CatalogDb, old: &DataKey, new: &DataKey) -> Result<Resealed, CatalogError> {
    let record = read(store)?;
    let (old_id, new_id) = (old.id_hex(), new.id_hex());
    match &record {
        Some(r) if r.key_id == new_id && r.rotating_to.is_none() => return Ok(Resealed::default()),
        Some(r) if r.key_id != old_id => {
            return Err(CatalogError::Storage(format!(
                "the old key given (id {old_id}) is not the key this store is sealed under (id {})",
                r.key_id
            )))
        }
        Some(Record { rotating_to: Some(to), .. }) if *to != new_id => {
            return Err(CatalogError::Storage(format!(
                "a rotation to key id {to} is under way; resume it with that key as {}, not key id {new_id}",
                keys::ENV_NEW
            )))
        }
        _ => {}
    }
    write(store, &Record { key_id: old_id.clone(), rotating_to: Some(new_id.clone()) })?;
    let done = pass(store, Some(old), new, false)?;
    write(store, &Record { key_id: new_id, rotating_to: None })?;
    Ok(done)
}

/// Rewrites, column by column and batch by batch, every value not yet under `to`: opened with
/// `from` (or taken as clear text, from before the migration), sealed under `to`, its keyed
/// hash recomputed. `only_clear` limits it to the values in clear.
fn pass(store: &CatalogDb, from: Option<&DataKey>, to: &DataKey, only_clear: bool) -> Result<Resealed, CatalogError> {
    let mut out = Resealed::default();
    for c in COLUMNS {
        let (head, len) = if only_clear { (PREFIX.to_string(), PREFIX.len()) } else { (stored_prefix(to), stored_prefix(to).len()) };
        let mut n = 0u64;
        loop {
            let rewrote = match store {
                CatalogDb::File(s) => sqlite_batch(s.conn(), c, &head, len, |id, v| reseal(c, id, v, from, to))?,
                CatalogDb::Pg(s) => s.with(|client| pg_batch(client, c, &head, len, |id, v| reseal(c, id, v, from, to)))?,
            };
            if rewrote == 0 {
                break;
            }
            n += rewrote;
        }
        out.columns.push((format!("{}.{}", c.table, c.column), n));
    }
    Ok(out)
}

/// One value under `to`, and its keyed hash.
fn reseal(c: &Sealed, id: &str, stored: &str, from: Option<&DataKey>, to: &DataKey) -> Result<(String, Option<String>), CatalogError> {
    let field = Field { table: c.table, column: c.column, row: id };
    let clear = match (is_sealed(stored), from) {
        (false, _) => stored.to_string(),
        (true, Some(from)) => from.open(field, stored)?,
        (true, None) => {
            return Err(CatalogError::Storage(format!("{}.{} of {id:?} is sealed under another key than the one given", c.table, c.column)))
        }
    };
    Ok((to.seal(field, &clear)?, c.hash.map(|_| to.lookup_hash(&clear))))
}

type Reseal<'a> = dyn FnMut(&str, &str) -> Result<(String, Option<String>), CatalogError> + 'a;

fn select_sql(c: &Sealed, p: [&str; 3]) -> String {
    format!(
        "SELECT {id}, {col} FROM {t} WHERE {col} IS NOT NULL AND {col} <> '' AND substr({col}, 1, {len}) <> {head} ORDER BY {id} LIMIT {lim}",
        id = c.id,
        col = c.column,
        t = c.table,
        head = p[0],
        len = p[1],
        lim = p[2],
    )
}

fn update_sql(c: &Sealed, p: [&str; 3]) -> String {
    let hash = c.hash.map(|h| format!(", {h} = {}", p[2])).unwrap_or_default();
    format!("UPDATE {t} SET {col} = {v}{hash} WHERE {id} = {k}", t = c.table, col = c.column, id = c.id, v = p[0], k = p[1])
}

/// One batch on SQLite, in one transaction; returns the rows rewritten.
fn sqlite_batch(
    conn: &rusqlite::Connection,
    c: &Sealed,
    head: &str,
    len: usize,
    mut f: impl FnMut(&str, &str) -> Result<(String, Option<String>), CatalogError>,
) -> Result<u64, CatalogError> {
    let f: &mut Reseal<'_> = &mut f;
    let tx = conn.unchecked_transaction()?;
    let rows: Vec<(String, String)> = {
        let mut st = tx.prepare(&select_sql(c, ["?1", &len.to_string(), "?2"]))?;
        let rows = st.query_map(rusqlite::params![head, BATCH_ROWS_MAX], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
        rows
    };
    {
        let mut up = tx.prepare(&update_sql(c, ["?1", "?2", "?3"]))?;
        for (id, v) in &rows {
            let (sealed, hash) = f(id, v)?;
            match hash {
                Some(h) => up.execute(rusqlite::params![sealed, id, h])?,
                None => up.execute(rusqlite::params![sealed, id])?,
            };
        }
    }
    tx.commit()?;
    Ok(rows.len() as u64)
}

/// One batch on PostgreSQL, in one transaction; returns the rows rewritten.
fn pg_batch(
    client: &mut ::postgres::Client,
    c: &Sealed,
    head: &str,
    len: usize,
    mut f: impl FnMut(&str, &str) -> Result<(String, Option<String>), CatalogError>,
) -> Result<u64, CatalogError> {
    let mut tx = client.transaction()?;
    let sql = select_sql(c, ["$1::text", &len.to_string(), "$2"]);
    let rows: Vec<(String, String)> = tx.query(&sql, &[&head, &BATCH_ROWS_MAX])?.iter().map(|r| (r.get(0), r.get(1))).collect();
    let up = tx.prepare(&update_sql(c, ["$1::text", "$2::text", "$3::text"]))?;
    for (id, v) in &rows {
        let (sealed, hash) = f(id, v)?;
        match hash {
            Some(h) => tx.execute(&up, &[&sealed, id, &h])?,
            None => tx.execute(&up, &[&sealed, id])?,
        };
    }
    tx.commit()?;
    Ok(rows.len() as u64)
}

/// The store's record, if it has one.
pub fn read(store: &CatalogDb) -> Result<Option<Record>, CatalogError> {
    const SQL: &str = "SELECT key_id, rotating_to FROM data_key WHERE one = 1";
    match store {
        CatalogDb::File(s) => Ok(s.conn().query_row(SQL, [], |r| Ok(Record { key_id: r.get(0)?, rotating_to: r.get(1)? })).optional()?),
        CatalogDb::Pg(s) => s.with(|c| Ok(c.query_opt(SQL, &[])?.map(|r| Record { key_id: r.get(0), rotating_to: r.get(1) }))),
    }
}

fn write(store: &CatalogDb, r: &Record) -> Result<(), CatalogError> {
    const SQLITE: &str = "INSERT INTO data_key (one, key_id, rotating_to) VALUES (1, ?1, ?2)
         ON CONFLICT (one) DO UPDATE SET key_id = excluded.key_id, rotating_to = excluded.rotating_to";
    const PG: &str = "INSERT INTO data_key (one, key_id, rotating_to) VALUES (1, $1, $2)
         ON CONFLICT (one) DO UPDATE SET key_id = excluded.key_id, rotating_to = excluded.rotating_to";
    match store {
        CatalogDb::File(s) => {
            s.conn().execute(SQLITE, rusqlite::params![r.key_id, r.rotating_to])?;
        }
        CatalogDb::Pg(s) => {
            let (k, t) = (r.key_id.clone(), r.rotating_to.clone());
            s.with(move |c| Ok(c.execute(PG, &[&k, &t]).map(|_| ())?))?;
        }
    }
    Ok(())
}

/// Seals `clear` under the process's key for the row mappings: `table.column` of `row`.
pub(crate) fn seal(table: &'static str, column: &'static str, row: &str, clear: &str) -> Result<String, PrivacyError> {
    crate::privacy::current()?.seal(Field { table, column, row }, clear)
}

/// `seal` of an optional value.
pub(crate) fn seal_opt(table: &'static str, column: &'static str, row: &str, clear: Option<&str>) -> Result<Option<String>, PrivacyError> {
    clear.map(|c| seal(table, column, row, c)).transpose()
}

/// Opens a value the row mappings read.
pub(crate) fn open(table: &'static str, column: &'static str, row: &str, stored: &str) -> Result<String, PrivacyError> {
    match crate::privacy::current() {
        Ok(key) => key.open(Field { table, column, row }, stored),
        // A process that holds no key, a cluster edge, needs partners for their links, never
        // their personal fields: it reads them empty. It cannot write them back, since sealing
        // needs the key.
        Err(PrivacyError::NotLoaded) if table == "partners" => Ok(String::new()),
        Err(e) => Err(e),
    }
}

/// `open` of an optional value.
pub(crate) fn open_opt(
    table: &'static str,
    column: &'static str,
    row: &str,
    stored: Option<String>,
) -> Result<Option<String>, PrivacyError> {
    stored.map(|s| open(table, column, row, &s)).transpose()
}

/// The keyed hash of a customer reference, under the process's key.
pub(crate) fn lookup_hash(clear: Option<&str>) -> Result<Option<String>, PrivacyError> {
    let key = crate::privacy::current()?;
    Ok(clear.map(|c| key.lookup_hash(c)))
}

/// A sealing error as rusqlite's, for row mappings that answer `rusqlite::Result`.
pub(crate) fn sqlite_err(col: usize) -> impl Fn(PrivacyError) -> rusqlite::Error {
    move |e| rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Text, Box::new(e))
}

impl From<PrivacyError> for crate::conversions::ConversionError {
    fn from(e: PrivacyError) -> Self {
        crate::conversions::ConversionError::Storage(e.to_string())
    }
}
