//! The app's bridge between the catalog store and its readers: the store opened (the data dir's
//! file, or PostgreSQL in cluster mode) and seeded, and the demo seed read from the config's
//! plain tables.

use std::path::Path;

use anyhow::Context;

use crate::catalog::{CatalogStore, Catalogue, Seed};
use crate::config::Demo;
use crate::storage::CatalogDb;

/// Opens the catalog, migrating its store to this build's schema first (a fresh data dir or
/// database gets every table, so the conversion writer and readers opened after it find them),
/// and seeds it from the config's demo section when empty. In cluster mode (`core.database_url`)
/// that is the PostgreSQL database every node reads; else the data dir's file.
pub fn open_store(config: &crate::config::Config, data_dir: &Path) -> anyhow::Result<CatalogDb> {
    let url = config.core.database_url()?;
    // The data dir holds the click log, the spool and the generated click-id key whichever
    // backend holds the catalog; the file's open makes it, so the database's does too.
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating the data dir {}", data_dir.display()))?;
    let store = CatalogDb::open(url.as_deref(), data_dir).with_context(|| match &url {
        Some(url) => format!("opening the catalog in PostgreSQL at {} (core.database_url)", super::redact_url(url)),
        None => format!("opening the store in {}", data_dir.display()),
    })?;
    // The data key before any write: the demo's partners are sealed as every other.
    crate::storage::data_key::load(&store, data_dir).context("loading the data key (docs/operations.md, Data at rest)")?;
    if seed_demo(&store, &config.demo)? {
        tracing::info!(data_dir = %data_dir.display(), "store was empty; seeded it from the config's demo section");
    }
    Ok(store)
}

/// Reads the config's demo section as catalog objects and validates every program; the error
/// names the entry (`demo.programs[0]: currency: ...`).
pub fn demo_seed(demo: &Demo) -> anyhow::Result<Seed> {
    fn read<T: serde::de::DeserializeOwned>(section: &str, tables: &[toml::Table]) -> anyhow::Result<Vec<T>> {
        tables
            .iter()
            .enumerate()
            .map(|(i, t)| {
                toml::Value::Table(t.clone())
                    .try_into()
                    .map_err(|e: toml::de::Error| anyhow::anyhow!("demo.{section}[{i}]: {}", e.message()))
            })
            .collect()
    }
    let seed = Seed {
        programs: read("programs", &demo.programs)?,
        partners: read("partners", &demo.partners)?,
        links: read("links", &demo.links)?,
        coupons: read("coupons", &demo.coupons)?,
    };
    for (i, p) in seed.programs.iter().enumerate() {
        p.validate().map_err(|why| anyhow::anyhow!("demo.programs[{i}]: {why}"))?;
    }
    Ok(seed)
}

/// Writes the config's demo section into an empty store; returns whether it did. The section
/// is read and validated whether or not the store is empty, so a bad entry fails every start.
pub fn seed_demo(store: &(impl CatalogStore + ?Sized), demo: &Demo) -> anyhow::Result<bool> {
    let seed = demo_seed(demo)?;
    store.seed(&seed).context("seeding the demo programs, partners and links")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    #[test]
    fn a_bad_demo_program_is_named() {
        let toml = "[[demo.programs]]\nid = \"p\"\nname = \"P\"\ncurrency = \"USX\"\nallowed_domains = [\"example.com\"]\nfallback_url = \"https://example.com/\"\n";
        let config = Config::parse(toml, Path::new("t.toml")).unwrap();
        let err = super::demo_seed(&config.demo).unwrap_err().to_string();
        assert_eq!(err, "demo.programs[0]: currency: \"USX\" is not an ISO 4217 code");
        let toml = "[[demo.links]]\ncode = \"x\"\nbogus = 1\n";
        let config = Config::parse(toml, Path::new("t.toml")).unwrap();
        let err = super::demo_seed(&config.demo).unwrap_err().to_string();
        assert!(err.starts_with("demo.links[0]: unknown field `bogus`"), "{err}");
    }
}
