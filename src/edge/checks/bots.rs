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
//! Some evidence in a browser's agent looks like a bot's and is not, and is set aside: bot and
//! crawler names in the model of an Android device (`Android 7.0; M bot 51)`, `Android 13;
//! Spider 8)`); generic evidence and crawler names in Internet Explorer's comment, where toolbars
//! and add-ons list themselves (`QQDownload 691`, `MSN Optimized`); any bot evidence inside a
//! browser's own name (`SogouMobileBrowser`, `HotJava/`); and a crawler name that is only part of
//! a word (`Sonic` in `Panasonic`). A URL or an e-mail address counts anywhere.
//!
//! The verdict: a link unfurler first, then any specific bot evidence, then generic evidence
//! unless the agent is a feature-phone, TV, console, proxy or in-app browser (whose agents
//! legitimately look like tools: `Nokia6300/2.0 Profile/MIDP-2.0 Configuration/CLDC-1.1`,
//! `CE-HTML/1.0;`); an agent naming no
//! browser engine or family is `non_browser_ua` (isbot's regexes are not run on it: it is
//! flagged either way, and they cost tens of microseconds on a random agent); else a browser. Agents longer than `ua_bytes_max`
//! are not matched at all: no browser sends one. Real traffic repeats a few thousand agents, so
//! each verdict is also cached in a fixed-size, lock-free table keyed by hash.

mod patterns;
mod tokens;

use std::sync::atomic::{AtomicU64, Ordering};

use aho_corasick::AhoCorasick;
use regex::{Regex, RegexBuilder};

use self::patterns::{Kinds, Tables, ADDRESS, BROWSER, DEVICE, MODEL, MSIE, PREVIEW, STRONG, WEAK};
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
        // Spans (start, end) of an Android device's model and of Internet Explorer's comment. Each
        // opens where its marker ends and closes at the next `)`, so a match inside one always
        // comes after the match that opened it: the automaton reports matches by their end.
        let (mut model, mut msie) = (None, None);
        // Bot evidence waits until the browser names that may contain it are all known: a name
        // ends after the evidence inside it (`SogouMobileBrowser`, `HotJava/`).
        let mut held = [(0usize, 0usize, 0u8); HELD_MAX];
        let mut names = [(0usize, 0usize); NAMES_MAX];
        let (mut held_len, mut names_len) = (0, 0);
        let mut seen = 0u8;
        let bytes = ua.as_bytes();
        for m in self.literals.find_overlapping_iter(ua) {
            let k = self.kinds[m.pattern().as_usize()];
            let part_of_word = |at: Option<&u8>| at.is_some_and(u8::is_ascii_alphanumeric);
            if k.word
                && (part_of_word(m.start().checked_sub(1).and_then(|i| bytes.get(i)))
                    || (bytes[m.end() - 1].is_ascii_alphanumeric() && part_of_word(bytes.get(m.end()))))
            {
                continue;
            }
            let mut add = k.any;
            if m.start() == 0 {
                add |= k.start;
            }
            if m.end() == ua.len() {
                add |= k.end;
            }
            if add & MODEL != 0 && model.is_none() {
                model = Some(android_model(ua, m.end()));
            }
            if add & MSIE != 0 && msie.is_none() {
                msie = Some(comment_rest(ua, m.end()));
            }
            if within(model, m.start(), m.end()) {
                add &= !(STRONG | WEAK);
            }
            if within(msie, m.start(), m.end()) {
                add &= !WEAK;
                if k.word {
                    add &= !STRONG;
                }
            }
            if add & (BROWSER | DEVICE) != 0 && names_len < NAMES_MAX {
                names[names_len] = (m.start(), m.end());
                names_len += 1;
            }
            let bot = add & (STRONG | WEAK);
            if bot != 0 && held_len < HELD_MAX {
                held[held_len] = (m.start(), m.end(), bot);
                held_len += 1;
                add &= !bot;
            }
            seen |= add;
        }
        for &(start, end, bot) in &held[..held_len] {
            // Our own browser names outrank isbot's list where both name the same thing (NetSurf).
            let named = names[..names_len].iter().any(|&(s, e)| s <= start && end <= e && (e - s > end - start || bot == WEAK));
            if !named {
                seen |= bot;
            }
        }
        if seen & PREVIEW != 0 {
            return UaClass::LinkPreview;
        }
        if seen & (STRONG | ADDRESS) != 0 {
            return UaClass::Crawler;
        }
        // A robot word in the model is the model's name; an e-mail address or a domain is not.
        if self.strong.is_match(ua)
            && (model.is_none()
                || self.strong.find_iter(ua).any(|m| !within_regex(model, m.start(), m.end()) || m.as_str().contains(['@', '.'])))
        {
            return UaClass::Crawler;
        }
        if seen & DEVICE == 0 && seen & WEAK != 0 {
            return UaClass::Crawler;
        }
        // An agent that names no browser is flagged either way, so isbot's shapes (the costly
        // regex: tens of microseconds on a random agent) run only on agents that claim a browser.
        if seen & (BROWSER | DEVICE) == 0 {
            return UaClass::NonBrowser;
        }
        // Generic evidence in a model, in Internet Explorer's comment or in a browser's name is
        // set aside, as the automaton's is. So is a bare shape that opens the agent when a browser
        // is what it holds: isbot reads `Sleipnir/2.9.9`, `nook browser/1.0` and
        // `Mozilla/4.0 (compatible; Dillo 3.0)` as a tool's lone product token.
        let names = &names[..names_len];
        let weak = seen & DEVICE == 0
            && self.weak.is_match(ua)
            && self.weak.find_iter(ua).any(|m| {
                let (start, end) = (m.start(), m.end());
                let set_aside = within_regex(model, start, end)
                    || within_regex(msie, start, end)
                    || names.iter().any(|&name| within_regex(Some(name), start, end))
                    || (start == 0 && names.iter().any(|&(s, e)| e <= end && names_a_browser(ua, s, e)));
                !set_aside
            });
        if weak {
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

/// Bot evidence held per agent until the browser names are known; more counts at once.
const HELD_MAX: usize = 8;
/// Browser names kept per agent to set evidence inside them aside; a browser's agent names
/// eight to ten (`Mozilla/`, `AppleWebKit`, `KHTML`, `like Gecko`, `Chrome/`, `Safari/`, …).
const NAMES_MAX: usize = 16;

/// Whether the browser name found at `start..end` says which browser the agent is: a word of its
/// own (`elinks` inside `WeLikeLinks` is not), and neither `Mozilla/` (every agent and many tools
/// send it) nor Internet Explorer's token, which a script's bare
/// `Mozilla/4.0 (compatible; MSIE 6.0)` carries too.
fn names_a_browser(ua: &str, start: usize, end: usize) -> bool {
    let name = &ua[start..end];
    (start == 0 || !ua.as_bytes()[start - 1].is_ascii_alphanumeric())
        && !name.eq_ignore_ascii_case("mozilla/")
        && !name.as_bytes().windows(4).any(|w| w.eq_ignore_ascii_case(b"msie"))
}

/// The rest of the comment that `from` is in: up to the next `)`, or the agent's end.
fn comment_rest(ua: &str, from: usize) -> (usize, usize) {
    (from, ua[from..].find(')').map_or(ua.len(), |i| from + i))
}

/// The device model of an Android comment, `from` just after `Android `: the part after the
/// version and an optional locale, up to the next `;` or `)` (`8.0; Pixel 2 Build/OPD3; Bot)`
/// gives `Pixel 2 Build/OPD3`, leaving what follows outside).
fn android_model(ua: &str, from: usize) -> (usize, usize) {
    let part_end = |at: usize| ua[at..].find([';', ')']).map_or(ua.len(), |i| at + i);
    let next = |at: usize| {
        let end = part_end(at);
        if ua.as_bytes().get(end) == Some(&b';') {
            end + 1
        } else {
            ua.len()
        }
    };
    let mut start = next(from);
    let end = part_end(start);
    if is_locale(ua[start..end].trim()) {
        start = next(start);
    }
    (start, part_end(start))
}

/// `en`, `en-us`, `zh_CN`.
fn is_locale(s: &str) -> bool {
    let b = s.as_bytes();
    let letters = |r: &[u8]| r.iter().all(u8::is_ascii_alphabetic);
    match b.len() {
        2 => letters(b),
        5 => letters(&b[..2]) && matches!(b[2], b'-' | b'_') && letters(&b[3..]),
        _ => false,
    }
}

/// Whether `start..end` lies within `span`.
fn within(span: Option<(usize, usize)>, start: usize, end: usize) -> bool {
    span.is_some_and(|(s, e)| start >= s && end <= e)
}

/// `within` for a regex match, which may take one character more on either side: isbot's
/// look-arounds are rewritten to consume the character they look at (`java(?!;)`).
fn within_regex(span: Option<(usize, usize)>, start: usize, end: usize) -> bool {
    span.is_some_and(|(s, e)| start + 1 >= s && end <= e + 1)
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
