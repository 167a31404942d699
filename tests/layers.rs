#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Imports point down only: the layer rule of README's Development section, checked on the
//! source. A module may use its own layer's modules where the table allows it and any layer
//! below; `auth` and `store` never import each other.

use std::path::{Path, PathBuf};

/// Top to bottom, as in the README.
const LAYERS: &[&[&str]] = &[
    &["main", "lib"],
    &["commands"],
    &["cli", "complete"],
    &["output"],
    &["select"],
    &["session"],
    &["app"],
    &["auth", "store"],
    &[
        "vocab",
        "error",
        "env",
        "ui",
        "interrupt",
        "time",
        "text",
        "secret",
    ],
];

/// Modules of one layer that must not import each other.
const APART: &[(&str, &str)] = &[("auth", "store"), ("store", "auth")];

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a source file belongs to: `src/store/lock.rs` -> `store`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// The top-level modules named as `crate::NAME` in production code (before `#[cfg(test)]`).
fn imports(text: &str) -> Vec<String> {
    let production = text.split("#[cfg(test)]").next().unwrap_or_default();
    production
        .match_indices("crate::")
        .map(|(i, m)| {
            production[i + m.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

#[test]
fn no_module_imports_one_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut wrong = Vec::new();
    for file in &files {
        let module = module_of(&src, file);
        let Some(own) = layer(&module) else {
            wrong.push(format!(
                "{}: module `{module}` is in no layer; add it to LAYERS and the README",
                file.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for used in imports(&text) {
            if used == module {
                continue;
            }
            let Some(theirs) = layer(&used) else { continue };
            if theirs < own || APART.contains(&(module.as_str(), used.as_str())) {
                wrong.push(format!(
                    "{}: `{module}` imports `{used}`, which is above it or apart from it",
                    file.display()
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_checker_sees_an_upward_import() {
    assert_eq!(
        imports(
            "use crate::store::Config;\nfn f() { crate::app::x(); }\n#[cfg(test)]\nuse crate::cli;"
        ),
        ["store", "app"]
    );
    assert!(layer("store") > layer("session"));
}
