//! The bots stage's patterns: our own token tables, and the two fetched lists turned into
//! literals (for the one Aho-Corasick automaton) and regex fragments (for the one regex set).
//!
//! Evidence comes in kinds. `STRONG` bot evidence is specific: a crawler-user-agents pattern, a
//! robot word (`bot`, `crawl`, `spider`), an automation tool; `ADDRESS` is a URL, which is strong
//! wherever it stands. `WEAK` bot evidence is isbot's generic list, which is written for desktop
//! traffic: some of its patterns (`java`, bare product tokens) also describe feature phones and
//! TVs. `BROWSER` names a real browser family or engine, and `DEVICE` a feature-phone, TV,
//! console, proxy or in-app browser, whose agents carry those generic tokens legitimately.
//! `MODEL` and `MSIE` mark where a browser agent's comment names a device or lists add-ons
//! (see `BotCheck::classify_uncached`).

use std::path::Path;

use regex::Regex;
use serde::Deserialize;

use super::tokens::*;
use super::BotsError;

/// A link-preview fetcher: gets the redirect, is never a click.
pub const PREVIEW: u8 = 1;
/// Specific bot evidence.
pub const STRONG: u8 = 2;
/// Generic bot evidence (isbot's list).
pub const WEAK: u8 = 4;
/// A browser engine or family.
pub const BROWSER: u8 = 8;
/// A feature-phone, TV, console, proxy or in-app browser: outweighs weak evidence.
pub const DEVICE: u8 = 16;
/// A URL: strong bot evidence that no comment masks.
pub const ADDRESS: u8 = 32;
/// `Android <version>;`: the device's model follows, up to the comment's end.
pub const MODEL: u8 = 64;
/// `compatible; MSIE`: Internet Explorer's comment, where toolbars and add-ons list themselves.
pub const MSIE: u8 = 128;

/// One literal of the automaton, with the kinds it adds anywhere, at the start and at the end.
/// A crawler-list literal counts only as a whole `word` (at its ends that are letters or digits):
/// the list names products (`Sonic`, `Sogou`), and the automaton ignores case, so without the
/// boundaries `Sonic` is found in `Panasonic` and `PROSONIC`, and `Sogou` in `SogouMSE`.
#[derive(Default, Clone, Copy)]
pub struct Kinds {
    pub any: u8,
    pub start: u8,
    pub end: u8,
    pub word: bool,
}

/// Everything the stage compiles.
#[derive(Default)]
pub struct Tables {
    /// Literals (lower-cased; the automaton ignores ASCII case) and their kinds.
    pub literals: Vec<(String, Kinds)>,
    /// Regex fragments of strong evidence.
    pub strong: Vec<String>,
    /// Regex fragments of weak evidence.
    pub weak: Vec<String>,
    /// Crawler-list entries used and skipped.
    pub crawlers: (usize, usize),
    /// isbot entries used and skipped.
    pub generic: (usize, usize),
}

impl Tables {
    /// Our own tokens, before any list is added.
    pub fn builtin() -> Tables {
        let mut t = Tables::default();
        for (tokens, kind) in [
            (PREVIEW_TOKENS, PREVIEW),
            (STRONG_TOKENS, STRONG),
            (ADDRESS_TOKENS, ADDRESS),
            (BROWSER_TOKENS, BROWSER),
            (DEVICE_TOKENS, DEVICE),
            (MODEL_TOKENS, MODEL),
            (MSIE_TOKENS, MSIE),
        ] {
            for tok in tokens {
                t.add(tok, Anchor::Any, kind);
            }
        }
        for tok in BROWSER_PREFIXES {
            t.add(tok, Anchor::Start, BROWSER);
        }
        // Each fragment in its own group: an inline flag such as `(?i)` would otherwise reach
        // into the alternatives after it.
        t.strong.extend(STRONG_REGEXES.iter().map(|r| format!("(?:{r})")));
        t
    }

    fn add(&mut self, literal: &str, anchor: Anchor, kind: u8) {
        self.add_as(literal, anchor, kind, false);
    }

    fn add_as(&mut self, literal: &str, anchor: Anchor, kind: u8, word: bool) {
        let lower = literal.to_ascii_lowercase();
        let word = word && (lower.starts_with(|c: char| c.is_ascii_alphanumeric()) || lower.ends_with(|c: char| c.is_ascii_alphanumeric()));
        let kinds = match self.literals.iter_mut().find(|(l, k)| *l == lower && k.word == word) {
            Some((_, k)) => k,
            None => {
                self.literals.push((lower, Kinds { word, ..Kinds::default() }));
                &mut self.literals.last_mut().expect("just pushed").1
            }
        };
        match anchor {
            Anchor::Any => kinds.any |= kind,
            Anchor::Start => kinds.start |= kind,
            Anchor::End => kinds.end |= kind,
        }
    }

    /// Adds crawler-user-agents patterns (case-sensitive regexes, nearly all literals) as
    /// strong evidence, a literal as a whole word. An Android build id (`AP3A.240617.008`) is set
    /// aside (and counted as used): it names a firmware that every phone running it sends.
    pub fn add_crawlers(&mut self, patterns: &[String]) {
        let mut used = 0;
        for p in patterns {
            if super::as_literal(p).is_some_and(|l| is_build_id(&l)) {
                used += 1;
                continue;
            }
            if self.add_pattern(p, STRONG, false) {
                used += 1;
            }
        }
        self.crawlers = (used, patterns.len() - used);
    }

    /// Adds isbot's patterns (case-insensitive JavaScript regexes) as weak evidence. Its few
    /// look-arounds, which Rust's regex lacks, are rewritten when they guard a literal
    /// alternation at the pattern's start or end; any other is skipped. A pattern naming a
    /// browser add-on is set aside (and counted as used).
    pub fn add_generic(&mut self, patterns: &[String]) {
        let mut used = 0;
        for p in patterns {
            if GENERIC_BROWSER_ADDONS.contains(&p.as_str()) {
                used += 1;
                continue;
            }
            let ok = match without_lookaround(&js_classes(p)) {
                Some(p) => self.add_pattern(&p, WEAK, true),
                None => false,
            };
            if ok {
                used += 1;
            } else {
                tracing::warn!(pattern = %p, "an isbot pattern does not translate to Rust's regex and is skipped");
            }
        }
        self.generic = (used, patterns.len() - used);
    }

    fn add_pattern(&mut self, p: &str, kind: u8, case_insensitive: bool) -> bool {
        let word = kind == STRONG;
        if let Some(lit) = super::as_literal(p) {
            self.add_as(&lit, Anchor::Any, kind, word);
        } else if let Some(lit) = p.strip_prefix('^').and_then(super::as_literal) {
            self.add_as(&lit, Anchor::Start, kind, word);
        } else if let Some(lit) = p.strip_suffix('$').filter(|s| !s.ends_with('\\')).and_then(super::as_literal) {
            self.add_as(&lit, Anchor::End, kind, word);
        } else {
            let frag = if case_insensitive { format!("(?i:{p})") } else { format!("(?:{p})") };
            if Regex::new(&frag).is_err() {
                return false;
            }
            if kind == STRONG {
                self.strong.push(frag);
            } else {
                self.weak.push(frag);
            }
        }
        true
    }
}

/// `AP3A.240617.008`: four letters or digits, a six-digit date, a three-digit build.
fn is_build_id(lit: &str) -> bool {
    let parts: Vec<&str> = lit.split('.').collect();
    matches!(parts.as_slice(), [a, b, c]
        if a.len() == 4 && a.bytes().all(|x| x.is_ascii_uppercase() || x.is_ascii_digit())
            && b.len() == 6 && b.bytes().all(|x| x.is_ascii_digit())
            && c.len() == 3 && c.bytes().all(|x| x.is_ascii_digit()))
}

#[derive(Clone, Copy)]
enum Anchor {
    Any,
    Start,
    End,
}

#[derive(Deserialize)]
struct CrawlerEntry {
    pattern: String,
}

/// Reads a crawler-user-agents JSON file into patterns that compile in Rust's regex, and the
/// number skipped.
pub fn load_crawlers(path: &Path) -> Result<(Vec<String>, usize), BotsError> {
    let text = read(path)?;
    let entries: Vec<CrawlerEntry> =
        serde_json::from_str(&text).map_err(|source| BotsError::Parse { path: path.display().to_string(), source })?;
    let total = entries.len();
    let ok: Vec<String> = entries.into_iter().map(|e| e.pattern).filter(|p| Regex::new(p).is_ok()).collect();
    let skipped = total - ok.len();
    Ok((ok, skipped))
}

/// Reads isbot's pattern list (a JSON array of strings, written by `config/bots/fetch.sh`).
pub fn load_generic(path: &Path) -> Result<Vec<String>, BotsError> {
    let text = read(path)?;
    serde_json::from_str(&text).map_err(|source| BotsError::Parse { path: path.display().to_string(), source })
}

fn read(path: &Path) -> Result<String, BotsError> {
    std::fs::read_to_string(path).map_err(|source| BotsError::Read { path: path.display().to_string(), source })
}

/// `p` with a leading `(?<!a|b)` and a trailing `(?!a|b)` (literal alternations, optionally
/// wrapped in `(?:…)`) rewritten into plain alternations, or `None` if `p` has any other
/// look-around. The rewrite consumes the neighbouring characters, which is the same for a
/// pattern that is only ever asked whether it matches.
pub fn without_lookaround(p: &str) -> Option<String> {
    let (mut head, mut body, mut tail) = (String::new(), p, String::new());
    if let Some(rest) = body.strip_prefix("(?<!") {
        let end = group_end(rest)?;
        head = not_preceded_by(&literal_alternation(&rest[..end])?);
        body = &rest[end + 1..];
    }
    if let Some(start) = body.rfind("(?!") {
        let rest = &body[start + 3..];
        let end = group_end(rest)?;
        if end + 1 != rest.len() {
            return None;
        }
        tail = not_followed_by(&literal_alternation(&rest[..end])?);
        body = &body[..start];
    }
    if body.contains("(?<") || body.contains("(?=") || body.contains("(?!") {
        return None;
    }
    Some(format!("{head}{body}{tail}"))
}

/// `p` in JavaScript's meaning for Rust's regex: `\w`, `\d`, `\s` and `\b` are ASCII, and a
/// `-` next to a class escape (`[\w\d-.]`) is a plain hyphen (in Rust it is an error).
pub fn js_classes(p: &str) -> String {
    let mut out = String::with_capacity(p.len() + 4);
    let (mut in_class, mut after_class_escape) = (false, false);
    let mut chars = p.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let e = chars.next().unwrap_or('\\');
                // ASCII classes, as in JavaScript: Unicode's `\w` and `\b` multiply the lazy
                // DFA's states, and a random agent then costs tens of microseconds.
                match (e, in_class) {
                    ('w', true) => out.push_str("0-9A-Za-z_"),
                    ('w', false) => out.push_str("[0-9A-Za-z_]"),
                    ('d', true) => out.push_str("0-9"),
                    ('d', false) => out.push_str("[0-9]"),
                    ('s', true) => out.push_str("\\t\\n\\x0B\\f\\r "),
                    ('s', false) => out.push_str("[\\t\\n\\x0B\\f\\r ]"),
                    ('b', false) => out.push_str("(?-u:\\b)"),
                    _ => {
                        out.push('\\');
                        out.push(e);
                    }
                }
                after_class_escape = in_class && matches!(e, 'w' | 'W' | 'd' | 'D' | 's' | 'S');
                continue;
            }
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            '-' if in_class && (after_class_escape || starts_with_class_escape(chars.clone())) => {
                out.push_str("\\-");
                after_class_escape = false;
                continue;
            }
            _ => {}
        }
        after_class_escape = false;
        out.push(c);
    }
    out
}

fn starts_with_class_escape(mut rest: impl Iterator<Item = char>) -> bool {
    rest.next() == Some('\\') && matches!(rest.next(), Some('w' | 'W' | 'd' | 'D' | 's' | 'S'))
}

/// The index of the `)` closing a group whose body starts at `s[0]`.
fn group_end(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '(' => depth += 1,
            ')' if depth == 0 => return Some(i),
            ')' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// `a|b|c` or `(?:a|b|c)` as literals, if every alternative is one.
fn literal_alternation(s: &str) -> Option<Vec<String>> {
    let s = s.strip_prefix("(?:").and_then(|s| s.strip_suffix(')')).unwrap_or(s);
    s.split('|').map(super::as_literal).collect()
}

/// A regex that matches where none of `lits` follows: at the end, or at a first character that
/// starts none of them, or after a proper prefix of one of them that goes no further.
fn not_followed_by(lits: &[String]) -> String {
    let lower: Vec<Vec<char>> = lits.iter().map(|l| l.to_lowercase().chars().collect()).collect();
    format!("(?:{})", branch(&lower, 0, false))
}

/// The mirror of `not_followed_by`, for what precedes.
fn not_preceded_by(lits: &[String]) -> String {
    let rev: Vec<Vec<char>> = lits.iter().map(|l| l.to_lowercase().chars().rev().collect()).collect();
    format!("(?:{})", branch(&rev, 0, true))
}

/// Alternatives for "none of `words` (from character `depth` on) continues here". `reversed`
/// builds leftwards, for look-behinds.
fn branch(words: &[Vec<char>], depth: usize, reversed: bool) -> String {
    let mut firsts: Vec<char> = words.iter().filter_map(|w| w.get(depth).copied()).collect();
    firsts.sort_unstable();
    firsts.dedup();
    let class: String = firsts.iter().map(|c| regex::escape(&c.to_string())).collect();
    let mut alts = vec![if reversed { "^".to_string() } else { "$".to_string() }, format!("[^{class}]")];
    for c in firsts {
        let next: Vec<Vec<char>> = words.iter().filter(|w| w.get(depth) == Some(&c)).cloned().collect();
        // A word that ends here has been seen whole: that branch is excluded.
        if next.iter().any(|w| w.len() == depth + 1) {
            continue;
        }
        let inner = branch(&next, depth + 1, reversed);
        let c = regex::escape(&c.to_string());
        alts.push(if reversed { format!("(?:{inner}){c}") } else { format!("{c}(?:{inner})") });
    }
    alts.join("|")
}
