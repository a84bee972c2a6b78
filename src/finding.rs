//! Findings: what load, render and validate report. Every finding has a stable rule ID,
//! a severity, the model path and stack.toml location, and a fix hint.

use std::fmt::Write as _;
use std::ops::Range;

use serde::Serialize;

use crate::source::{Location, Sources};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// A place in a rendered file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArtifactLocation {
    /// Path relative to the rendered tree, e.g. `pgbouncer/pgbouncer.ini`.
    pub file: String,
    /// 1-based line, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub rule: String,
    pub severity: Severity,
    pub message: String,
    /// Dotted model path, e.g. `services.pgbouncer.publish` (empty when not about a key).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// Where in stack.toml (or an overlay).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// Where in a rendered file, for findings about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact: Option<ArtifactLocation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// Global span into the model sources, resolved into `location` by [`Finding::locate`].
    #[serde(skip)]
    pub span: Option<Range<usize>>,
}

impl Finding {
    pub fn new(rule: &str, severity: Severity, message: impl Into<String>) -> Self {
        Finding {
            rule: rule.to_string(),
            severity,
            message: message.into(),
            path: String::new(),
            location: None,
            artifact: None,
            help: None,
            span: None,
        }
    }

    /// A failure to read or write a file (not a finding about the model).
    pub fn io(message: String) -> Self {
        Finding::new("TG000", Severity::Error, message)
    }

    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    pub fn with_span(mut self, span: Range<usize>) -> Self {
        self.span = Some(span);
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn with_artifact(mut self, file: impl Into<String>, line: Option<usize>) -> Self {
        self.artifact = Some(ArtifactLocation {
            file: file.into(),
            line,
        });
        self
    }

    /// Resolves the span to a file location; masks `redactions` in the excerpt so a
    /// literal secret is never echoed back.
    pub fn locate(mut self, sources: &Sources, redactions: &[Range<usize>]) -> Self {
        if let Some(span) = &self.span
            && let Some(mut location) = sources.locate(span)
        {
            location.line_text = redact_line(sources, span, &location, redactions);
            self.location = Some(location);
        }
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

fn redact_line(
    sources: &Sources,
    span: &Range<usize>,
    location: &Location,
    redactions: &[Range<usize>],
) -> String {
    let Some(file) = sources
        .files
        .iter()
        .rev()
        .find(|f| span.start >= f.base && span.start <= f.base + f.text.len())
    else {
        return location.line_text.clone();
    };
    let local = span.start - file.base;
    let line_start = file.text[..local].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line_end = line_start + location.line_text.len();
    let mut line = location.line_text.clone();
    // Replace from the right so earlier offsets stay valid.
    let mut hits: Vec<_> = redactions
        .iter()
        .filter_map(|r| {
            let start = r.start.checked_sub(file.base)?;
            let end = r.end.checked_sub(file.base)?;
            (start >= line_start && end <= line_end).then(|| (start - line_start, end - line_start))
        })
        .collect();
    hits.sort();
    for (start, end) in hits.into_iter().rev() {
        if line.is_char_boundary(start) && line.is_char_boundary(end) {
            line.replace_range(start..end, "\"<redacted>\"");
        }
    }
    line
}

/// Human output: one block per finding, rustc/miette style, with a caret under the place.
pub fn render_human(findings: &[Finding]) -> String {
    let mut out = String::new();
    for finding in findings {
        let _ = writeln!(
            out,
            "{}[{}]: {}",
            finding.severity.as_str(),
            finding.rule,
            finding.message
        );
        if let Some(location) = &finding.location {
            let _ = writeln!(
                out,
                "  --> {}:{}:{}",
                location.file, location.line, location.column
            );
            let gutter = location.line.to_string().len();
            let _ = writeln!(out, "{:gutter$} |", "");
            let _ = writeln!(out, "{} | {}", location.line, location.line_text);
            let caret_pad: String = location
                .line_text
                .chars()
                .take(location.column - 1)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            let width = location
                .width
                .min(
                    location
                        .line_text
                        .chars()
                        .count()
                        .saturating_sub(location.column - 1),
                )
                .max(1);
            let _ = writeln!(out, "{:gutter$} | {}{}", "", caret_pad, "^".repeat(width));
        }
        if !finding.path.is_empty() {
            let _ = writeln!(out, "  = key: {}", finding.path);
        }
        if let Some(artifact) = &finding.artifact {
            match artifact.line {
                Some(line) => {
                    let _ = writeln!(out, "  = rendered: {}:{}", artifact.file, line);
                }
                None => {
                    let _ = writeln!(out, "  = rendered: {}", artifact.file);
                }
            }
        }
        if let Some(help) = &finding.help {
            let _ = writeln!(out, "  = help: {help}");
        }
        out.push('\n');
    }
    let errors = findings.iter().filter(|f| f.is_error()).count();
    let warnings = findings.len() - errors;
    if !findings.is_empty() {
        let _ = writeln!(out, "{errors} error(s), {warnings} warning(s)");
    }
    out
}

/// JSON output: `{"version": 1, "findings": [...], "summary": {...}}`. Documented in
/// docs/validate-json.md; fields are only ever added.
pub fn render_json(findings: &[Finding]) -> String {
    let errors = findings.iter().filter(|f| f.is_error()).count();
    let doc = serde_json::json!({
        "version": 1,
        "findings": findings,
        "summary": { "errors": errors, "warnings": findings.len() - errors },
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// SARIF 2.1.0, with rule metadata, so code hosts show findings inline on stack.toml.
pub fn render_sarif(findings: &[Finding]) -> String {
    use crate::check::catalog::RULES;
    let rules: Vec<_> = RULES
        .iter()
        .map(|rule| {
            serde_json::json!({
                "id": rule.id,
                "name": rule.name,
                "shortDescription": { "text": rule.summary },
                "fullDescription": { "text": rule.explanation },
                "help": { "text": format!("{}\n\nBad:\n{}\n\nGood:\n{}", rule.explanation, rule.bad, rule.good) },
                "defaultConfiguration": { "level": sarif_level(rule.severity) },
            })
        })
        .collect();
    let results: Vec<_> = findings
        .iter()
        .map(|f| {
            let mut locations = Vec::new();
            if let Some(location) = &f.location {
                locations.push(serde_json::json!({
                    "physicalLocation": {
                        "artifactLocation": { "uri": location.file },
                        "region": {
                            "startLine": location.line,
                            "startColumn": location.column,
                            "endColumn": location.column + location.width,
                        }
                    },
                    "logicalLocations": if f.path.is_empty() { serde_json::json!([]) } else { serde_json::json!([{ "fullyQualifiedName": f.path, "kind": "member" }]) },
                }));
            }
            if let Some(artifact) = &f.artifact {
                let mut physical = serde_json::json!({ "artifactLocation": { "uri": format!("generated/{}", artifact.file) } });
                if let Some(line) = artifact.line {
                    physical["region"] = serde_json::json!({ "startLine": line });
                }
                locations.push(serde_json::json!({ "physicalLocation": physical }));
            }
            let mut text = f.message.clone();
            if let Some(help) = &f.help {
                text.push_str(&format!("\nhelp: {help}"));
            }
            serde_json::json!({
                "ruleId": f.rule,
                "ruleIndex": RULES.iter().position(|r| r.id == f.rule),
                "level": sarif_level(f.severity),
                "message": { "text": text },
                "locations": locations,
            })
        })
        .collect();
    let doc = serde_json::json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "tgstack",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://github.com/tgstack/tgstack",
                "rules": rules,
            }},
            "results": results,
        }],
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

fn sarif_level(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}
