//! Rendering: the model becomes a tree of files. Each output format has its own module
//! that computes a context from the model; templates only print it.

pub mod compose;
pub mod diagrams;
pub mod engine;
mod env;
pub mod grafana;
pub mod nginx;
mod pgbouncer;
mod postgres;
pub mod prometheus;
mod rabbitmq;
mod redis;
mod scripts;
pub mod secrets;
pub mod sql;
pub mod systemd;
pub mod write;

use std::path::Path;

use minijinja::Value;

use crate::finding::{Finding, Severity};
use crate::model::{Model, paths};
use crate::tree::Tree;

/// One file to render: where it goes, which template, with what context.
pub struct Output {
    pub path: String,
    pub template: &'static str,
    pub context: Value,
}

impl Output {
    pub fn new(path: impl Into<String>, template: &'static str, context: Value) -> Self {
        Output {
            path: path.into(),
            template,
            context,
        }
    }
}

/// Every output of the model, in no particular order (the tree sorts them).
fn outputs(model: &Model) -> Vec<Output> {
    let mut all = Vec::new();
    all.extend(compose::outputs(model));
    all.extend(env::outputs(model));
    all.extend(postgres::outputs(model));
    all.extend(pgbouncer::outputs(model));
    all.extend(redis::outputs(model));
    all.extend(rabbitmq::outputs(model));
    all.extend(nginx::outputs(model));
    all.extend(prometheus::outputs(model));
    all.extend(grafana::outputs(model));
    all.extend(sql::outputs(model));
    all.extend(systemd::outputs(model));
    all.extend(scripts::outputs(model));
    all.extend(diagrams::outputs(model));
    all
}

/// Renders every artifact of the model. The model must already be free of errors.
pub fn render(model: &Model, templates: Option<&Path>) -> Result<Tree, Vec<Finding>> {
    let env = engine::environment(templates).map_err(|message| {
        vec![
            Finding::new("TG010", Severity::Error, message)
                .with_help("fix the template, or drop --templates to use the built-in ones"),
        ]
    })?;
    let mut tree = Tree::new();
    let mut findings = Vec::new();
    for output in outputs(model) {
        // A renderer that cannot honour the model says why in `refused`.
        if let Ok(refused) = output.context.get_attr("refused")
            && !refused.is_undefined()
        {
            findings.push(
                Finding::new(
                    "TG010",
                    Severity::Error,
                    format!("cannot render {}: {refused}", output.path),
                )
                .with_artifact(output.path.clone(), None)
                .with_help("change the model as the message says"),
            );
            continue;
        }
        let rendered = env
            .get_template(output.template)
            .and_then(|template| template.render(&output.context));
        match rendered {
            Ok(text) => {
                tree.insert(output.path, text.into_bytes());
            }
            Err(error) => findings.push(
                Finding::new(
                    "TG010",
                    Severity::Error,
                    format!(
                        "cannot render {}: {}",
                        output.path,
                        engine::describe(&error)
                    ),
                )
                .with_artifact(output.path.clone(), None)
                .with_help(
                    "a model value cannot be written in this file's format; change the value",
                ),
            ),
        }
    }
    tree.insert(paths::MANIFEST.into(), manifest(&tree).into_bytes());
    if findings.is_empty() {
        Ok(tree)
    } else {
        Err(findings)
    }
}

/// Lists every rendered file, so a reviewer sees additions and removals at a glance.
fn manifest(tree: &Tree) -> String {
    let mut text = format!("# {}\n# Every file of this tree:\n", engine::HEADER);
    for path in tree.keys() {
        text.push_str(path);
        text.push('\n');
    }
    text
}

/// A serde value as a template value.
pub fn ser<T: serde::Serialize>(value: T) -> Value {
    Value::from(minijinja::value::Serde(value))
}

/// The header comment in a given syntax, for contexts built in Rust.
pub fn header(prefix: &str) -> String {
    format!("{prefix} {}", engine::HEADER)
}
