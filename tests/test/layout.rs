//! Issue 17, "a layout that shows the architecture": the rules of `docs/architecture.md`, checked
//! on the source tree so that they stay true. No database needed.
//!
//! - every file in `src/` opens with a `//!` header and has at most 900 lines;
//! - the top-level folders form layers: a folder uses only the folders below it (the order of
//!   [`LAYERS`]), so there is no import circle between them;
//! - no import circle between the modules inside a folder either.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, bottom first: each may use the ones before it, never one after it.
const LAYERS: &[&[&str]] = &[
    &["error", "failpoint", "output"],
    &["db"],
    &["state"],
    &["pacing"],
    &["rewrite"],
    &["dryrun", "demo"],
    &["commands"],
];

const MAX_LINES: usize = 900;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("reading src/") {
        let p = e.expect("a directory entry").path();
        if p.is_dir() {
            out.extend(files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// `src/rewrite/swap/ddl.rs` -> ["rewrite", "swap", "ddl"]; `mod.rs` names its folder.
fn module_of(path: &Path) -> Vec<String> {
    let rel = path.strip_prefix(src()).expect("under src/");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The code of a file without its unit tests (they may use anything).
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("reading a source file");
    match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// The `crate::a::b::...` paths a file uses, including those inside `use crate::{...}` groups.
fn crate_paths(code: &str) -> Vec<Vec<String>> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        if i > 0 && code[..i].ends_with(|c: char| ident(c) || c == ':') {
            continue;
        }
        let rest = &code[i + "crate::".len()..];
        let mut path = Vec::new();
        let mut r = rest;
        loop {
            let end = r.find(|c: char| !ident(c)).unwrap_or(r.len());
            if end == 0 {
                break;
            }
            path.push(r[..end].to_string());
            r = &r[end..];
            if let Some(next) = r.strip_prefix("::") {
                if let Some(group) = next.strip_prefix('{') {
                    // use crate::a::{b, c::d}: one path per item.
                    let close = group.find('}').unwrap_or(group.len());
                    for item in group[..close].split(',') {
                        let mut p = path.clone();
                        p.extend(
                            item.trim()
                                .split("::")
                                .map(|s| s.split_whitespace().next().unwrap_or("").to_string())
                                .filter(|s| !s.is_empty()),
                        );
                        out.push(p);
                    }
                    path.clear();
                    break;
                }
                r = next;
            } else {
                break;
            }
        }
        if !path.is_empty() {
            out.push(path);
        }
    }
    out
}

fn layer(folder: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&folder))
}

#[test]
fn every_file_has_a_header_and_at_most_900_lines() {
    let mut problems = Vec::new();
    for f in files(&src()) {
        let text = std::fs::read_to_string(&f).expect("reading a source file");
        let lines = text.lines().count();
        if lines > MAX_LINES {
            problems.push(format!("{}: {lines} lines", f.display()));
        }
        if !text.starts_with("//!") {
            problems.push(format!("{}: no //! header", f.display()));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn folders_are_layers_without_a_circle() {
    let mut problems = BTreeSet::new();
    for f in files(&src()) {
        let m = module_of(&f);
        let from = m[0].as_str();
        if from == "main" || from == "lib" {
            continue;
        }
        let Some(from_layer) = layer(from) else {
            problems.insert(format!("src/{from} is in no layer of docs/architecture.md"));
            continue;
        };
        for p in crate_paths(&code(&f)) {
            let to = p[0].as_str();
            if to == from {
                continue;
            }
            match layer(to) {
                Some(l) if l < from_layer => {}
                Some(_) => {
                    problems.insert(format!(
                        "{} uses crate::{} (a layer above or beside it)",
                        f.display(),
                        p.join("::")
                    ));
                }
                None => {
                    problems.insert(format!("{} uses crate::{to}, in no layer", f.display()));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn no_import_circle_between_modules() {
    let all: Vec<(Vec<String>, PathBuf)> = files(&src())
        .into_iter()
        .map(|f| (module_of(&f), f))
        .collect();
    let known: BTreeSet<Vec<String>> = all.iter().map(|(m, _)| m.clone()).collect();
    // The longest known module a path names.
    let resolve = |p: &[String]| -> Option<Vec<String>> {
        (1..=p.len())
            .rev()
            .map(|k| p[..k].to_vec())
            .find(|c| known.contains(c))
    };
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (m, f) in &all {
        let c = code(f);
        let mut paths = crate_paths(&c);
        // super::x from a file module means its parent's x (from mod.rs: its own child).
        let parent: Vec<String> = if f.ends_with("mod.rs") {
            m.clone()
        } else {
            m[..m.len().saturating_sub(1)].to_vec()
        };
        for (i, _) in c.match_indices("super::") {
            if c[..i].ends_with("super::") {
                continue;
            }
            let rest = &c[i + "super::".len()..];
            let end = rest
                .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
                .unwrap_or(rest.len());
            let mut p = parent.clone();
            p.push(rest[..end].to_string());
            paths.push(p);
        }
        for p in paths {
            if let Some(to) = resolve(&p) {
                // A module may use its own children and its parents' items freely.
                if &to != m && !to.starts_with(m) && !m.starts_with(&to) {
                    edges.entry(m.clone()).or_default().insert(to);
                }
            }
        }
    }
    // Depth-first search for a back edge.
    fn visit(
        n: &Vec<String>,
        edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        state: &mut BTreeMap<Vec<String>, u8>,
        stack: &mut Vec<Vec<String>>,
    ) -> Option<Vec<String>> {
        state.insert(n.clone(), 1);
        stack.push(n.clone());
        for w in edges.get(n).into_iter().flatten() {
            match state.get(w).copied().unwrap_or(0) {
                1 => {
                    let i = stack.iter().position(|s| s == w).unwrap_or(0);
                    let mut cycle: Vec<String> = stack[i..].iter().map(|s| s.join("::")).collect();
                    cycle.push(w.join("::"));
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(w, edges, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.clone(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in &known {
        if state.get(n).copied().unwrap_or(0) == 0 {
            let cycle = visit(n, &edges, &mut state, &mut Vec::new());
            assert!(
                cycle.is_none(),
                "import circle: {}",
                cycle.unwrap_or_default().join(" -> ")
            );
        }
    }
}
