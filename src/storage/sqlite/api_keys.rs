//! API keys in the store file, beside the catalog (`access::KeyStore` on `SqliteCatalog`'s
//! connection): one row per key, found by its SHA-256.

use rusqlite::{params, OptionalExtension, Row};

use super::SqliteCatalog;
use crate::access::{AccessError, ApiKey, KeyStore, Scope};

fn storage(e: rusqlite::Error) -> AccessError {
    AccessError::Storage(format!("sqlite: {e}"))
}

const COLUMNS: &str = "id, prefix, name, scope, created_ms, last_used_ms, revoked_ms";

fn key_row(r: &Row<'_>) -> rusqlite::Result<Result<ApiKey, AccessError>> {
    let scope: String = r.get(3)?;
    let ms = |i: usize| -> rusqlite::Result<Option<u64>> { Ok(r.get::<_, Option<i64>>(i)?.map(|v| v as u64)) };
    let (id, prefix, name, created_ms, last_used_ms, revoked_ms) =
        (r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, i64>(4)? as u64, ms(5)?, ms(6)?);
    Ok(Scope::parse(&scope).map_err(|e| AccessError::Storage(format!("a stored key's scope: {e}"))).map(|scope| ApiKey {
        id,
        prefix,
        name,
        scope,
        created_ms,
        last_used_ms,
        revoked_ms,
    }))
}

impl SqliteCatalog {
    fn one_key(&self, filter: &str, arg: &dyn rusqlite::ToSql) -> Result<Option<ApiKey>, AccessError> {
        self.conn()
            .prepare_cached(&format!("SELECT {COLUMNS} FROM api_keys WHERE {filter}"))
            .and_then(|mut s| s.query_row([arg], key_row).optional())
            .map_err(storage)?
            .transpose()
    }
}

impl KeyStore for SqliteCatalog {
    fn insert_key(&self, k: &ApiKey, sha256: &[u8; 32]) -> Result<(), AccessError> {
        self.conn()
            .execute(
                "INSERT INTO api_keys (id, sha256, prefix, name, scope, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![k.id, &sha256[..], k.prefix, k.name, k.scope.to_string(), k.created_ms as i64],
            )
            .map_err(storage)?;
        Ok(())
    }

    fn key_by_hash(&self, sha256: &[u8; 32]) -> Result<Option<ApiKey>, AccessError> {
        self.one_key("sha256 = ?1", &&sha256[..])
    }

    fn key(&self, id: &str) -> Result<Option<ApiKey>, AccessError> {
        self.one_key("id = ?1", &id)
    }

    fn keys(&self) -> Result<Vec<ApiKey>, AccessError> {
        let mut stmt =
            self.conn().prepare_cached(&format!("SELECT {COLUMNS} FROM api_keys ORDER BY created_ms DESC, id")).map_err(storage)?;
        let rows = stmt.query_map([], key_row).map_err(storage)?;
        rows.map(|r| r.map_err(storage)?).collect()
    }

    fn revoke_key(&self, id: &str, now_ms: u64) -> Result<Option<ApiKey>, AccessError> {
        self.conn()
            .execute("UPDATE api_keys SET revoked_ms = coalesce(revoked_ms, ?2) WHERE id = ?1", params![id, now_ms as i64])
            .map_err(storage)?;
        self.key(id)
    }

    fn touch_key(&self, id: &str, now_ms: u64) -> Result<(), AccessError> {
        self.conn()
            .execute("UPDATE api_keys SET last_used_ms = max(coalesce(last_used_ms, 0), ?2) WHERE id = ?1", params![id, now_ms as i64])
            .map_err(storage)?;
        Ok(())
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
