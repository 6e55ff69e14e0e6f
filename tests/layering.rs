//! The module graph of `src/` has no cycle: a top-level module (`actors`, `transports`,
//! `config`, `telemetry`, …) that uses another (`crate::other::…` outside its tests) is
//! above it, and nothing below uses anything above. `defs` and `message` are leaves.
//!
//! Read from the source: a `use crate::x` or a `crate::x::y` path anywhere in a module's
//! files (its `#[cfg(test)] mod tests` left out) is an edge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Top-level module -> the top-level modules it uses.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![];
    rust_files(&src, &mut files);
    let top_of = |p: &Path| -> String {
        let rel = p.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        first.trim_end_matches(".rs").to_string()
    };
    let tops: BTreeSet<String> = files
        .iter()
        .map(|p| top_of(p))
        .filter(|t| t != "lib" && t != "main")
        .collect();
    let path = regex::Regex::new(r"crate::(\w+)").unwrap();
    let grouped = regex::Regex::new(r"crate::\{([^}]*)\}").unwrap();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let top = top_of(file);
        if !tops.contains(&top) {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        let code = match text.find("#[cfg(test)]\nmod tests") {
            Some(i) => &text[..i],
            None => &text,
        };
        let mut used: Vec<String> = path.captures_iter(code).map(|c| c[1].to_string()).collect();
        for c in grouped.captures_iter(code) {
            used.extend(
                c[1].split(',')
                    .filter_map(|s| s.trim().split("::").next().map(str::to_string)),
            );
        }
        let edges = graph.entry(top.clone()).or_default();
        edges.extend(used.into_iter().filter(|u| *u != top && tops.contains(u)));
    }
    graph
}

/// A cycle through the graph, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[i..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut vec![], &mut done))
}

#[test]
fn the_module_graph_has_no_cycle() {
    let graph = graph();
    // The check reads what it should: the engine uses the transports and the config.
    assert!(graph["actors"].contains("transports"), "{graph:?}");
    assert!(graph["actors"].contains("config"), "{graph:?}");
    if let Some(cycle) = find_cycle(&graph) {
        panic!("module cycle: {}", cycle.join(" -> "));
    }
    for leaf in ["defs", "message"] {
        assert!(
            graph.get(leaf).is_none_or(BTreeSet::is_empty),
            "{leaf} uses {:?}",
            graph[leaf]
        );
    }
}

#[test]
fn a_cycle_is_found() {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    assert_eq!(find_cycle(&g), None);
    g.entry("c".into()).or_default().insert("a".into());
    assert_eq!(find_cycle(&g).unwrap(), ["a", "b", "c", "a"]);
}
