//! Classifies user agents, one per line on stdin, with the edge's bots stage, for
//! `loadtest/bots.sh`.
//!
//! ```text
//! cargo run --release --example bots_eval -- [--crawlers PATH] [--generic PATH] [--show CLASS]... < agents.txt
//! ```
//!
//! Prints one line of counts per class (`n=... browser=... crawler=... link_preview=...
//! non_browser=... empty=... ns_per_agent=...`), the last field the mean uncached cost. With
//! `--show crawler` (or another class, repeatable) it first prints every agent of that class,
//! prefixed with the class, for reading misses and false positives on the training sets.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Instant;

use clickgate::config;
use clickgate::edge::checks::bots::{BotCheck, UaClass};

const CLASSES: [(UaClass, &str); 5] = [
    (UaClass::Browser, "browser"),
    (UaClass::Crawler, "crawler"),
    (UaClass::LinkPreview, "link_preview"),
    (UaClass::NonBrowser, "non_browser"),
    (UaClass::Empty, "empty"),
];

fn main() -> anyhow::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/bots");
    let mut cfg = config::Bots {
        crawler_list: Some(root.join("crawler-user-agents.json")),
        generic_list: Some(root.join("isbot-patterns.json")),
        ..config::Bots::default()
    };
    let mut show = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| anyhow::anyhow!("{arg} needs a value"));
        match arg.as_str() {
            "--crawlers" => cfg.crawler_list = Some(value()?.into()),
            "--generic" => cfg.generic_list = Some(value()?.into()),
            "--show" => {
                let name = value()?;
                let class = CLASSES.iter().find(|(_, n)| *n == name).ok_or_else(|| anyhow::anyhow!("unknown class {name}"))?;
                show.push(class.0);
            }
            _ => anyhow::bail!("unknown argument {arg}; see the doc comment of examples/bots_eval.rs"),
        }
    }
    for path in [&cfg.crawler_list, &cfg.generic_list].into_iter().flatten() {
        anyhow::ensure!(path.exists(), "{} is missing: run config/bots/fetch.sh", path.display());
    }
    let bots = BotCheck::build(&cfg)?;
    let agents: Vec<String> = std::io::stdin().lock().lines().collect::<Result<_, _>>()?;
    let mut counts = [0usize; 5];
    let out = std::io::stdout();
    let mut out = out.lock();
    let start = Instant::now();
    for ua in &agents {
        let class = bots.classify_uncached(ua);
        counts[class as usize] += 1;
        if show.contains(&class) {
            let name = CLASSES.iter().find(|(c, _)| *c == class).map_or("?", |c| c.1);
            writeln!(out, "{name}\t{ua}")?;
        }
    }
    let ns = start.elapsed().as_nanos() / agents.len().max(1) as u128;
    let fields: Vec<String> = CLASSES.iter().map(|(c, n)| format!("{n}={}", counts[*c as usize])).collect();
    writeln!(out, "n={} {} ns_per_agent={ns}", agents.len(), fields.join(" "))?;
    Ok(())
}
