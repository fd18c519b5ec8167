//! A payout run of 100k partners against the local Stripe (PRODUCT.md §10: under 60 s): every
//! partner has one approved commission past the threshold and a Stripe account; the run plans
//! them, sends them in batches (each batch's pending transfers committed before Stripe hears
//! of it), pays each through `POST /v1/transfers` over real sockets, and posts each transfer.
//!
//! ```text
//! cargo bench --bench payouts                            # 100 k partners
//! CLICKGATE_BENCH_QUICK=1 cargo bench --bench payouts    # 2 k partners
//! cargo test --release --bench payouts                   # the same scaled-down run, a smoke test
//! CLICKGATE_BENCH_PARTNERS=N                             # partners
//! ```
//!
//! Prints `payouts run: N partners in S s (P payouts/s)` and then checks the work: one Stripe
//! transfer per partner and key, every payout paid, and `ledger::verify` clean.

use std::time::Instant;

use clickgate::attribution::engine::Share;
use clickgate::catalog::{Catalogue, NewProgram};
use clickgate::commission::ProgramRules;
use clickgate::lifecycle::{self, Sale};
use clickgate::model::Currency;
use clickgate::payouts::{PayoutStore, Request, SecretKey, Trigger};
use clickgate::storage::offline::StoreAt;
use clickgate::storage::payouts::{Desk, PayoutDb};
use clickgate::storage::sqlite::{self, SqliteCatalog};
use clickgate::testing::stripe::StripeServer;

const KEY: &str = "sk_test_51PayoutBenchLocalKey";
const T0: i64 = 1_796_083_200_000;

fn main() {
    // Personal fields (customer references, payout details, stored answers) are sealed under
    // the process's data key, which a server's start loads; the bench holds a fixed one.
    clickgate::privacy::keys::install(clickgate::privacy::DataKey::from_bytes(&[0x5a; 32])).expect("one data key");
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let smoke = std::env::var_os("CLICKGATE_BENCH_QUICK").is_some() || !args.iter().any(|a| a == "--bench");
    let partners: usize =
        std::env::var("CLICKGATE_BENCH_PARTNERS").ok().and_then(|v| v.parse().ok()).unwrap_or(if smoke { 2_000 } else { 100_000 });
    let base = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(base).unwrap();
    let dir = tempfile::tempdir_in(base).unwrap();
    sqlite::migrate(dir.path()).unwrap();
    // The desk loads the data key from the data dir, as `payouts run` does: the same fixed key.
    clickgate::privacy::keys::write_new(&clickgate::privacy::keys::file(dir.path()), &"5a".repeat(32)).unwrap();
    let usd = Currency::parse("USD").unwrap();
    SqliteCatalog::open(dir.path())
        .unwrap()
        .add_program(&NewProgram {
            id: "shop".into(),
            name: "Shop".into(),
            currency: usd,
            allowed_domains: vec!["example.com".into()],
            fallback_url: "https://example.com/".into(),
            blocked_action: Default::default(),
            country_allow: vec![],
            country_deny: vec![],
            attribution: Default::default(),
            commission: Default::default(),
            payout_threshold_minor: 5000,
            payout_schedule: "off".into(),
            partners_create_links: false,
        })
        .unwrap();
    let setup = Instant::now();
    {
        // The partners in one transaction: the catalog's own inserts commit one by one.
        let mut conn = rusqlite::Connection::open(sqlite::path(dir.path())).unwrap();
        let tx = conn.transaction().unwrap();
        let mut st = tx
            .prepare("INSERT INTO partners (slug, name, email, payout_method, stripe_account) VALUES (?1, ?2, ?3, 'stripe', ?4)")
            .unwrap();
        for i in 0..partners {
            st.execute(rusqlite::params![format!("p{i}"), format!("Partner {i}"), format!("p{i}@example.com"), format!("acct_p{i}")])
                .unwrap();
        }
        drop(st);
        tx.commit().unwrap();
    }
    let at = StoreAt::File(dir.path().to_path_buf());
    for chunk in (0..partners).collect::<Vec<_>>().chunks(10_000) {
        PayoutDb::open(&at)
            .unwrap()
            .write(|tx| {
                for &i in chunk {
                    let (id, partner) = (format!("cv_{i}"), format!("p{i}"));
                    let sale = Sale { conversion_id: &id, program: "shop", currency: usd, amount_minor: 60_000, occurred_at_ms: T0 as u64 };
                    let shares = [Share { partner, amount_minor: 60_000 }];
                    lifecycle::accrue(tx, &sale, &shares, &ProgramRules::default(), T0 as u64)?;
                }
                lifecycle::approve_due(tx, (T0 + 400 * 86_400_000) as u64, 1_000_000)?;
                Ok(())
            })
            .unwrap();
    }
    eprintln!("payouts setup: {partners} partners with an approved commission in {:.1} s", setup.elapsed().as_secs_f64());

    let server = StripeServer::start(KEY).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut config = clickgate::config::Payouts::default();
    config.stripe.api_base = server.base();
    let desk = Desk::new(at.clone(), dir.path(), &config, Some(SecretKey::new(KEY).unwrap()), runtime.handle().clone(), None).unwrap();
    let started = Instant::now();
    let report = desk
        .run(&Request { program: None, currency: None, trigger: Trigger::Cli, dry_run: false, by_hand: None }, &|| T0 + 500 * 86_400_000)
        .unwrap();
    let secs = started.elapsed().as_secs_f64();
    println!("payouts run: {partners} partners in {secs:.1} s ({:.0} payouts/s)", partners as f64 / secs);
    assert_eq!(report.paid.count as usize, partners, "{:?}", (report.sent, report.failed));
    assert_eq!(server.transfer_count(), partners, "one transfer per partner");
    let keys: std::collections::HashSet<String> = server.transfers().into_iter().map(|t| t.idempotency_key).collect();
    assert_eq!(keys.len(), partners, "one transfer per key");
    let verified = PayoutDb::open(&at).unwrap().read(|tx| Ok(clickgate::ledger::verify(tx))).unwrap().expect("the ledger verifies");
    assert_eq!(verified.pending_open, 0);
    println!("payouts run: checked: {partners} transfers, one per key; ledger clean ({} transfers)", verified.transfers);
}
