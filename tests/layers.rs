//! The crates' modules form layers: no two modules of `activations`, and none of
//! `models::kernels`, import each other, directly or around a circle. A formula's file sits
//! above the kernel layer that lowers it; the kernel layer never names an activation.
//!
//! Each `.rs` file is a module (`mod.rs` and `lib.rs` stand for their folder). A module imports
//! another when it names it or an item in it: a `crate::` or `super::` path (use-groups
//! included), or a declared child used by its relative name. The crate root is the façade (it
//! declares every module and holds the registry's enums), so paths into it are not edges.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module path (`fused::kernels`) → source text, for every file under `src`.
fn modules(src: &Path) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src).unwrap().with_extension("");
            let mut parts: Vec<String> = relative
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            if matches!(
                parts.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                parts.pop();
            }
            let text = std::fs::read_to_string(&path).unwrap();
            found.insert(parts.join("::"), without_tests_and_comments(&text));
        }
    }
    found
}

/// The text before `#[cfg(test)] mod tests`, without `//` comments (doc links are not imports).
fn without_tests_and_comments(text: &str) -> String {
    let code = match text.find("#[cfg(test)]\nmod tests") {
        Some(end) => &text[..end],
        None => text,
    };
    code.lines()
        .map(|line| match line.find("//") {
            Some(start) => &line[..start],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths a `use` tree or path names, from `rest` (what follows `prefix::`).
fn expand(prefix: &[String], rest: &str, out: &mut Vec<Vec<String>>) {
    let rest = rest.trim_start();
    if let Some(inner) = rest.strip_prefix('{') {
        let mut depth = 0;
        let mut item = String::new();
        let mut items = Vec::new();
        for c in inner.chars() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    items.push(std::mem::take(&mut item));
                    continue;
                }
                _ => {}
            }
            item.push(c);
        }
        items.push(item);
        for item in items {
            let item = item.trim();
            if item.is_empty() || item == "self" {
                out.push(prefix.to_vec());
            } else {
                expand(prefix, item, out);
            }
        }
        return;
    }
    let ident: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    if ident.is_empty() {
        out.push(prefix.to_vec());
        return;
    }
    let mut path = prefix.to_vec();
    path.push(ident.clone());
    match rest[ident.len()..].strip_prefix("::") {
        Some(tail) => expand(&path, tail, out),
        None => out.push(path),
    }
}

/// How many inline modules (`mod name { .. }`, or `mod $name { .. }` in a macro's body) enclose
/// byte `position` of `text`.
fn inline_depth(text: &str, position: usize) -> usize {
    let mut depth = 0;
    for (start, _) in text.match_indices("mod ") {
        if start >= position {
            break;
        }
        let after = &text[start + 4..];
        let name_len = after
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
            .unwrap_or(after.len());
        if name_len == 0 || !after[name_len..].trim_start().starts_with('{') {
            continue;
        }
        let open = start + 4 + name_len + after[name_len..].find('{').unwrap();
        let mut level = 0usize;
        let mut close = text.len();
        for (offset, c) in text[open..].char_indices() {
            match c {
                '{' => level += 1,
                '}' => {
                    level -= 1;
                    if level == 0 {
                        close = open + offset;
                        break;
                    }
                }
                _ => {}
            }
        }
        if position > open && position < close {
            depth += 1;
        }
    }
    depth
}

/// Every module's imports of other modules.
fn edges(modules: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let resolve = |path: &[String]| -> Option<String> {
        (1..=path.len())
            .rev()
            .map(|n| path[..n].join("::"))
            .find(|candidate| modules.contains_key(candidate))
    };
    let mut edges = BTreeMap::new();
    for (module, text) in modules {
        let here: Vec<String> = if module.is_empty() {
            vec![]
        } else {
            module.split("::").map(str::to_owned).collect()
        };
        let mut targets = BTreeSet::new();
        let mut paths = Vec::new();
        for keyword in ["crate::", "super::"] {
            for (start, _) in text.match_indices(keyword) {
                let before = text[..start].chars().last();
                // `pub(in super::super)` is a visibility, not an import.
                let visibility = text[..start].ends_with("(in ");
                if visibility || before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
                {
                    continue;
                }
                let mut rest = &text[start + keyword.len()..];
                let base = if keyword == "crate::" {
                    vec![]
                } else {
                    let mut up = 1;
                    while let Some(tail) = rest.strip_prefix("super::") {
                        rest = tail;
                        up += 1;
                    }
                    // Inside an inline `mod name { .. }`, the first `super` is this file.
                    let inline = inline_depth(text, start);
                    if up <= inline {
                        continue;
                    }
                    here[..here.len().saturating_sub(up - inline)].to_vec()
                };
                expand(&base, rest, &mut paths);
            }
        }
        // Children used by their relative name (`kernels::forward`, `pub use op::Pointwise`).
        for line in text.lines() {
            let line = line.trim();
            let Some(child) = line
                .strip_prefix("mod ")
                .or_else(|| line.strip_prefix("pub mod "))
                .or_else(|| line.strip_prefix("pub(crate) mod "))
                .and_then(|rest| rest.strip_suffix(';'))
            else {
                continue;
            };
            let used = text.match_indices(&format!("{child}::")).any(|(start, _)| {
                let before = text[..start].chars().last();
                !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
            });
            if used {
                let mut path = here.clone();
                path.push(child.to_owned());
                paths.push(path);
            }
        }
        for path in paths {
            if let Some(target) = resolve(&path)
                && !target.is_empty()
                && &target != module
            {
                targets.insert(target);
            }
        }
        edges.insert(module.clone(), targets);
    }
    edges
}

/// A circle of imports among the modules under `scope` (`""`: all), if there is one.
fn find_circle(edges: &BTreeMap<String, BTreeSet<String>>, scope: &str) -> Option<Vec<String>> {
    let inside = |m: &str| scope.is_empty() || m == scope || m.starts_with(&format!("{scope}::"));
    // Depth-first search; a back edge closes a circle.
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        inside: &dyn Fn(&str) -> bool,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_owned(), 1);
        stack.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten().filter(|n| inside(n)) {
            match state.get(next.as_str()) {
                Some(1) => {
                    let start = stack.iter().position(|m| m == next).unwrap();
                    let mut circle = stack[start..].to_vec();
                    circle.push(next.clone());
                    return Some(circle);
                }
                Some(_) => {}
                None => {
                    if let Some(circle) = visit(next, edges, inside, state, stack) {
                        return Some(circle);
                    }
                }
            }
        }
        stack.pop();
        state.insert(node.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in edges.keys().filter(|m| !m.is_empty() && inside(m)) {
        if !state.contains_key(node.as_str())
            && let Some(circle) = visit(node, edges, &inside, &mut state, &mut Vec::new())
        {
            return Some(circle);
        }
    }
    None
}

fn check(crate_dir: &str, scope: &str) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(crate_dir)
        .join("src");
    let modules = modules(&src);
    assert!(modules.len() > 5, "no sources found in {}", src.display());
    if let Some(circle) = find_circle(&edges(&modules), scope) {
        panic!(
            "{crate_dir}: these modules import each other: {}",
            circle.join(" → ")
        );
    }
}

#[test]
fn no_two_modules_of_activations_import_each_other() {
    check("crates/activations", "");
}

#[test]
fn no_two_modules_of_the_models_kernels_import_each_other() {
    check("crates/models", "kernels");
}

#[test]
fn a_circle_is_found() {
    let sources = [
        ("a", "use crate::b::thing;"),
        ("b", "mod c;\nfn f() { c::g() }"),
        (
            "b::c",
            "use super::super::a::Item;\nmod inner {\n    use super::Thing;\n}",
        ),
        ("d", "use crate::{a, b::c};"),
        // A macro's inline module: its `super` is `e` itself, not `e`'s parent (`d`).
        (
            "d::e",
            "macro_rules! m { ($n:ident) => { mod $n {\n    use super::Thing;\n} } }",
        ),
    ];
    let modules: BTreeMap<String, String> = sources
        .iter()
        .map(|(m, t)| (m.to_string(), t.to_string()))
        .collect();
    let edges = edges(&modules);
    assert_eq!(edges["d"], BTreeSet::from(["a".into(), "b::c".into()]));
    assert!(
        edges.get("d::e").is_none_or(BTreeSet::is_empty),
        "{:?}",
        edges.get("d::e")
    );
    let circle = find_circle(&edges, "").expect("a → b → b::c → a");
    assert_eq!(circle.first(), circle.last());
    assert_eq!(circle.len(), 4, "{circle:?}");
    assert_eq!(
        find_circle(&edges, "b"),
        None,
        "inside b alone there is no circle"
    );
}
