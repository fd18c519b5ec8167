//! API keys in PostgreSQL, beside the catalog (`access::KeyStore` on `PgCatalog`'s connection):
//! one row per key, found by its SHA-256, as in the data dir's file.

use ::postgres::Row;

use super::catalog::PgCatalog;
use crate::access::{AccessError, ApiKey, KeyStore, Scope};
use crate::catalog::CatalogError;

fn storage(e: CatalogError) -> AccessError {
    AccessError::Storage(e.to_string())
}

const COLUMNS: &str = "id, prefix, name, scope, created_ms, last_used_ms, revoked_ms";

fn key_row(r: &Row) -> Result<ApiKey, CatalogError> {
    let scope: &str = r.try_get(3)?;
    let scope = Scope::parse(scope).map_err(|e| CatalogError::Storage(format!("a stored key's scope: {e}")))?;
    let ms = |i: usize| -> Result<Option<u64>, CatalogError> { Ok(r.try_get::<_, Option<i64>>(i)?.map(|v| v.max(0) as u64)) };
    Ok(ApiKey {
        id: r.try_get(0)?,
        prefix: r.try_get(1)?,
        name: r.try_get(2)?,
        scope,
        created_ms: r.try_get::<_, i64>(4)?.max(0) as u64,
        last_used_ms: ms(5)?,
        revoked_ms: ms(6)?,
    })
}

/// Milliseconds as PostgreSQL's `BIGINT`; no clock reaches past it.
fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl PgCatalog {
    fn one_key(&self, filter: &str, arg: &(dyn ::postgres::types::ToSql + Sync)) -> Result<Option<ApiKey>, AccessError> {
        let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE {filter}");
        self.with(|c| c.query_opt(&sql, &[arg])?.as_ref().map(key_row).transpose()).map_err(storage)
    }
}

impl KeyStore for PgCatalog {
    fn insert_key(&self, k: &ApiKey, sha256: &[u8; 32]) -> Result<(), AccessError> {
        let sql = "INSERT INTO api_keys (id, sha256, prefix, name, scope, created_ms) VALUES ($1, $2, $3, $4, $5, $6)";
        let scope = k.scope.to_string();
        self.with(|c| Ok(c.execute(sql, &[&k.id, &&sha256[..], &k.prefix, &k.name, &scope, &ms(k.created_ms)])?))
            .map(|_| ())
            .map_err(storage)
    }

    fn key_by_hash(&self, sha256: &[u8; 32]) -> Result<Option<ApiKey>, AccessError> {
        self.one_key("sha256 = $1", &&sha256[..])
    }

    fn key(&self, id: &str) -> Result<Option<ApiKey>, AccessError> {
        self.one_key("id = $1", &id)
    }

    fn keys(&self) -> Result<Vec<ApiKey>, AccessError> {
        let sql = format!("SELECT {COLUMNS} FROM api_keys ORDER BY created_ms DESC, id COLLATE \"C\"");
        self.with(|c| c.query(&sql, &[])?.iter().map(key_row).collect()).map_err(storage)
    }

    fn revoke_key(&self, id: &str, now_ms: u64) -> Result<Option<ApiKey>, AccessError> {
        let sql = "UPDATE api_keys SET revoked_ms = coalesce(revoked_ms, $2) WHERE id = $1";
        self.with(|c| Ok(c.execute(sql, &[&id, &ms(now_ms)])?)).map_err(storage)?;
        self.key(id)
    }

    fn touch_key(&self, id: &str, now_ms: u64) -> Result<(), AccessError> {
        let sql = "UPDATE api_keys SET last_used_ms = greatest(coalesce(last_used_ms, 0), $2) WHERE id = $1";
        self.with(|c| Ok(c.execute(sql, &[&id, &ms(now_ms)])?)).map(|_| ()).map_err(storage)
    }

    fn keys_atomically(&self, f: &mut dyn FnMut() -> Result<(), AccessError>) -> Result<(), AccessError> {
        // The key's own error is kept aside and the transaction rolled back (`Ok(false)`), so
        // the caller gets it as it was, not as a storage error.
        let mut failed = None;
        let done = crate::catalog::CatalogStore::atomically(self, &mut || match f() {
            Ok(()) => Ok(true),
            Err(e) => {
                failed = Some(e);
                Ok(false)
            }
        });
        if let Some(e) = failed {
            return Err(e);
        }
        done.map(|_| ()).map_err(|e| AccessError::Storage(e.to_string()))
    }
}
