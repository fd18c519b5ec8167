//! The API's request bodies: `POST /v1/conversions` JSON into `ConversionBody` through
//! `api::parse_json` with its timestamp (`parse_time`); an order report's CSV rows with their
//! decimal amounts (`api::import::parse_amount`) and dates; and a link import's CSV through
//! `catalog::import::import_links` into a real (SQLite) catalogue. The first byte picks one:
//! `j` JSON, `o` order report, `l` link import; anything else runs the first two on all of it.
#![no_main]

use std::path::Path;
use std::sync::{Mutex, OnceLock};

use clickgate::api::conversions::{parse_time, ConversionBody};
use clickgate::api::import::parse_amount;
use clickgate::api::parse_json;
use clickgate::catalog::import::{import_links, Mode};
use clickgate::config::Config;
use clickgate::model::Currency;
use clickgate::storage::sqlite::SqliteCatalog;
use libfuzzer_sys::fuzz_target;

const CATALOG: &str = r#"
[[demo.programs]]
id = "shop"
name = "Fuzz Shop"
currency = "EUR"
allowed_domains = ["example.com"]
fallback_url = "https://shop.example.com/"

[[demo.partners]]
id = "p1"
name = "Partner 1"
"#;

/// A catalogue with one program and one partner, in the process's scratch directory.
fn catalog() -> &'static Mutex<SqliteCatalog> {
    static STORE: OnceLock<Mutex<SqliteCatalog>> = OnceLock::new();
    STORE.get_or_init(|| {
        let dir = clickgate_fuzz::scratch_dir("api-json");
        let store = SqliteCatalog::open(&dir).expect("open the scratch catalogue");
        let cfg = Config::parse(CATALOG, Path::new("fuzz-catalog.toml")).expect("the fuzz catalogue config is valid");
        clickgate::app::seed_demo(&store, &cfg.demo).expect("seed the fuzz catalogue");
        Mutex::new(store)
    })
}

fn conversion_json(data: &[u8]) {
    if let Ok(body) = parse_json::<ConversionBody>(data) {
        let _ = parse_time("occurred_at", &body.occurred_at);
        if let Ok(c) = Currency::parse(&body.currency) {
            let _ = parse_amount(&body.amount_minor.to_string(), c.minor_units().into());
        }
    }
}

/// An order report read as `api::import::handle` reads it, each row's cells parsed as there.
fn order_csv(data: &[u8]) {
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(data);
    let Ok(headers) = reader.headers() else { return };
    let headers: Vec<String> = headers.iter().map(|h| h.trim().to_ascii_lowercase()).collect();
    let col = |name: &str| headers.iter().position(|h| h == name);
    for row in reader.records().take(64) {
        let Ok(row) = row else { continue };
        let get = |name: &str| col(name).and_then(|i| row.get(i)).map(str::trim);
        let units = get("currency").and_then(|c| Currency::parse(c).ok()).map_or(2, |c| c.minor_units());
        if let Some(a) = get("amount") {
            let _ = parse_amount(a, units.into());
        }
        if let Some(t) = get("occurred_at") {
            let t = if t.len() == 10 { format!("{t}T00:00:00Z") } else { t.to_string() };
            let _ = parse_time("occurred_at", &t);
        }
    }
}

fn link_csv(data: &[u8]) {
    let store = catalog().lock().expect("the catalogue lock");
    let expiry = |s: &str| s.trim().parse::<i64>().map_err(|e| e.to_string());
    // All or nothing: a file with any rejected row leaves the catalogue as it was.
    let _ = import_links(&*store, data, &expiry, Mode::AllOrNothing, &clickgate::audit::Stamp::new(clickgate::audit::Actor::Cli, 0));
}

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((b'j', rest)) => conversion_json(rest),
        Some((b'o', rest)) => order_csv(rest),
        Some((b'l', rest)) => link_csv(rest),
        _ => {
            conversion_json(data);
            order_csv(data);
        }
    }
});
