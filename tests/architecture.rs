//! The architecture invariants of ARCHITECTURE.md, checked on the source: which top-level
//! module may import which, and that their imports form no circle.
//!
//! The scanner reads `src/` as text. It strips comments, strings and test code (`tests.rs`,
//! files under a `tests/` directory and `#[cfg(test)]` blocks), then reads every `crate::`,
//! `super::` and `self::` path, expanding `use` trees, and maps each to the top-level module it
//! names. `cargo test --test architecture -- --nocapture` prints the module graph.
//!
//! The rules: `model` and `config` import nothing of ours; the edge imports only the model,
//! the config, events and metrics; the domain (access, attribution, audit, catalog, click_log, commission,
//! conversions, index, ingest, ledger, lifecycle, payouts, webhooks) imports no storage, edge, API or
//! app; only `storage` names a SQL crate; there is no circle among the top-level modules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level module → the top-level modules it imports.
type Graph = BTreeMap<String, BTreeSet<String>>;

/// The modules that make up the domain: types, rules and their stores' traits.
const DOMAIN: &[&str] = &[
    "access",
    "attribution",
    "audit",
    "catalog",
    "click_log",
    "commission",
    "conversions",
    "fraud",
    "index",
    "ingest",
    "ledger",
    "lifecycle",
    "payouts",
    "privacy",
    "webhooks",
];

/// The crates that speak SQL: only `storage` (and `testing`, the tests' PostgreSQL schemas)
/// name them.
const SQL_CRATES: &[&str] = &["rusqlite", "postgres"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "tests") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") && path.file_name().is_some_and(|n| n != "tests.rs") {
            out.push(path);
        }
    }
}

/// The module path of a file: `src/a/b.rs` and `src/a/b/mod.rs` are `["a", "b"]`.
fn module_of(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src()).unwrap().with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|l| l == "mod" || l == "lib" || l == "main") {
        parts.pop();
    }
    parts
}

/// The text with comments, string and char literals blanked out.
fn strip(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0;
                while i < b.len() {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                out.push(' ');
            }
            b'r' if (b.get(i + 1) == Some(&b'"') || b.get(i + 1) == Some(&b'#'))
                && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')) =>
            {
                // A raw string: r"..." or r#"..."#.
                let mut j = i + 1;
                let mut hashes = 0;
                while b.get(j) == Some(&b'#') {
                    hashes += 1;
                    j += 1;
                }
                if b.get(j) != Some(&b'"') {
                    out.push('r');
                    i += 1;
                    continue;
                }
                j += 1;
                loop {
                    if j >= b.len() {
                        break;
                    }
                    if b[j] == b'"' && b[j + 1..].iter().take(hashes).filter(|&&c| c == b'#').count() == hashes {
                        j += 1 + hashes;
                        break;
                    }
                    j += 1;
                }
                out.push_str("\"\"");
                i = j;
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str("\"\"");
            }
            b'\'' => {
                // A char literal ('a', '\n', '\'') or a lifetime ('a): only a literal is skipped.
                let lit = if b.get(i + 1) == Some(&b'\\') {
                    b[i + 2..].iter().position(|&c| c == b'\'').map(|p| i + 2 + p + 1)
                } else if b.get(i + 2) == Some(&b'\'') {
                    Some(i + 3)
                } else {
                    std::str::from_utf8(&b[i + 1..]).ok().and_then(|s| s.chars().next()).and_then(|c| {
                        let after = i + 1 + c.len_utf8();
                        (b.get(after) == Some(&b'\'')).then_some(after + 1)
                    })
                };
                match lit {
                    Some(end) => {
                        out.push_str("' '");
                        i = end;
                    }
                    None => {
                        out.push('\'');
                        i += 1;
                    }
                }
            }
            _ => {
                let len = text[i..].chars().next().unwrap().len_utf8();
                out.push_str(&text[i..i + len]);
                i += len;
            }
        }
    }
    out
}

/// The code with `#[cfg(test)]` items removed (a `mod` block, or the next item up to its `;`).
fn without_tests(code: &str) -> String {
    let mut out = String::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let brace = after.find('{');
        let semi = after.find(';');
        match (brace, semi) {
            (Some(open), semi) if semi.is_none_or(|s| open < s) => {
                let mut depth = 0;
                let mut end = after.len();
                for (k, c) in after[open..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = open + k + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                rest = &after[end..];
            }
            (_, Some(s)) => rest = &after[s + 1..],
            _ => rest = "",
        }
    }
    out.push_str(rest);
    out
}

/// Every path a `use` tree names, with its braces expanded.
fn expand(tree: &str) -> Vec<String> {
    let tree: String = tree.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(open) = tree.find('{') else { return vec![tree] };
    let close = tree.rfind('}').unwrap_or(tree.len());
    let (head, body) = (&tree[..open], &tree[open + 1..close]);
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (k, c) in body.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&body[start..k]);
                start = k + 1;
            }
            _ => {}
        }
    }
    parts.push(&body[start..]);
    parts.into_iter().filter(|p| !p.is_empty()).flat_map(|p| expand(&format!("{head}{p}"))).collect()
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every `crate::`, `super::` and `self::` path in `code`, `use` trees expanded.
fn paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("use ") {
        let before_ok = at == 0 || !is_ident(rest[..at].chars().last().unwrap());
        let after = &rest[at + 4..];
        if before_ok {
            if let Some(end) = after.find(';') {
                out.extend(expand(&after[..end]));
            }
        }
        rest = after;
    }
    for start in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(k) = code[from..].find(start) {
            let at = from + k;
            from = at + start.len();
            if at > 0 && code[..at].chars().last().is_some_and(|c| is_ident(c) || c == ':') {
                continue;
            }
            let end = code[at..].find(|c: char| !(is_ident(c) || c == ':')).map_or(code.len(), |e| at + e);
            out.push(code[at..end].to_string());
        }
    }
    out
}

/// The top-level module a `crate::`, `super::` or `self::` path names from inside `module`.
fn resolve(module: &[String], path: &str) -> Option<String> {
    let segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let abs: Vec<String> = match *segs.first()? {
        "crate" => segs[1..].iter().map(|s| s.to_string()).collect(),
        "self" => module.iter().cloned().chain(segs[1..].iter().map(|s| s.to_string())).collect(),
        "super" => {
            let ups = segs.iter().take_while(|s| **s == "super").count();
            let base = &module[..module.len().saturating_sub(ups)];
            base.iter().cloned().chain(segs[ups..].iter().map(|s| s.to_string())).collect()
        }
        _ => return None,
    };
    abs.into_iter().next().filter(|m| !m.is_empty() && m != "*")
}

fn src_module_exists(name: &str) -> bool {
    src().join(format!("{name}.rs")).exists() || src().join(name).join("mod.rs").exists()
}

fn graph() -> Graph {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut graph = Graph::new();
    for file in files {
        let module = module_of(&file);
        let Some(top) = module.first().cloned() else { continue };
        let code = without_tests(&strip(&std::fs::read_to_string(&file).unwrap()));
        let deps = graph.entry(top.clone()).or_default();
        for p in paths(&code) {
            if let Some(t) = resolve(&module, &p).filter(|t| src_module_exists(t)) {
                if t != top {
                    deps.insert(t);
                }
            }
        }
    }
    graph
}

/// The strongly connected components of more than one module, each sorted.
fn cycles(graph: &Graph) -> BTreeSet<Vec<String>> {
    // Two modules share a circle when each reaches the other.
    let reach = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.to_string()];
        while let Some(m) = stack.pop() {
            for d in graph.get(&m).into_iter().flatten() {
                if seen.insert(d.clone()) {
                    stack.push(d.clone());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&String, BTreeSet<String>> = graph.keys().map(|m| (m, reach(m))).collect();
    let mut out = BTreeSet::new();
    for (m, r) in &reaches {
        let comp: Vec<String> = graph.keys().filter(|o| *o == *m || (r.contains(*o) && reaches[o].contains(*m))).cloned().collect();
        if comp.len() > 1 {
            out.insert(comp);
        }
    }
    out
}

fn imports(graph: &Graph, module: &str) -> BTreeSet<String> {
    graph.get(module).cloned().unwrap_or_default()
}

/// Fails with every import of `module` outside `allowed`.
fn only(graph: &Graph, module: &str, allowed: &[&str], why: &str) {
    let extra: Vec<String> = imports(graph, module).into_iter().filter(|d| !allowed.contains(&d.as_str())).collect();
    assert!(extra.is_empty(), "{module} imports {extra:?}, but {why}");
}

#[test]
fn prints_the_module_graph() {
    let graph = graph();
    for (m, deps) in &graph {
        println!("{m} -> {}", deps.iter().cloned().collect::<Vec<_>>().join(" "));
    }
    assert!(graph.len() >= 15, "the scanner found only {} modules in src/", graph.len());
    // The scanner must see imports at all: the edge reads its config.
    assert!(imports(&graph, "edge").contains("config"), "the scanner missed edge's config import");
}

#[test]
fn the_vocabulary_and_the_config_are_leaves() {
    let graph = graph();
    only(&graph, "model", &[], "model is the shared vocabulary and imports nothing of ours");
    only(&graph, "config", &[], "config is plain data and imports nothing of ours");
}

#[test]
fn the_edge_depends_only_on_the_vocabulary_config_events_and_metrics() {
    let graph = graph();
    only(&graph, "edge", &["model", "config", "events", "metrics"], "the edge never touches the core, a store or the API");
    only(&graph, "events", &["model"], "click events are vocabulary on the wire");
    only(&graph, "metrics", &["model", "events"], "metrics only name closed label sets");
}

#[test]
fn the_domain_never_imports_the_edge_the_api_or_the_app() {
    let graph = graph();
    for m in DOMAIN {
        let bad: Vec<String> = imports(&graph, m)
            .into_iter()
            .filter(|d| ["edge", "api", "app", "cli", "admin", "cluster", "storage"].contains(&d.as_str()))
            .collect();
        assert!(bad.is_empty(), "domain module {m} imports {bad:?}");
    }
}

#[test]
fn no_circles() {
    let found = cycles(&graph());
    assert!(found.is_empty(), "module circles: {found:?}");
}

#[test]
fn only_storage_holds_sql() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut bad = Vec::new();
    for file in files {
        let module = module_of(&file);
        if module.first().is_some_and(|m| m == "storage" || m == "testing") {
            continue;
        }
        let code = without_tests(&strip(&std::fs::read_to_string(&file).unwrap()));
        for krate in SQL_CRATES {
            if code.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).any(|w| w == *krate) {
                bad.push(format!("{} names {krate}", file.strip_prefix(src()).unwrap().display()));
            }
        }
    }
    assert!(bad.is_empty(), "SQL outside storage: {bad:?}");
}

#[test]
fn the_scanner_reads_paths_as_rustc_does() {
    let code =
        strip("use crate::{a::{b, c}, d};\n// use crate::comment;\nlet s = \"crate::string\"; let c = '\"'; x = super::super::e::f();");
    let module = vec!["m".to_string(), "n".to_string()];
    let targets: BTreeSet<String> = paths(&code).iter().filter_map(|p| resolve(&module, p)).collect();
    assert_eq!(targets, ["a", "d", "e"].iter().map(|s| s.to_string()).collect());
    let code = without_tests("fn a() {}\n#[cfg(test)]\nmod tests { use crate::x; fn f() { {} } }\nuse crate::y;");
    assert!(!code.contains("crate::x") && code.contains("crate::y"), "{code}");
    let mut g = Graph::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("a".into());
    g.entry("c".into()).or_default().insert("a".into());
    assert_eq!(cycles(&g), [vec!["a".to_string(), "b".to_string()]].into_iter().collect());
}
