//! What the payout tests share: a store on either backend (the catalog beside it: the data
//! dir's SQLite file, or the PostgreSQL schema), partners and programs, approved commissions,
//! and reads of the ledger.
#![allow(dead_code)]

/// `both!(case)`: the test `case::sqlite`, and `case::pg`, which needs PostgreSQL and runs with
/// `--include-ignored`; `case` is a `fn(Backend)` beside the call.
#[allow(unused_macros)]
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[test]
            fn sqlite() {
                super::$name(super::Backend::Sqlite);
            }
            #[test]
            #[ignore = "needs PostgreSQL at 127.0.0.1:5432; run with --include-ignored"]
            fn pg() {
                super::$name(super::Backend::Pg);
            }
        }
    };
}

use std::path::PathBuf;

use clickgate::attribution::engine::Share;
use clickgate::catalog::{Catalogue, NewPartner, NewProgram};
use clickgate::commission::ProgramRules;
use clickgate::ledger::{self, AccountKey, AccountKind, Balance, VerifyReport};
use clickgate::lifecycle::{self, Sale};
use clickgate::model::Currency;
use clickgate::payouts::{PayoutMethod, PayoutStore, Request, Trigger};
use clickgate::storage::offline::StoreAt;
use clickgate::storage::payouts::{Desk, PayoutDb};
use clickgate::storage::sqlite;
use clickgate::storage::CatalogDb;
use clickgate::testing::PgSchema;

/// 2026-12-01T00:00:00Z.
pub const T0: i64 = 1_796_083_200_000;
pub const DAY_MS: i64 = 86_400_000;

pub fn usd() -> Currency {
    Currency::parse("USD").unwrap()
}

pub enum Backend {
    Sqlite,
    Pg,
}

pub struct World {
    pub dir: tempfile::TempDir,
    pub at: StoreAt,
    pub export_dir: PathBuf,
    pub runtime: tokio::runtime::Runtime,
    pub schema: Option<PgSchema>,
    conversions: u64,
}

impl World {
    pub fn new(backend: Backend) -> World {
        let dir = tempfile::tempdir().unwrap();
        sqlite::migrate(dir.path()).unwrap();
        let (at, schema) = match backend {
            Backend::Sqlite => (StoreAt::File(dir.path().to_path_buf()), None),
            Backend::Pg => {
                let schema = PgSchema::new("payouts");
                clickgate::storage::pg::migrate(&schema.url).unwrap();
                (StoreAt::Pg(schema.url.clone()), Some(schema))
            }
        };
        let url = schema.as_ref().map(|s| s.url.as_str());
        // Partners' payout details are sealed under the process's one data key: every world of
        // this test process keeps the same key in its data dir, and loads it as a start would.
        clickgate::privacy::keys::write_new(&clickgate::privacy::keys::file(dir.path()), &"5a".repeat(32)).unwrap();
        let catalog = CatalogDb::open(url, dir.path()).unwrap();
        clickgate::storage::data_key::load(&catalog, dir.path()).unwrap();
        catalog.add_program(&program("shop", 5000)).unwrap();
        let export_dir = dir.path().join("exports");
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        World { dir, at, export_dir, runtime, schema, conversions: 0 }
    }

    /// The catalog beside the store, as the desk reads it.
    pub fn catalog(&self) -> CatalogDb {
        CatalogDb::connect(self.schema.as_ref().map(|s| s.url.as_str()), self.dir.path()).unwrap()
    }

    pub fn add_partner(&self, id: &str, method: PayoutMethod, stripe: Option<&str>, paypal: Option<&str>) {
        let p = NewPartner {
            id: id.into(),
            name: format!("Partner {id}"),
            email: format!("{id}@example.com"),
            payout_method: method,
            stripe_account: stripe.map(str::to_string),
            paypal_email: paypal.map(str::to_string),
        };
        self.catalog().add_partner(&p).unwrap();
    }

    pub fn db(&self) -> PayoutDb {
        PayoutDb::open(&self.at).unwrap()
    }

    /// A conversion of `sale_minor` in `program` credited whole to `partner`, at `T0`, and its
    /// commission (10%) approved.
    pub fn earn(&mut self, program: &str, partner: &str, sale_minor: i64) {
        self.earn_all(&[(program, partner, sale_minor)]);
    }

    /// `earn` for each (program, partner, sale), in one transaction.
    pub fn earn_all(&mut self, sales: &[(&str, &str, i64)]) {
        let mut ids = Vec::new();
        for (_, partner, _) in sales {
            self.conversions += 1;
            ids.push(format!("cv_{partner}_{}", self.conversions));
        }
        self.db()
            .write(|tx| {
                for ((program, partner, sale_minor), id) in sales.iter().zip(&ids) {
                    let sale = Sale { conversion_id: id, program, currency: usd(), amount_minor: *sale_minor, occurred_at_ms: T0 as u64 };
                    let shares = [Share { partner: partner.to_string(), amount_minor: *sale_minor }];
                    lifecycle::accrue(tx, &sale, &shares, &ProgramRules::default(), T0 as u64)?;
                }
                lifecycle::approve_due(tx, (T0 + 400 * DAY_MS) as u64, 1_000_000)?;
                Ok(())
            })
            .unwrap();
    }

    pub fn desk(&self, key: Option<&str>, api_base: Option<String>) -> Desk {
        self.desk_with(key, api_base, clickgate::config::Payouts::default().list_len_max)
    }

    /// A desk that reads payouts `list_len_max` at a time.
    pub fn desk_with(&self, key: Option<&str>, api_base: Option<String>, list_len_max: usize) -> Desk {
        let mut config = clickgate::config::Payouts { export_dir: Some(self.export_dir.clone()), list_len_max, ..Default::default() };
        if let Some(base) = api_base {
            config.stripe.api_base = base;
            config.stripe.backoff_base_ms = 1;
            config.stripe.backoff_max_ms = 2;
        }
        let key = key.map(|k| clickgate::payouts::SecretKey::new(k).unwrap());
        Desk::new(self.at.clone(), self.dir.path(), &config, key, self.runtime.handle().clone(), None).unwrap()
    }

    pub fn balance(&self, kind: AccountKind, owner: &str) -> Balance {
        self.db().read(|tx| Ok(tx.balance(&AccountKey::new(kind, owner, usd()))?)).unwrap()
    }

    /// What partner_payable holds and no payout has in transit.
    pub fn available(&self, partner: &str) -> i64 {
        let b = self.balance(AccountKind::PartnerPayable, partner);
        b.credits_posted - b.debits_posted - b.debits_pending
    }

    pub fn verify(&self) -> VerifyReport {
        self.db().read(|tx| Ok(ledger::verify(tx))).unwrap().expect("the ledger verifies")
    }

    /// The outbox's events of a type, as (cause, partner).
    pub fn events(&self, kind: &str) -> Vec<(String, Option<String>)> {
        match &self.schema {
            None => {
                let conn = rusqlite::Connection::open(sqlite::path(self.dir.path())).unwrap();
                let mut st = conn.prepare("SELECT cause, partner FROM webhook_events WHERE type = ?1 ORDER BY seq").unwrap();
                st.query_map([kind], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().collect::<Result<_, _>>().unwrap()
            }
            Some(s) => s
                .client()
                .query("SELECT cause, partner FROM webhook_events WHERE type = $1 ORDER BY seq", &[&kind])
                .unwrap()
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect(),
        }
    }
}

pub fn program(id: &str, threshold: i64) -> NewProgram {
    NewProgram {
        id: id.into(),
        name: format!("Program {id}"),
        currency: usd(),
        allowed_domains: vec!["example.com".into()],
        fallback_url: "https://example.com/".into(),
        blocked_action: Default::default(),
        country_allow: vec![],
        country_deny: vec![],
        attribution: Default::default(),
        commission: Default::default(),
        payout_threshold_minor: threshold,
        payout_schedule: "off".into(),
        partners_create_links: false,
    }
}

pub fn req(dry_run: bool) -> Request {
    Request { program: None, currency: None, trigger: Trigger::Cli, dry_run, by_hand: None }
}
