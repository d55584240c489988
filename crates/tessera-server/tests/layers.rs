//! The layering of ARCHITECTURE.md, checked on the source: each file may name only modules of
//! its own layer or below, and the adapters (`http/`, the binary's `src/`) never name `store`.
//!
//! Layers, top to bottom: adapters (`http/`, `src/`, and the wiring in `lib.rs`) → services
//! (`authority`, `admin`) → domain (`registry`, `keys::lifecycle`, `secrets::verifier`,
//! `revocations`, `audit`) → storage (`store`) → model (`oauth`, the rest of `keys`, `secrets`'
//! types, `clock`, `config`, `random`, `metrics`' names and recorder): the plain types and pure
//! rules every layer shares.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

const MODEL: u8 = 0;
const STORAGE: u8 = 1;
const DOMAIN: u8 = 2;
const SERVICE: u8 = 3;
const ADAPTER: u8 = 4;

fn layer_name(rank: u8) -> &'static str {
    ["model", "storage", "domain", "service", "adapter"][usize::from(rank)]
}

/// The layer of a module named by a path inside the server crate (`keys::lifecycle`, `store`),
/// or of a crate-root item (`App`, `run`): the root's items are the wiring, an adapter.
fn module_layer(first: &str, second: Option<&str>) -> u8 {
    match (first, second) {
        ("http", _) => ADAPTER,
        ("authority" | "admin", _) => SERVICE,
        ("keys", Some("lifecycle")) | ("secrets", Some("verifier")) => DOMAIN,
        ("registry" | "revocations" | "replay" | "quota" | "audit", _) => DOMAIN,
        ("store", _) => STORAGE,
        ("oauth" | "keys" | "secrets" | "clock" | "config" | "random" | "metrics", _) => MODEL,
        _ => ADAPTER,
    }
}

/// The layer of a source file, by its path under the server crate's `src/`.
fn file_layer(rel: &Path) -> u8 {
    let parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    let first = parts[0].as_str();
    let second = parts.get(1).map(String::as_str);
    if first == "lib" {
        return ADAPTER;
    }
    // `secrets/mod.rs` holds the model types; `secrets/verifier.rs` the domain service.
    module_layer(first, second.filter(|s| *s != "mod"))
}

/// Every `prefix::a::b` path named in `source`, as its first two segments; `use prefix::{a, b::c}`
/// groups are expanded.
fn named_paths(source: &str, prefix: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let needle = format!("{prefix}::");
    let mut rest = source;
    while let Some(at) = rest.find(&needle) {
        // A whole path only: `tessera_server::x`, not `other_tessera_server::x`.
        let before = rest[..at].chars().next_back();
        rest = &rest[at + needle.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let end = group
                .char_indices()
                .find(|&(_, c)| {
                    match c {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map_or(group.len(), |(i, _)| i);
            let mut depth = 0;
            let mut item = String::new();
            for c in group[..end].chars().chain(std::iter::once(',')) {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.extend(expand(item.trim()));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
        } else {
            let path: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            out.push(split(&path));
        }
    }
    out.retain(|(first, _)| !first.is_empty() && first != "self");
    out
}

/// `a::b::c` as `(a, b)`; `a::{b, c::d}` as `(a, b)` and `(a, c)`.
fn expand(item: &str) -> Vec<(String, Option<String>)> {
    match item.split_once("::{") {
        Some((first, inner)) => inner
            .trim_end_matches('}')
            .split(',')
            .map(|i| (first.trim().to_owned(), Some(split(i.trim()).0)))
            .collect(),
        None => vec![split(item)],
    }
}

fn split(path: &str) -> (String, Option<String>) {
    let mut segs = path
        .split("::")
        .map(|s| s.trim_matches(|c: char| !c.is_alphanumeric() && c != '_'));
    let first = segs.next().unwrap_or_default().to_owned();
    let second = segs.next().filter(|s| !s.is_empty()).map(str::to_owned);
    (first, second)
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// Everything outside `#[cfg(test)]` modules: tests may reach any layer to set up a case.
fn without_tests(source: &str) -> &str {
    source.find("#[cfg(test)]").map_or(source, |i| &source[..i])
}

fn violations() -> Vec<String> {
    let crate_src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    for file in rust_files(&crate_src) {
        let rel = file.strip_prefix(&crate_src).unwrap();
        let own = file_layer(rel);
        let source = std::fs::read_to_string(&file).unwrap();
        for (first, second) in named_paths(without_tests(&source), "crate") {
            let target = module_layer(&first, second.as_deref());
            let same_module = rel.iter().next().is_some_and(|m| {
                m.to_string_lossy().trim_end_matches(".rs") == first && target == own
            });
            if target > own && !same_module {
                found.push(format!(
                    "{} ({}) names crate::{first}{} ({})",
                    rel.display(),
                    layer_name(own),
                    second.map(|s| format!("::{s}")).unwrap_or_default(),
                    layer_name(target)
                ));
            }
            if own == ADAPTER && first == "store" && rel.starts_with("http") {
                found.push(format!("{} (http) names crate::store", rel.display()));
            }
        }
    }
    let bin_src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../src");
    for file in rust_files(&bin_src) {
        let source = std::fs::read_to_string(&file).unwrap();
        for (first, _) in named_paths(&source, "tessera_server") {
            if first == "store" {
                found.push(format!(
                    "src/{} (the binary) names tessera_server::store",
                    file.strip_prefix(&bin_src).unwrap().display()
                ));
            }
        }
    }
    found
}

#[test]
fn no_layer_names_a_higher_one_and_adapters_never_name_the_store() {
    let found = violations();
    assert!(found.is_empty(), "layering broken:\n{}", found.join("\n"));
}

#[test]
fn the_checker_sees_groups_nested_paths_and_climbs() {
    let src = "use crate::{admin::Admin, keys::{self, lifecycle}, store};\nlet x = crate::http::router();\nuse other_crate::store;";
    let paths = named_paths(src, "crate");
    assert_eq!(
        paths,
        vec![
            ("admin".into(), Some("Admin".into())),
            ("keys".into(), Some("self".into())),
            ("keys".into(), Some("lifecycle".into())),
            ("store".into(), None),
            ("http".into(), Some("router".into())),
        ]
    );
    // A climb is seen: a model file naming the admin service, storage naming the registry.
    assert!(module_layer("admin", None) > file_layer(Path::new("oauth/grant.rs")));
    assert!(module_layer("registry", None) > file_layer(Path::new("store/sql.rs")));
    assert_eq!(file_layer(Path::new("keys/lifecycle.rs")), DOMAIN);
    assert_eq!(file_layer(Path::new("keys/ring.rs")), MODEL);
    assert_eq!(file_layer(Path::new("secrets/mod.rs")), MODEL);
    assert_eq!(
        named_paths("use tessera_server::store::Store;", "tessera_server"),
        vec![("store".into(), Some("Store".into()))]
    );
}
