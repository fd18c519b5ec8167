//! The bench's world: programs with real commission rules, partners and coupons in a real
//! store, a year of clicks in a real click log and attribution index, and one conversion per
//! converting click. Everything but the click ids' random part is seeded.

use std::path::Path;
use std::sync::Arc;

use clickgate::api::CoreAttributor;
use clickgate::catalog::{Catalog, SharedCatalog};
use clickgate::catalog::{Catalogue, NewCoupon, NewPartner};
use clickgate::config::{Core, Demo};
use clickgate::conversions::{NewConversion, Origin};
use clickgate::events::ClickEvent;
use clickgate::ingest::Ingest;
use clickgate::model::Channel;
use clickgate::model::{ClickSigner, VisitorId, CLICK_ID_CHARS};
use clickgate::model::{Reason, Reasons, Verdict};
use clickgate::storage::sqlite::SqliteCatalog as Store;

/// 2025-01-01T00:00:00Z: the simulated year of clicks starts here.
const T0_MS: u64 = 1_735_689_600_000;
const DAY_MS: u64 = 86_400_000;
const YEAR_MS: u64 = 365 * DAY_MS;
const PARTNERS: u32 = 200;
const LINKS: u32 = 1000;
/// How long a click id stays valid (the config's default `click_id.max_age_days`).
const CLICK_MAX_AGE_MS: u64 = 30 * DAY_MS;

/// Two programs as an operator would set them up. `shop` pays like the demo: 10 %, 15 % past
/// 1,000.00 of monthly volume, a 0.50 fixed fee, a bonus at 50 conversions and one at 5,000.00
/// of volume, a 5,000.00 monthly cap, and one partner on a flat override. `market` splits
/// credit linearly over the visitor's touches, weekly, with its own cap and a volume bonus.
const PROGRAMS: &str = r#"
[[programs]]
id = "shop"
name = "Bench Shop"
currency = "USD"
allowed_domains = ["example.com"]
fallback_url = "https://shop.example.com/"

[programs.attribution]
model = "last_click"
window_days = 30

[programs.commission.rules]
period = "month"
lock_days = 30
fixed_minor = 50
cap_minor = 500000
tiers = [{ from_minor = 0, percent_bps = 1000 }, { from_minor = 100000, percent_bps = 1500 }]
bonuses = [
  { metric = "conversions", threshold = 50, amount_minor = 2000 },
  { metric = "volume", threshold = 500000, amount_minor = 5000 },
]

[programs.commission.partners.p007]
percent_bps = 500
lock_days = 30

[[programs]]
id = "market"
name = "Bench Market"
currency = "EUR"
allowed_domains = ["example.com"]
fallback_url = "https://market.example.com/"

[programs.attribution]
model = "linear"
window_days = 30

[programs.commission.rules]
period = "week"
lock_days = 14
percent_bps = 800
cap_minor = 100000
bonuses = [{ metric = "volume", threshold = 200000, amount_minor = 1000 }]
"#;

/// The store, the index and the conversions to write.
pub struct World {
    pub ingest: Arc<Ingest>,
    pub catalog: Arc<SharedCatalog>,
    pub signer: Arc<ClickSigner>,
    pub conversions: Vec<NewConversion>,
    pub clicks: usize,
}

impl World {
    /// `conversions` conversions over twice as many clicks, ingested into a click log under `dir`.
    pub fn build(dir: &Path, conversions: usize, seed: u64) -> World {
        let demo: Demo = toml::from_str(PROGRAMS).expect("the bench's programs parse");
        let mut demo = clickgate::app::demo_seed(&demo).expect("the bench's programs are valid");
        for p in 0..PARTNERS {
            demo.partners.push(NewPartner {
                id: partner(p),
                name: format!("Partner {p}"),
                email: format!("p{p}@example.com"),
                ..NewPartner::default()
            });
            for program in ["shop", "market"] {
                demo.coupons.push(NewCoupon { code: coupon(program, p), program: program.into(), partner: partner(p) });
            }
        }
        let store = Store::open(dir).expect("store");
        store.seed(&demo).expect("seed the bench's programs, partners and coupons");
        let catalog = Arc::new(SharedCatalog::new(Catalog::load(&store).expect("catalog")));

        let signer = Arc::new(ClickSigner::new(&[(1, b"bench-click-id-key-0123456789abc".to_vec())]));
        let mut rng = fastrand::Rng::with_seed(seed);
        let n_clicks = 2 * conversions;
        let returning: Vec<VisitorId> = (0..(conversions / 4).max(1)).map(|_| VisitorId(rng.u128(..).to_le_bytes())).collect();
        let (shop, market): (Arc<str>, Arc<str>) = ("shop".into(), "market".into());
        let partners: Vec<Arc<str>> = (0..PARTNERS).map(|p| Arc::from(partner(p))).collect();
        let links: Vec<Arc<str>> = (0..LINKS).map(|l| Arc::from(format!("l{l:04}"))).collect();
        let events: Vec<ClickEvent> = (0..n_clicks)
            .map(|i| {
                let ts_ms = T0_MS + i as u64 * YEAR_MS / n_clicks as u64;
                // Squaring a uniform favours low link numbers: a few partners get most clicks.
                let u = rng.f64();
                let link = ((u * u) * f64::from(LINKS)) as u32;
                let p = link % PARTNERS;
                let (mut reasons, roll) = (Reasons::default(), rng.u32(0..100));
                let verdict = match roll {
                    0..=2 => {
                        reasons.insert(Reason::Duplicate);
                        Verdict::Flagged
                    }
                    3..=4 => {
                        reasons.insert(Reason::BotUa);
                        Verdict::Flagged
                    }
                    _ => Verdict::Valid,
                };
                let (visitor_id, new_visitor) = if rng.u8(0..10) < 6 {
                    let u = rng.f64();
                    (returning[((u * u) * returning.len() as f64) as usize], false)
                } else {
                    (VisitorId(rng.u128(..).to_le_bytes()), true)
                };
                ClickEvent {
                    click_id: signer.mint(ts_ms, link, p),
                    ts_ms,
                    program: if link % 7 == 0 { market.clone() } else { shop.clone() },
                    partner: partners[p as usize].clone(),
                    link: links[link as usize].clone(),
                    channel: Channel::Web,
                    sub_ids: None,
                    verdict,
                    reasons,
                    observed: Reasons::default(),
                    visitor_id,
                    new_visitor,
                    country: Some(*b"DE"),
                    asn: 3320,
                    ua_hash: rng.u64(..),
                    ua: None,
                    client_tag: None,
                    ip: None,
                    ip_hash: None,
                }
            })
            .collect();

        let config = Core { index_clicks_max: n_clicks.max(1024), ..Core::default() };
        let metrics = clickgate::metrics::Metrics::new().core;
        let ingest = Ingest::open(&dir.join("clicks"), &config, metrics, T0_MS + YEAR_MS).expect("click log");
        for batch in events.chunks(8192) {
            ingest.ingest(batch).expect("ingest");
        }

        // Every other click converts, a minute to three days later.
        let mut id_text = [0u8; CLICK_ID_CHARS];
        let conversions = events
            .iter()
            .skip(1)
            .step_by(2)
            .enumerate()
            .map(|(k, click)| {
                let u = rng.f64();
                let coupon_code = (rng.u8(0..10) == 0).then(|| coupon(&click.program, rng.u32(0..PARTNERS)));
                NewConversion {
                    order_id: format!("order-{k:08}"),
                    program: click.program.to_string(),
                    amount_minor: 1000 + (u * u * 19_000.0) as i64,
                    currency: clickgate::model::Currency::parse(if &*click.program == "shop" { "USD" } else { "EUR" }).unwrap(),
                    occurred_at_ms: click.ts_ms + rng.u64(60_000..3 * DAY_MS),
                    click_id: Some(click.click_id.encode(&mut id_text).to_string()),
                    visitor_id: None,
                    coupon_code,
                    customer_ref: rng.bool().then(|| format!("customer-{}", rng.u32(..))),
                    origin: Origin::Api,
                }
            })
            .collect();
        World { ingest: Arc::new(ingest), catalog, signer, conversions, clicks: n_clicks }
    }

    /// The attributor the server builds, over this world's index and catalog.
    pub fn attributor(&self) -> CoreAttributor {
        CoreAttributor {
            ingest: self.ingest.clone(),
            catalog: self.catalog.clone(),
            signer: self.signer.clone(),
            click_max_age_ms: CLICK_MAX_AGE_MS,
        }
    }
}

fn partner(p: u32) -> String {
    format!("p{p:03}")
}

fn coupon(program: &str, p: u32) -> String {
    format!("{}{p:03}", program.to_ascii_uppercase())
}
