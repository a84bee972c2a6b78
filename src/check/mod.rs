//! Checks: rules over the model, the rendered files and their consistency. Every rule
//! reports all of its findings; nothing stops at the first.

pub mod app_rules;
pub mod artifacts;
pub mod audit;
pub mod catalog;
pub mod dialect;
pub mod drift;
pub mod index;
pub mod model_rules;
pub mod monitoring_rules;
pub mod native_rules;
pub mod sql;
pub mod swarm_rules;

use crate::finding::{Finding, Severity};
use crate::model::{Model, Stack};
pub use artifacts::Files;

/// What a rule sees, and where it reports.
pub struct Ctx<'a> {
    pub model: &'a Model,
    pub findings: Vec<Finding>,
}

impl<'a> Ctx<'a> {
    pub fn new(model: &'a Model) -> Self {
        Ctx {
            model,
            findings: Vec::new(),
        }
    }

    pub fn stack(&self) -> &'a Stack {
        &self.model.stack
    }

    /// Reports a finding about a rendered file (and the model key it comes from).
    #[allow(clippy::too_many_arguments)]
    pub fn report_file(
        &mut self,
        rule: &str,
        severity: Severity,
        path: &str,
        file: &str,
        line: Option<usize>,
        message: String,
        help: String,
    ) {
        self.report_key(rule, severity, path, message, help);
        if let Some(finding) = self.findings.last_mut() {
            finding.artifact = Some(crate::finding::ArtifactLocation {
                file: file.to_string(),
                line,
            });
        }
    }

    /// Reports a finding about the model key at `path` (dotted).
    pub fn report_key(
        &mut self,
        rule: &str,
        severity: Severity,
        path: &str,
        message: String,
        help: String,
    ) {
        let segments: Vec<String> = split_path(path);
        let span = self.model.spans.span_for(&segments);
        let mut finding = Finding::new(rule, severity, message).with_path(path);
        if !help.is_empty() {
            finding = finding.with_help(help);
        }
        if let Some(span) = span {
            finding = finding.with_span(span);
        }
        self.findings.push(finding);
    }
}

/// Splits a dotted model path; service names never contain dots.
pub fn split_path(path: &str) -> Vec<String> {
    path.split('.').map(str::to_string).collect()
}

/// The model rules' raw findings (before suppressions and locations: see [`finish`]).
pub fn model_findings(model: &Model) -> Vec<Finding> {
    let mut cx = Ctx::new(model);
    model_rules::run(&mut cx);
    cx.findings
}

/// Runs the model rules; findings are located in the model sources and sorted.
pub fn check_model(model: &Model) -> Vec<Finding> {
    finish(model, model_findings(model))
}

/// The rendered files' rules over `files`, raw (see [`finish`]).
pub fn artifact_findings(model: &Model, files: &Files<'_>) -> Vec<Finding> {
    artifacts::run(model, files)
}

/// Applies `[[allow]]` suppressions, locates and sorts findings. An allow entry that
/// suppresses nothing is itself reported.
pub fn finish(model: &Model, findings: Vec<Finding>) -> Vec<Finding> {
    let allows = &model.stack.allow;
    let mut used = vec![false; allows.len()];
    let mut kept: Vec<Finding> = findings
        .into_iter()
        .filter(|finding| {
            let hit = allows.iter().position(|allow| {
                allow.rule == finding.rule
                    && allow.path.as_ref().is_none_or(|p| {
                        finding.path == *p || finding.path.starts_with(&format!("{p}."))
                    })
            });
            match hit {
                Some(index) => {
                    used[index] = true;
                    false
                }
                None => true,
            }
        })
        .collect();
    for (index, allow) in allows.iter().enumerate() {
        let path = format!("allow.{index}");
        let mut report = |rule: &str, message: String, help: &str| {
            let segments = split_path(&path);
            let mut finding = Finding::new(rule, Severity::Warning, message)
                .with_path(path.clone())
                .with_help(help);
            if let Some(span) = model.spans.span_for(&segments) {
                finding = finding.with_span(span);
            }
            kept.push(finding);
        };
        if catalog::rule(&allow.rule).is_none() {
            report(
                "TG012",
                format!("`[[allow]]` names unknown rule `{}`", allow.rule),
                "see `tgstack rules` for the rule IDs",
            );
        } else if allow.reason.trim().is_empty() {
            report(
                "TG012",
                "`[[allow]]` without a reason".into(),
                "say why the finding is acceptable",
            );
        } else if !used[index] {
            report(
                "TG012",
                format!("`[[allow]]` of {} suppresses nothing", allow.rule),
                "remove the unused suppression",
            );
        }
    }
    let mut located: Vec<Finding> = kept
        .into_iter()
        .map(|f| f.locate(&model.sources, &model.redactions))
        .collect();
    located.sort_by(|a, b| order_key(a).cmp(&order_key(b)));
    located.dedup_by(|a, b| a.rule == b.rule && a.message == b.message && a.path == b.path);
    located
}

/// Findings print by place, then rule, then message.
fn order_key(finding: &Finding) -> (Option<(&str, usize, usize)>, &str, &str) {
    let place = finding
        .location
        .as_ref()
        .map(|l| (l.file.as_str(), l.line, l.column));
    (place, finding.rule.as_str(), finding.message.as_str())
}
