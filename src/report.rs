//! Reports: findings printed for people (human), for programs (JSON) and for code hosts
//! (SARIF, with the rule catalog's metadata). Above both the findings and the catalog, so
//! neither needs the other.

use std::fmt::Write as _;

use crate::check::catalog::RULES;
use crate::finding::{Finding, Severity};

/// Human output: one block per finding, rustc/miette style, with a caret under the place.
pub fn human(findings: &[Finding]) -> String {
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
pub fn json(findings: &[Finding]) -> String {
    let errors = findings.iter().filter(|f| f.is_error()).count();
    let doc = serde_json::json!({
        "version": 1,
        "findings": findings,
        "summary": { "errors": errors, "warnings": findings.len() - errors },
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// SARIF 2.1.0, with rule metadata, so code hosts show findings inline on stack.toml.
pub fn sarif(findings: &[Finding]) -> String {
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
