//! Every config key the code accepts is documented in `docs/config.md`.
//!
//! The keys come from the code, not from a list kept here: `serde-reflection` traces how
//! `clickgate::config::Config` deserializes, which records the field names of every struct it
//! reaches, nested sections and the demo seed data included. Each leaf key must appear in the
//! document as its dotted path in backticks, such as `events.click_queue_len_max`. Arrays of
//! tables add no segment (`click_id.keys.secret`). A table keyed by the user's own names (a
//! map, such as `demo.programs.commission.partners`) must appear itself; its values' keys are
//! required under `<id>` only when the value type is documented nowhere else.
//!
//! The `CLICKGATE_*` environment variables that the code in `src/` reads must appear in
//! backticks too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_reflection::{ContainerFormat, Format, Registry, Samples, Tracer, TracerConfig};

/// The registry of every container `Config` reaches, and the root's format.
fn trace_config() -> (Format, Registry) {
    let mut tracer = Tracer::new(TracerConfig::default());
    let samples = Samples::new();
    let (root, _) = tracer.trace_type::<clickgate::config::Config>(&samples).expect("Config traces");
    // Enum variants are values, not keys, and the variants of nested enums are not needed to
    // learn the struct fields; so an enum left partly explored is no concern here.
    (root, tracer.registry_unchecked())
}

/// The struct a format names once options, arrays and newtypes are taken off, if any.
fn struct_name<'a>(registry: &'a Registry, mut format: &'a Format) -> Option<&'a str> {
    loop {
        match format {
            Format::Option(inner) | Format::Seq(inner) => format = inner,
            Format::TypeName(name) => match registry.get(name) {
                Some(ContainerFormat::Struct(_)) => return Some(name),
                Some(ContainerFormat::NewTypeStruct(inner)) => format = inner,
                _ => return None,
            },
            _ => return None,
        }
    }
}

/// The value format of a map, once options and newtypes are taken off, if it is one.
fn map_value<'a>(registry: &'a Registry, mut format: &'a Format) -> Option<&'a Format> {
    loop {
        match format {
            Format::Option(inner) => format = inner,
            Format::Map { value, .. } => return Some(value),
            Format::TypeName(name) => match registry.get(name) {
                Some(ContainerFormat::NewTypeStruct(inner)) => format = inner,
                _ => return None,
            },
            _ => return None,
        }
    }
}

/// Walks formats from the root, collecting dotted key paths.
struct Walk<'a> {
    registry: &'a Registry,
    keys: BTreeSet<String>,
    /// Struct types reached through a struct field or an array, never through a map value.
    reached: BTreeSet<&'a str>,
    /// Maps with a struct value: (the map's path, the value's type name).
    maps: Vec<(String, &'a str)>,
}

impl<'a> Walk<'a> {
    fn walk_struct(&mut self, prefix: &str, name: &'a str) {
        let registry = self.registry;
        let Some(ContainerFormat::Struct(fields)) = registry.get(name) else {
            panic!("{name} is not a struct in the traced registry");
        };
        self.reached.insert(name);
        for field in fields {
            let path = if prefix.is_empty() { field.name.clone() } else { format!("{prefix}.{}", field.name) };
            if let Some(inner) = struct_name(registry, &field.value) {
                self.walk_struct(&path, inner);
            } else if let Some(value) = map_value(registry, &field.value) {
                self.keys.insert(path.clone());
                if let Some(inner) = struct_name(registry, value) {
                    self.maps.push((path, inner));
                }
            } else {
                self.keys.insert(path);
            }
        }
    }
}

/// Every key path under the struct `root` of `registry`.
fn keys_of(registry: &Registry, root: &str) -> BTreeSet<String> {
    let mut walk = Walk { registry, keys: BTreeSet::new(), reached: BTreeSet::new(), maps: Vec::new() };
    walk.walk_struct("", root);
    // A map's value type is walked only when no struct field or array reaches it, so its
    // keys are documented once, where the type is documented.
    while let Some((path, inner)) = walk.maps.pop() {
        if !walk.reached.contains(inner) {
            walk.walk_struct(&format!("{path}.<id>"), inner);
        }
    }
    walk.keys
}

/// Every key path of the struct `T`, under `prefix`.
fn keys_under<T: serde::de::DeserializeOwned>(prefix: &str) -> BTreeSet<String> {
    // Strings trace as a currency code, which a program's `currency` must parse as.
    let mut tracer = Tracer::new(TracerConfig::default().default_string_value("USD".into()));
    let (root, _) = tracer.trace_type::<T>(&Samples::new()).expect("the type traces");
    let Format::TypeName(root) = root else { panic!("{prefix} traces as a named struct, got {root:?}") };
    keys_of(&tracer.registry_unchecked(), &root).into_iter().map(|k| format!("{prefix}.{k}")).collect()
}

/// Every key path `Config` accepts. The demo section's entries are plain tables in the config,
/// read at start as the catalog's objects, so their keys are the catalog's.
fn config_keys() -> BTreeSet<String> {
    let (root, registry) = trace_config();
    let Format::TypeName(root) = root else { panic!("Config traces as a named struct, got {root:?}") };
    let mut keys = keys_of(&registry, &root);
    keys.extend(keys_under::<clickgate::catalog::NewProgram>("demo.programs"));
    keys.extend(keys_under::<clickgate::catalog::NewPartner>("demo.partners"));
    keys.extend(keys_under::<clickgate::catalog::NewLink>("demo.links"));
    keys.extend(keys_under::<clickgate::catalog::NewCoupon>("demo.coupons"));
    keys
}

/// The `CLICKGATE_*` variables that non-test code under `dir` reads: every such string literal
/// passed to `var(`, `var_os(` or `from_env(`. Files of unit tests (`tests.rs`, `tests/`) are
/// left out: what they read is test plumbing.
fn env_vars(dir: &Path, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if path.is_dir() {
            if name != "tests" {
                env_vars(&path, out);
            }
        } else if name.ends_with(".rs") && name != "tests.rs" {
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            for call in ["var(\"CLICKGATE_", "var_os(\"CLICKGATE_", "from_env(\"CLICKGATE_"] {
                for (i, _) in text.match_indices(call) {
                    let start = i + call.len() - "CLICKGATE_".len();
                    let var: String =
                        text[start..].chars().take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_').collect();
                    out.insert(var);
                }
            }
        }
    }
}

/// The spans between backticks in a Markdown text.
fn code_spans(markdown: &str) -> BTreeSet<&str> {
    markdown.split('`').skip(1).step_by(2).map(str::trim).collect()
}

fn missing<'a>(wanted: impl IntoIterator<Item = &'a String>, documented: &BTreeSet<&str>) -> Vec<&'a str> {
    wanted.into_iter().map(String::as_str).filter(|k| !documented.contains(k)).collect()
}

#[test]
fn every_config_key_is_documented() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc_path = root.join("docs/config.md");
    let doc = std::fs::read_to_string(&doc_path).unwrap_or_else(|e| panic!("reading {}: {e}", doc_path.display()));
    let documented = code_spans(&doc);

    let keys = config_keys();
    // The tracer must have seen the nested sections, or the check below proves nothing.
    for probe in ["data_dir", "events.click_queue_len_max", "checks.dedup.fp_rate", "demo.programs.attribution.model"] {
        assert!(keys.contains(probe), "the traced keys lack {probe}; tracing missed a section: {keys:#?}");
    }
    let missing_keys = missing(&keys, &documented);
    assert!(
        missing_keys.is_empty(),
        "{} of {} config keys are not in docs/config.md (write each as its dotted path in backticks):\n  {}",
        missing_keys.len(),
        keys.len(),
        missing_keys.join("\n  ")
    );
    eprintln!("{} config keys, each documented in docs/config.md", keys.len());
}

#[test]
fn every_environment_variable_is_documented() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/config.md")).expect("docs/config.md");
    let documented = code_spans(&doc);
    let mut vars = BTreeSet::new();
    env_vars(&root.join("src"), &mut vars);
    assert!(vars.contains("CLICKGATE_ADMIN_KEY"), "the scan of src/ found no CLICKGATE_ADMIN_KEY: {vars:?}");
    let missing_vars = missing(&vars, &documented);
    assert!(
        missing_vars.is_empty(),
        "{} of {} environment variables read in src/ are not in docs/config.md (in backticks):\n  {}",
        missing_vars.len(),
        vars.len(),
        missing_vars.join("\n  ")
    );
}

#[test]
fn the_walk_follows_sections_arrays_and_maps() {
    // A check of the walk itself on a registry built by hand, so a change in the tracer's
    // output shape cannot silently empty the key set.
    let named = |name: &str, value: Format| serde_reflection::Named { name: name.to_string(), value };
    let ty = |name: &str| Format::TypeName(name.to_string());
    let mut registry: Registry = BTreeMap::new();
    registry.insert(
        "Root".into(),
        ContainerFormat::Struct(vec![
            named("top", Format::Str),
            named("section", ty("Section")),
            named("items", Format::Seq(Box::new(ty("Item")))),
            named("by_id", Format::Map { key: Box::new(Format::Str), value: Box::new(ty("Item")) }),
            named("only_in_map", Format::Map { key: Box::new(Format::Str), value: Box::new(ty("Lone")) }),
        ]),
    );
    registry.insert("Section".into(), ContainerFormat::Struct(vec![named("limit_ms", Format::Option(Box::new(Format::U64)))]));
    registry.insert("Item".into(), ContainerFormat::Struct(vec![named("code", Format::Str)]));
    registry.insert("Lone".into(), ContainerFormat::Struct(vec![named("x", Format::I64)]));
    let keys = keys_of(&registry, "Root");
    let got: Vec<&str> = keys.iter().map(String::as_str).collect();
    assert_eq!(got, ["by_id", "items.code", "only_in_map", "only_in_map.<id>.x", "section.limit_ms", "top"]);
}

/// README.md is a user's manual and ARCHITECTURE.md a short map: both stay short, and the
/// README names no commit (history lives in commit messages and benches/RESULTS.md).
#[test]
fn the_readme_and_the_architecture_stay_short() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |name: &str| std::fs::read_to_string(root.join(name)).unwrap_or_else(|e| panic!("reading {name}: {e}"));
    let readme = read("README.md");
    let architecture = read("ARCHITECTURE.md");
    assert!(readme.lines().count() <= 250, "README.md has {} lines; the limit is 250", readme.lines().count());
    assert!(architecture.lines().count() <= 200, "ARCHITECTURE.md has {} lines; the limit is 200", architecture.lines().count());
    let looks_like_a_commit = |w: &&str| {
        (7..=40).contains(&w.len())
            && w.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            && w.bytes().any(|b| b.is_ascii_digit())
            && w.bytes().any(|b| b.is_ascii_alphabetic())
    };
    let hashes: Vec<&str> = readme.split(|c: char| !c.is_ascii_alphanumeric()).filter(looks_like_a_commit).collect();
    assert!(hashes.is_empty(), "README.md names commits: {hashes:?}");
}
