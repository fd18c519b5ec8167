//! Stage 4: user agents. Link unfurlers, empty agents, bots, and agents of no browser family.
//!
//! Three sources of evidence, in `patterns`: the published crawler-user-agents list (specific
//! crawlers), isbot's generic list (tool-like shapes of agents), and our own tokens (robot words,
//! automation tools, a URL or an e-mail address; browser engines and families, feature-phone,
//! proxy and in-app browsers). Every literal of all of them goes into one Aho-Corasick DFA that
//! ignores ASCII case; the few real regexes go into two regexes, specific and generic evidence
//! (the second runs only when nothing else decided). One regex of all the lists' patterns
//! outgrows the lazy DFA's cache, and an
//! agent never seen before then costs hundreds of microseconds, which is a denial-of-service
//! lever for anyone who randomises it.
//!
//! The verdict: a link unfurler first, then any specific bot evidence, then generic evidence
//! unless the agent is a feature-phone, proxy or in-app browser (whose agents legitimately look
//! like tools: `Nokia6300/2.0 Profile/MIDP-2.0 Configuration/CLDC-1.1`); an agent naming no
//! browser engine or family is `non_browser_ua` (isbot's regexes are not run on it: it is
//! flagged either way, and they cost tens of microseconds on a random agent); else a browser. Agents longer than `ua_bytes_max`
//! are not matched at all: no browser sends one. Real traffic repeats a few thousand agents, so
//! each verdict is also cached in a fixed-size, lock-free table keyed by hash.

mod patterns;

use std::sync::atomic::{AtomicU64, Ordering};

use aho_corasick::AhoCorasick;
use regex::{Regex, RegexBuilder};

use self::patterns::{Kinds, Tables, BROWSER, PHONE, PREVIEW, STRONG, WEAK};
use super::{Check, Click, Findings, Reason};
use crate::config::{self, Action};

pub use self::patterns::{js_classes, load_crawlers as load_patterns, load_generic, without_lookaround};

/// Why a bot list could not be used.
#[derive(Debug, thiserror::Error)]
pub enum BotsError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path} is not a crawler-user-agents or isbot JSON list: {source}")]
    Parse { path: String, source: serde_json::Error },
    #[error("the combined bot patterns do not compile: {0}")]
    Regex(#[from] regex::Error),
    #[error("the bot literals do not build an automaton: {0}")]
    Literals(#[from] aho_corasick::BuildError),
}

/// Where the patterns came from, for logs and metrics.
#[derive(Debug, Clone)]
pub struct ListStatus {
    /// The crawler list's path, or `fallback` when there is none.
    pub source: String,
    /// Crawler patterns used.
    pub patterns: usize,
    /// Crawler patterns skipped (not valid in Rust's regex).
    pub skipped: usize,
    /// The generic (isbot) list's path, or `builtin` when there is none.
    pub generic_source: String,
    /// Generic patterns used and skipped.
    pub generic_patterns: usize,
    pub generic_skipped: usize,
}

/// How a user agent was classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum UaClass {
    Browser = 0,
    Empty = 1,
    LinkPreview = 2,
    Crawler = 3,
    NonBrowser = 4,
}

/// The bots stage.
pub struct BotCheck {
    literals: AhoCorasick,
    /// Per automaton pattern: the kinds it adds.
    kinds: Box<[Kinds]>,
    /// Specific bot evidence that is not a literal.
    strong: Regex,
    /// Generic bot evidence that is not a literal.
    weak: Regex,
    ua_bytes_max: usize,
    cache: Box<[AtomicU64]>,
    bot_action: Action,
    pub status: ListStatus,
}

/// The literal a pattern stands for, when it is one: no regex syntax beyond escaped
/// punctuation (`Googlebot\/` is the literal `Googlebot/`).
pub fn as_literal(pattern: &str) -> Option<String> {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e) if !e.is_ascii_alphanumeric() => out.push(e),
                _ => return None,
            },
            '.' | '^' | '$' | '*' | '+' | '?' | '(' | ')' | '[' | ']' | '{' | '}' | '|' => return None,
            c => out.push(c),
        }
    }
    (!out.is_empty()).then_some(out)
}

impl BotCheck {
    /// Compiles the lists. A configured list that does not exist yet is left out with a
    /// warning (our own tokens stay); one that exists but is malformed is an error.
    pub fn build(cfg: &config::Bots) -> Result<BotCheck, BotsError> {
        let mut tables = Tables::builtin();
        let mut status = ListStatus {
            source: "fallback".into(),
            patterns: 0,
            skipped: 0,
            generic_source: "builtin".into(),
            generic_patterns: 0,
            generic_skipped: 0,
        };
        match &cfg.crawler_list {
            Some(path) if path.exists() => {
                let (patterns, skipped) = patterns::load_crawlers(path)?;
                tables.add_crawlers(&patterns);
                status.source = path.display().to_string();
                status.patterns = tables.crawlers.0;
                status.skipped = skipped + tables.crawlers.1;
                if status.skipped > 0 {
                    tracing::warn!(skipped = status.skipped, "some crawler patterns do not compile and were skipped");
                }
            }
            Some(path) => {
                tracing::warn!(path = %path.display(), "crawler list is missing, using the built-in tokens only; run config/bots/fetch.sh")
            }
            None => {}
        }
        match &cfg.generic_list {
            Some(path) if path.exists() => {
                tables.add_generic(&patterns::load_generic(path)?);
                status.generic_source = path.display().to_string();
                (status.generic_patterns, status.generic_skipped) = tables.generic;
            }
            Some(path) => {
                tracing::warn!(path = %path.display(), "generic bot list is missing, using the built-in tokens only; run config/bots/fetch.sh")
            }
            None => {}
        }
        let literals = AhoCorasick::builder()
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
            .ascii_case_insensitive(true)
            .build(tables.literals.iter().map(|(l, _)| l))?;
        let kinds = tables.literals.iter().map(|(_, k)| *k).collect();
        // An empty alternation would match everything; `[^\s\S]` matches nothing.
        let join = |parts: &[String]| if parts.is_empty() { r"[^\s\S]".to_string() } else { parts.join("|") };
        let compile = |parts: &[String]| RegexBuilder::new(&join(parts)).size_limit(16 << 20).dfa_size_limit(8 << 20).build();
        let (strong, weak) = (compile(&tables.strong)?, compile(&tables.weak)?);
        let len = cfg.ua_cache_len.max(1).next_power_of_two();
        Ok(BotCheck {
            literals,
            kinds,
            strong,
            weak,
            ua_bytes_max: cfg.ua_bytes_max,
            cache: (0..len).map(|_| AtomicU64::new(0)).collect(),
            bot_action: cfg.bot_action,
            status,
        })
    }

    /// Classifies a user agent without the cache.
    pub fn classify_uncached(&self, ua: &str) -> UaClass {
        let trimmed = ua.trim();
        if trimmed.is_empty() || trimmed == "-" {
            return UaClass::Empty;
        }
        if ua.len() > self.ua_bytes_max {
            return UaClass::NonBrowser;
        }
        let mut seen = 0u8;
        for m in self.literals.find_overlapping_iter(ua) {
            let k = self.kinds[m.pattern().as_usize()];
            seen |= k.any;
            if m.start() == 0 {
                seen |= k.start;
            }
            if m.end() == ua.len() {
                seen |= k.end;
            }
        }
        if seen & PREVIEW != 0 {
            return UaClass::LinkPreview;
        }
        if seen & STRONG != 0 {
            return UaClass::Crawler;
        }
        if self.strong.is_match(ua) {
            return UaClass::Crawler;
        }
        if seen & PHONE == 0 && seen & WEAK != 0 {
            return UaClass::Crawler;
        }
        // An agent that names no browser is flagged either way, so isbot's shapes (the costly
        // regex: tens of microseconds on a random agent) run only on agents that claim a browser.
        if seen & (BROWSER | PHONE) == 0 {
            return UaClass::NonBrowser;
        }
        if seen & PHONE == 0 && self.weak.is_match(ua) {
            UaClass::Crawler
        } else {
            UaClass::Browser
        }
    }

    /// Classifies a user agent, through the cache.
    pub fn classify(&self, ua: &str) -> UaClass {
        let h = xxhash_rust::xxh3::xxh3_64(ua.as_bytes());
        let slot = &self.cache[(h as usize) & (self.cache.len() - 1)];
        let tag = h & !7;
        let v = slot.load(Ordering::Relaxed);
        if v != 0 && v & !7 == tag {
            return class_from((v & 7) as u8 - 1);
        }
        let class = self.classify_uncached(ua);
        slot.store(tag | (class as u64 + 1), Ordering::Relaxed);
        class
    }
}

fn class_from(v: u8) -> UaClass {
    match v {
        1 => UaClass::Empty,
        2 => UaClass::LinkPreview,
        3 => UaClass::Crawler,
        4 => UaClass::NonBrowser,
        _ => UaClass::Browser,
    }
}

impl Check for BotCheck {
    fn run(&self, click: &Click<'_>, findings: &mut Findings) {
        match self.classify(click.ua) {
            UaClass::Browser => {}
            UaClass::Empty => findings.hit(Reason::EmptyUa, Action::Flag),
            UaClass::LinkPreview => {
                findings.hit(Reason::LinkPreview, Action::Flag);
                if findings.reasons.contains(Reason::LinkPreview) {
                    findings.not_a_click = true;
                }
            }
            UaClass::Crawler => findings.hit(Reason::BotUa, self.bot_action),
            UaClass::NonBrowser => findings.hit(Reason::NonBrowserUa, Action::Flag),
        }
    }
}

#[cfg(test)]
mod tests;
