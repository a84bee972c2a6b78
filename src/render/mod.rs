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
mod runbooks;
mod scripts;
pub mod secrets;
pub mod sql;
pub mod swarm;
pub mod systemd;
pub mod write;

use std::path::Path;

use minijinja::Value;

use crate::finding::{Finding, Severity};
use crate::model::{Model, paths};
use crate::parallel::{self, Job};
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

/// The renderers, one per output format: each computes its files' contexts from the model.
const RENDERERS: [fn(&Model) -> Vec<Output>; 14] = [
    compose::outputs,
    env::outputs,
    postgres::outputs,
    pgbouncer::outputs,
    redis::outputs,
    rabbitmq::outputs,
    nginx::outputs,
    prometheus::outputs,
    grafana::outputs,
    sql::outputs,
    systemd::outputs,
    scripts::outputs,
    diagrams::outputs,
    runbooks::outputs,
];

/// Renders every artifact of the model. The model must already be free of errors.
/// Contexts, then files, are computed on the machine's cores; the tree and the findings
/// come out the same whatever the schedule.
pub fn render(model: &Model, templates: Option<&Path>) -> Result<Tree, Vec<Finding>> {
    let env = engine::environment(templates).map_err(|message| {
        vec![
            Finding::new("TG010", Severity::Error, message)
                .with_help("fix the template, or drop --templates to use the built-in ones"),
        ]
    })?;
    let (mut tree, mut findings) = render_files(model, &env);
    // A failover script applies what the model with its standby promoted renders
    // differently: that model's files, rendered the same way.
    let promotions: Vec<swarm::Promoted> = swarm::with_standby(model)
        .into_iter()
        .filter_map(|service| {
            let promoted = swarm::promoted(model, &service)?;
            let (tree, problems) = render_files(&promoted, &env);
            findings.extend(problems);
            Some(swarm::Promoted {
                service,
                model: promoted,
                tree,
            })
        })
        .collect();
    // The swarm stack names its configs by the rendered files' content: it comes last.
    for output in swarm::outputs(model, &tree, &promotions) {
        match render_file(&env, &output) {
            Ok(text) => {
                tree.insert(output.path.clone(), text.into_bytes());
            }
            Err(finding) => findings.push(*finding),
        }
    }
    tree.insert(paths::MANIFEST.into(), manifest(&tree).into_bytes());
    if findings.is_empty() {
        Ok(tree)
    } else {
        Err(findings)
    }
}

/// The files of every renderer but the swarm's, and the findings of those that failed.
fn render_files(model: &Model, env: &minijinja::Environment<'_>) -> (Tree, Vec<Finding>) {
    let contexts: Vec<_> = RENDERERS
        .iter()
        .map(|renderer| move || renderer(model))
        .collect();
    let contexts: Vec<&Job<'_, Vec<Output>>> = contexts.iter().map(|job| job as _).collect();
    let outputs: Vec<Output> = parallel::in_order(&contexts)
        .into_iter()
        .flatten()
        .collect();
    let files: Vec<_> = outputs
        .iter()
        .map(|output| || render_file(env, output))
        .collect();
    let files: Vec<&Job<'_, Result<String, Box<Finding>>>> =
        files.iter().map(|job| job as _).collect();
    let mut tree = Tree::new();
    let mut findings = Vec::new();
    for (output, file) in outputs.iter().zip(parallel::in_order(&files)) {
        match file {
            Ok(text) => {
                tree.insert(output.path.clone(), text.into_bytes());
            }
            Err(finding) => findings.push(at_owner(model, &output.path, *finding)),
        }
    }
    (tree, findings)
}

/// A file that cannot be written is the model's doing: the finding points at the service
/// that owns the file (its table in the model files), as well as naming the file.
fn at_owner(model: &Model, artifact: &str, finding: Finding) -> Finding {
    let stack = &model.stack;
    let mut parts = artifact.split('/');
    let first = parts.next().unwrap_or("");
    let owner = if stack.services.contains_key(first) {
        Some(first.to_string())
    } else if first == "systemd" {
        parts
            .next()
            .and_then(|unit| unit.strip_suffix(".service"))
            .filter(|name| stack.services.contains_key(*name))
            .map(str::to_string)
    } else {
        // sentinel/sentinel-1.conf and the like: the service whose instance it is.
        parts.next().and_then(|file| {
            let instance = file.split('.').next().unwrap_or("");
            stack
                .services
                .iter()
                .find(|(name, service)| {
                    stack
                        .instances(name, service)
                        .iter()
                        .any(|i| i.name == instance)
                })
                .map(|(name, _)| name.clone())
        })
    };
    let Some(owner) = owner else {
        return finding;
    };
    let path = format!("services.{owner}");
    let span = model.spans.span_for(&[String::from("services"), owner]);
    let finding = finding.with_path(path);
    let finding = match span {
        Some(span) => finding.with_span(span),
        None => finding,
    };
    finding.locate(&model.sources, &model.redactions)
}

/// One file's text, or why it cannot be written.
fn render_file(env: &minijinja::Environment<'_>, output: &Output) -> Result<String, Box<Finding>> {
    // A renderer that cannot honour the model says why in `refused`.
    if let Ok(refused) = output.context.get_attr("refused")
        && !refused.is_undefined()
    {
        return Err(Box::new(
            Finding::new(
                "TG010",
                Severity::Error,
                format!("cannot render {}: {refused}", output.path),
            )
            .with_artifact(output.path.clone(), None)
            .with_help("change the model as the message says"),
        ));
    }
    env.get_template(output.template)
        .and_then(|template| template.render(&output.context))
        .map_err(|error| {
            Box::new(
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
            )
        })
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
