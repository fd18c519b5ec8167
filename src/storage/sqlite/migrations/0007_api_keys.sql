-- API keys beside the catalog: each stored as its SHA-256, never in clear. `prefix` is the
-- key's first 10 characters, shown in lists; `scope` is `admin` or `partner:<id>`.
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    sha256 BLOB NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    name TEXT NOT NULL,
    scope TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    last_used_ms INTEGER,
    revoked_ms INTEGER
);
