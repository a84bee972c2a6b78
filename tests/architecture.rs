//! The layers import downwards only: model (with the catalog and the findings it reports)
//! -> render and check, side by side (import beside them, reading through check) -> the
//! pipeline, reports and CLI on top. Render and
//! check never import each other, so a derived fact both need lives in the model.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Top-level modules of the crate each layer may not name.
const FORBIDDEN: &[(&str, &[&str])] = &[
    (
        "source",
        &[
            "catalog", "model", "render", "check", "report", "pipeline", "cli", "tree", "parallel",
        ],
    ),
    (
        "suggest",
        &[
            "catalog", "model", "render", "check", "report", "pipeline", "cli", "tree", "parallel",
        ],
    ),
    (
        "finding",
        &[
            "catalog", "model", "render", "check", "report", "pipeline", "cli", "tree", "parallel",
        ],
    ),
    (
        "parallel",
        &[
            "catalog", "model", "render", "check", "report", "pipeline", "cli", "tree", "source",
            "suggest", "finding",
        ],
    ),
    (
        "tree",
        &[
            "catalog", "model", "render", "check", "report", "pipeline", "cli",
        ],
    ),
    (
        "catalog",
        &["model", "render", "check", "report", "pipeline", "cli"],
    ),
    ("model", &["render", "check", "report", "pipeline", "cli"]),
    ("render", &["check", "report", "pipeline", "cli"]),
    ("check", &["render", "report", "pipeline", "cli"]),
    ("report", &["render", "pipeline", "cli"]),
    // Import reads files into a model text; the CLI renders it for the comparison.
    ("import", &["render", "report", "pipeline", "cli"]),
    ("pipeline", &["cli", "report"]),
];

fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            rust_files(&entry.unwrap().path(), out);
        }
    } else if path.is_file() && path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_path_buf());
    }
}

/// Every top-level module a file names through `crate::`, including grouped imports
/// (`use crate::{a, b::c}`).
fn named_modules(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = &group[..group.find('}').unwrap_or(group.len())];
            for item in inner.split(',') {
                let first = item.trim().split("::").next().unwrap_or("").trim();
                names.insert(first.to_string());
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            names.insert(name);
        }
    }
    names
}

#[test]
fn layers_import_downwards_only() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut violations = Vec::new();
    for (layer, forbidden) in FORBIDDEN {
        let mut files = Vec::new();
        rust_files(&src.join(layer), &mut files);
        rust_files(&src.join(format!("{layer}.rs")), &mut files);
        assert!(!files.is_empty(), "no source for layer `{layer}`");
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for name in named_modules(&text) {
                if forbidden.contains(&name.as_str()) {
                    let shown = file.strip_prefix(&src).unwrap().display().to_string();
                    violations.push(format!("src/{shown} imports crate::{name}"));
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "imports against the layering:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_scanner_sees_grouped_and_nested_imports() {
    let names = named_modules("use crate::{check::Ctx, model};\nlet x = crate::render::render(m);");
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    assert_eq!(names, ["check", "model", "render"]);
}
