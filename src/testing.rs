//! Test support shared by the unit and the end-to-end tests: a schema of its own in the local
//! PostgreSQL, a local Stripe (`stripe`) and a click event to build fixtures from. Not an API.
//!
//! Every test that needs PostgreSQL carries `#[ignore = "needs PostgreSQL at 127.0.0.1:5432; run
//! with --include-ignored"]`, so a plain `cargo test` lists it as ignored in its summary rather
//! than passing without a server. `cargo test -- --include-ignored` runs it, and then
//! `PgSchema::new` fails it with a message naming the server and how to start one when none
//! answers.

use std::sync::atomic::{AtomicU64, Ordering};

pub mod stripe;

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
    /// Creates `<prefix>_<pid>_<n>_<nanos>` for a test. Panics when no server answers, naming
    /// it and how to start one: a test that needs PostgreSQL is ignored by default, so when it
    /// runs, the server is expected.
    #[track_caller]
    pub fn new(prefix: &str) -> PgSchema {
        match PgSchema::try_new(prefix) {
            Ok(schema) => schema,
            Err(why) => panic!("{why}"),
        }
    }

    /// As `new`, but `None` (with a line saying so) when no server answers, unless
    /// `CLICKGATE_REQUIRE_SERVICES=1`, which makes that a failure. The benches use this: they
    /// report a skipped PostgreSQL half instead of failing.
    pub fn create(prefix: &str) -> Option<PgSchema> {
        match PgSchema::try_new(prefix) {
            Ok(schema) => Some(schema),
            Err(Unavailable { url, error }) if std::env::var("CLICKGATE_REQUIRE_SERVICES").as_deref() == Ok("1") => {
                panic!("no PostgreSQL at {url} and CLICKGATE_REQUIRE_SERVICES=1: {error}")
            }
            Err(Unavailable { url, error }) => {
                eprintln!("skipping: no PostgreSQL at {url} ({error}); CLICKGATE_REQUIRE_SERVICES=1 makes this a failure");
                None
            }
        }
    }

    fn try_new(prefix: &str) -> Result<PgSchema, Unavailable> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let base = pg_url();
        let mut client = connect(&base).map_err(|e| Unavailable { url: base.clone(), error: chain(&e) })?;
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let name = format!("{prefix}_{}_{}_{nanos}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        client.batch_execute(&format!("CREATE SCHEMA {name}")).unwrap();
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-csearch_path%3D{name}");
        Ok(PgSchema { name, url })
    }

    /// A connection to the schema.
    pub fn client(&self) -> postgres::Client {
        connect(&self.url).unwrap()
    }
}

/// No server answered at `url`.
struct Unavailable {
    url: String,
    error: String,
}

impl std::fmt::Display for Unavailable {
    /// What a test that needs PostgreSQL fails with: the server, and how to start one.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "this test needs PostgreSQL at {}, which does not answer ({}). Start a server on 127.0.0.1:5432 \
             with trust auth for user postgres and a database named test (on Debian: apt-get install postgresql, \
             pg_ctlcluster <version> main start, createdb -U postgres test), or point CLICKGATE_TEST_POSTGRES_URL \
             at one. Without PostgreSQL, run cargo test without --include-ignored: it lists these tests as ignored",
            self.url, self.error
        )
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        if let Ok(mut c) = connect(&pg_url()) {
            let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
        }
    }
}

/// The click-id key of the fixtures, as key id 1.
pub const CLICK_KEY: &[u8] = b"0123456789abcdef";

/// A signer with `CLICK_KEY` as key id 1.
pub fn click_signer() -> crate::model::ClickSigner {
    crate::model::ClickSigner::new(&[(1, CLICK_KEY.to_vec())])
}

/// A valid web click by `alice` on the `demo` link of program `demo`, every optional field
/// unset: a test sets what it looks at with struct-update syntax (`..testing::click(id, ts)`).
pub fn click(click_id: crate::model::ClickId, ts_ms: u64) -> crate::events::ClickEvent {
    use crate::model::{Channel, Reasons, Verdict, VisitorId};
    crate::events::ClickEvent {
        click_id,
        ts_ms,
        program: "demo".into(),
        partner: "alice".into(),
        link: "demo".into(),
        channel: Channel::Web,
        sub_ids: None,
        verdict: Verdict::Valid,
        reasons: Reasons::default(),
        observed: Reasons::default(),
        visitor_id: VisitorId([0; 16]),
        new_visitor: false,
        country: None,
        asn: 0,
        ua_hash: 0,
        ua: None,
        client_tag: None,
        ip: None,
        ip_hash: None,
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
