//! The library entry points: a loaded model rendered, or validated, in one call. The CLI,
//! the tests and the benchmark go through these, so the sequence "model rules -> render
//! -> artifact rules -> drift" is written once and the model rules run once.

use std::path::Path;

use crate::check::{self, Files};
use crate::finding::{Finding, Severity};
use crate::model::Model;
use crate::tree::Tree;

/// A model rendered: the tree and the model's warnings.
#[derive(Debug)]
pub struct Rendered {
    pub tree: Tree,
    pub warnings: Vec<Finding>,
}

/// Renders every artifact of the model after checking the model. Errs with the model's
/// findings when it has errors (nothing is rendered then), else with the render errors.
pub fn render(model: &Model, templates: Option<&Path>) -> Result<Rendered, Vec<Finding>> {
    let warnings = check::check_model(model);
    if warnings.iter().any(Finding::is_error) {
        return Err(warnings);
    }
    let tree = crate::render::render(model, templates)?;
    Ok(Rendered { tree, warnings })
}

/// What the rendered files are checked against.
#[derive(Debug, Clone, Copy)]
pub enum Against<'a> {
    /// The tree the model renders, in memory (nothing on disk yet).
    Rendered,
    /// The tree found on disk at `dir`, read into `files`: rules read it as found (so a
    /// hand edit is reported by the rule it breaks) and it is compared with the render
    /// (drift).
    Disk { dir: &'a Path, files: &'a Files<'a> },
}

/// What `validate` found.
#[derive(Debug, Default)]
pub struct Report {
    /// Sorted by location; suppressions applied.
    pub findings: Vec<Finding>,
}

impl Report {
    /// Whether the findings fail a run: any error, or any warning with `deny_warnings`.
    pub fn fails(&self, deny_warnings: bool) -> bool {
        self.findings.iter().any(|f| {
            f.severity == Severity::Error || (deny_warnings && f.severity == Severity::Warning)
        })
    }
}

/// Everything `tgstack validate` checks: the model, then (when the model renders) the
/// rendered files and their consistency, read from `against`.
pub fn validate(model: &Model, templates: Option<&Path>, against: Against<'_>) -> Report {
    let model_findings = check::model_findings(model);
    let model_report = check::finish(model, model_findings.clone());
    if model_report.iter().any(Finding::is_error) {
        return Report {
            findings: model_report,
        };
    }
    let checked = match against {
        // The tree on disk is checked while the model renders.
        Against::Disk { dir, files } if !files.tree().is_empty() => {
            let (rendered, found) = std::thread::scope(|scope| {
                let rendered = scope.spawn(|| crate::render::render(model, templates));
                let found = check::artifact_findings(model, files);
                let rendered = rendered
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                (rendered, found)
            });
            rendered.map(|rendered| {
                let drift = check::drift::check(&rendered, files.tree(), dir);
                found.into_iter().chain(drift).collect::<Vec<_>>()
            })
        }
        against => crate::render::render(model, templates).map(|rendered| {
            let mut found = check::artifact_findings(model, &Files::new(&rendered));
            if let Against::Disk { dir, files } = against {
                found.extend(check::drift::check(&rendered, files.tree(), dir));
            }
            found
        }),
    };
    let findings = match checked {
        Ok(found) => check::finish(model, model_findings.into_iter().chain(found).collect()),
        Err(errors) => model_report.into_iter().chain(errors).collect(),
    };
    Report { findings }
}
