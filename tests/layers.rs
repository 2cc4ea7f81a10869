//! The library's layers point one way: a module imports only modules below
//! it in [`LAYERS`], the same list as the README's "Source layout". Read
//! from the `crate::` paths in `src/` (doc links count too: a link up is a
//! dependency up for a reader).

use std::collections::BTreeSet;
use std::path::Path;

/// Bottom to top. A module may use any module before it, never one after.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "1. core: pure logic and plain types",
        &[
            "backoff",
            "breaker",
            "stats",
            "supervision",
            "service",
            "clock",
            "modes",
            "config",
        ],
    ),
    ("2. the published cell and its control", &["cell"]),
    ("3. the health read model and events", &["health", "event"]),
    (
        "4. actors and the runtime",
        &[
            "actor",
            "handle",
            "recovery",
            "degradation",
            "chaos",
            "runtime",
        ],
    ),
    (
        "5. the fleet, the HTTP face and start-up",
        &["fleet", "http", "launch"],
    ),
];

fn rank(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .flat_map(|(_, modules)| modules.iter())
        .position(|m| *m == module)
}

/// Every `crate::X` in `text` (up to its first `#[cfg(test)]`) that names a
/// module at or above `module` in the order, as `(X, line)`.
fn upward_imports(module: &str, text: &str) -> Vec<(String, usize)> {
    let own = rank(module).unwrap_or(usize::MAX);
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            let tail = &rest[at + "crate::".len()..];
            let name: String = tail
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if !name.is_empty() && name != module {
                if let Some(r) = rank(&name) {
                    if r > own {
                        out.push((name.clone(), i + 1));
                    }
                }
            }
            rest = tail;
        }
    }
    out
}

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn test_layers_when_library_sources_read_then_no_module_imports_upward() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut seen = BTreeSet::new();
    let mut violations = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if top == "lib" {
            continue;
        }
        seen.insert(top.clone());
        let text = std::fs::read_to_string(file).unwrap();
        for (name, line) in upward_imports(&top, &text) {
            violations.push(format!(
                "src/{}:{line}: `{top}` uses `crate::{name}`, a layer above it",
                rel.display()
            ));
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
    let listed: BTreeSet<String> = LAYERS
        .iter()
        .flat_map(|(_, modules)| modules.iter().map(|m| m.to_string()))
        .collect();
    assert_eq!(
        seen, listed,
        "every top-level module is in exactly one layer (and README's layout lists the same)"
    );
}

#[test]
fn test_layers_when_planted_upward_import_then_caught_with_line() {
    let planted = "use crate::breaker::Outcome;\n\nfn f() { crate::runtime::Seawall::builder; }\n";
    assert_eq!(
        upward_imports("cell", planted),
        vec![("runtime".to_string(), 3)]
    );
    // The same text is fine one layer up, and a module's own paths never count.
    assert!(upward_imports("launch", planted).is_empty());
    assert!(upward_imports("runtime", "crate::runtime::x").is_empty());
    // Test modules may reach anywhere.
    assert!(upward_imports("cell", "#[cfg(test)]\nuse crate::runtime::Seawall;").is_empty());
}

#[test]
fn test_layers_when_readme_layout_read_then_it_names_every_layer_in_order() {
    let readme = include_str!("../README.md");
    let mut at = 0;
    for (layer, _) in LAYERS {
        let found = readme[at..]
            .find(layer)
            .unwrap_or_else(|| panic!("README lists layer {layer:?} after the previous one"));
        at += found + layer.len();
    }
}
