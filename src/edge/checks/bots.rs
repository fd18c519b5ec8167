//! Stage 4: user agents. Link unfurlers, empty and non-browser agents, and crawlers from the
//! published crawler-user-agents list.
//!
//! Nearly all of the list's patterns are plain literals: those go into one Aho-Corasick
//! automaton, and only the few real regexes into one combined regex. One regex of all 1,500
//! patterns outgrows the lazy DFA's cache, and an agent never seen before then costs
//! hundreds of microseconds, which is a denial-of-service lever for anyone who randomises it.
//! Agents longer than `ua_bytes_max` are not matched at all: no browser sends one. Real
//! traffic repeats a few thousand agents, so each verdict is also cached in a fixed-size,
//! lock-free table keyed by hash.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use aho_corasick::AhoCorasick;
use regex::Regex;
use serde::Deserialize;

use super::{Check, Click, Findings, Reason};
use crate::config::{self, Action};

/// Why the crawler list could not be used.
#[derive(Debug, thiserror::Error)]
pub enum BotsError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path} is not a crawler-user-agents JSON list: {source}")]
    Parse { path: String, source: serde_json::Error },
    #[error("the combined crawler pattern does not compile: {0}")]
    Regex(#[from] regex::Error),
    #[error("the crawler literals do not build an automaton: {0}")]
    Literals(#[from] aho_corasick::BuildError),
}

/// Link-preview fetchers: they get the redirect, but are never clicks. Our own list, matched
/// before the crawler list (which also names several of them).
const LINK_PREVIEW: &str = r"(?i)slackbot|slack-imgproxy|twitterbot|facebookexternalhit|facebot|linkedinbot|whatsapp/|telegrambot|discordbot|skypeuripreview|microsoftpreview|redditbot|vkshare|iframely|embedly|cardyb|mastodon/|pinterestbot|google-pagerenderer|snap url preview|viber";

/// Used only when no crawler list is configured or fetched yet.
const FALLBACK_CRAWLERS: &str = r"(?i)bot\b|crawl|spider|slurp|curl/|wget/|python-requests|python-urllib|go-http-client|java/|okhttp|libwww|httpclient|headlesschrome|phantomjs|scrapy|axios/|node-fetch|aiohttp|httpx";

#[derive(Deserialize)]
struct CrawlerEntry {
    pattern: String,
}

/// Where the crawler patterns came from, for logs and metrics.
#[derive(Debug, Clone)]
pub struct ListStatus {
    pub source: String,
    pub patterns: usize,
    pub skipped: usize,
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
    preview: Regex,
    literals: AhoCorasick,
    crawlers: Regex,
    ua_bytes_max: usize,
    cache: Box<[AtomicU64]>,
    bot_action: Action,
    pub status: ListStatus,
}

/// Reads a crawler-user-agents JSON file into patterns that compile in Rust's regex.
pub fn load_patterns(path: &Path) -> Result<(Vec<String>, usize), BotsError> {
    let text = std::fs::read_to_string(path).map_err(|source| BotsError::Read { path: path.display().to_string(), source })?;
    let entries: Vec<CrawlerEntry> =
        serde_json::from_str(&text).map_err(|source| BotsError::Parse { path: path.display().to_string(), source })?;
    let total = entries.len();
    let ok: Vec<String> = entries.into_iter().map(|e| e.pattern).filter(|p| Regex::new(p).is_ok()).collect();
    let skipped = total - ok.len();
    Ok((ok, skipped))
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
    /// Compiles the lists. A configured list that does not exist yet falls back to generic
    /// patterns with a warning; one that exists but is malformed is an error.
    pub fn build(cfg: &config::Bots) -> Result<BotCheck, BotsError> {
        let (literals, crawlers, status) = match &cfg.crawler_list {
            Some(path) if path.exists() => {
                let (patterns, skipped) = load_patterns(path)?;
                if skipped > 0 {
                    tracing::warn!(skipped, "some crawler patterns do not compile and were skipped");
                }
                let (literal, regexes): (Vec<_>, Vec<_>) = patterns.iter().partition(|p| as_literal(p).is_some());
                let literal: Vec<String> = literal.iter().filter_map(|p| as_literal(p)).collect();
                // An empty alternation would match everything; `[^\s\S]` matches nothing.
                let combined = if regexes.is_empty() {
                    r"[^\s\S]".to_string()
                } else {
                    regexes.iter().map(|p| format!("(?:{p})")).collect::<Vec<_>>().join("|")
                };
                let re = regex::RegexBuilder::new(&combined).size_limit(16 << 20).dfa_size_limit(8 << 20).build()?;
                (
                    AhoCorasick::builder().kind(Some(aho_corasick::AhoCorasickKind::DFA)).build(&literal)?,
                    re,
                    ListStatus { source: path.display().to_string(), patterns: patterns.len(), skipped },
                )
            }
            other => {
                if let Some(path) = other {
                    tracing::warn!(path = %path.display(), "crawler list is missing, using the generic fallback patterns; run config/bots/fetch.sh");
                }
                (
                    AhoCorasick::new::<_, &str>([])?,
                    Regex::new(FALLBACK_CRAWLERS)?,
                    ListStatus { source: "fallback".into(), patterns: 1, skipped: 0 },
                )
            }
        };
        let len = cfg.ua_cache_len.max(1).next_power_of_two();
        Ok(BotCheck {
            preview: Regex::new(LINK_PREVIEW)?,
            literals,
            crawlers,
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
            UaClass::Empty
        } else if ua.len() > self.ua_bytes_max {
            UaClass::NonBrowser
        } else if self.preview.is_match(ua) {
            UaClass::LinkPreview
        } else if self.literals.is_match(ua) || self.crawlers.is_match(ua) {
            UaClass::Crawler
        } else if !(ua.starts_with("Mozilla/") || ua.starts_with("Opera/")) {
            UaClass::NonBrowser
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
