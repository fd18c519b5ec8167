//! Test support shared by the unit and the end-to-end tests: a schema of its own in the local
//! PostgreSQL. Not an API.

use std::sync::atomic::{AtomicU64, Ordering};

const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The server tests use: `CLICKGATE_TEST_POSTGRES_URL`, or the local one.
pub fn pg_url() -> String {
    std::env::var("CLICKGATE_TEST_POSTGRES_URL").unwrap_or_else(|_| PG_URL.to_string())
}

/// A fresh schema in the test server, dropped with this value.
pub struct PgSchema {
    pub name: String,
    /// A URL whose connections use the schema (`options=-c search_path=...`).
    pub url: String,
}

impl PgSchema {
    /// Creates `<prefix>_<pid>_<n>_<nanos>`; `None` (with a message) when no server answers,
    /// unless `CLICKGATE_REQUIRE_SERVICES=1`, which makes that a failure.
    pub fn create(prefix: &str) -> Option<PgSchema> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let base = pg_url();
        let mut client = match connect(&base) {
            Ok(c) => c,
            Err(e) if std::env::var("CLICKGATE_REQUIRE_SERVICES").as_deref() == Ok("1") => {
                panic!("no PostgreSQL at {base} and CLICKGATE_REQUIRE_SERVICES=1: {}", chain(&e))
            }
            Err(e) => {
                eprintln!("skipping: no PostgreSQL at {base} ({}); CLICKGATE_REQUIRE_SERVICES=1 makes this a failure", chain(&e));
                return None;
            }
        };
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let name = format!("{prefix}_{}_{}_{nanos}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        client.batch_execute(&format!("CREATE SCHEMA {name}")).unwrap();
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-csearch_path%3D{name}");
        Some(PgSchema { name, url })
    }

    /// A connection to the schema.
    pub fn client(&self) -> postgres::Client {
        connect(&self.url).unwrap()
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        if let Ok(mut c) = connect(&pg_url()) {
            let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
        }
    }
}

/// An error and its sources, on one line.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(c) = source {
        s.push_str(": ");
        s.push_str(&c.to_string());
        source = c.source();
    }
    s
}

fn connect(url: &str) -> Result<postgres::Client, postgres::Error> {
    let mut config: postgres::Config = url.parse()?;
    config.connect_timeout(std::time::Duration::from_secs(3));
    config.connect(postgres::NoTls)
}
