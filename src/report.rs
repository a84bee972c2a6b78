//! Reports: findings printed for people (human), for programs (JSON) and for code hosts
//! (SARIF, with the rule catalog's metadata). Above both the findings and the catalog, so
//! neither needs the other.

use std::fmt::Write as _;

use crate::check::catalog::RULES;
use crate::finding::{Finding, Severity};

/// Human output: one block per finding, rustc/miette style, with a caret under the place.
pub fn human(findings: &[Finding]) -> String {
    human_styled(findings, false)
}

/// The human report, in colour (ANSI) when `color`: each finding as rustc shows a
/// diagnostic (annotate-snippets), with the model line it is about under a caret, then its
/// key, the rendered file and the fix.
pub fn human_styled(findings: &[Finding], color: bool) -> String {
    use annotate_snippets::{Level, Renderer, Snippet};
    let renderer = if color {
        Renderer::styled()
    } else {
        Renderer::plain()
    };
    let mut out = String::new();
    for finding in findings {
        let level = match finding.severity {
            Severity::Error => Level::Error,
            Severity::Warning => Level::Warning,
        };
        let key = format!("key: {}", finding.path);
        let rendered = finding.artifact.as_ref().map(|a| match a.line {
            Some(line) => format!("rendered: {}:{line}", a.file),
            None => format!("rendered: {}", a.file),
        });
        let mut message = level.title(&finding.message).id(&finding.rule);
        let line_text;
        if let Some(location) = &finding.location {
            // The caret: `width` characters from `column`, as byte offsets of the line.
            line_text = location.line_text.clone();
            let byte = |chars: usize| {
                line_text
                    .char_indices()
                    .nth(chars)
                    .map_or(line_text.len(), |(i, _)| i)
            };
            let start = byte(location.column.saturating_sub(1));
            let end = byte(location.column.saturating_sub(1) + location.width.max(1)).max(start);
            message = message.snippet(
                Snippet::source(&line_text)
                    .line_start(location.line)
                    .origin(&location.file)
                    .fold(false)
                    .annotation(level.span(start..end)),
            );
        }
        if !finding.path.is_empty() {
            message = message.footer(Level::Note.title(&key));
        }
        if let Some(rendered) = &rendered {
            message = message.footer(Level::Note.title(rendered));
        }
        if let Some(help) = &finding.help {
            message = message.footer(Level::Help.title(help));
        }
        let _ = writeln!(out, "{}\n", renderer.render(message));
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

/// `rules --json`: `{"version": 1, "rules": [...]}`, documented in docs/validate-json.md
/// (`schemas/rules-output.schema.json`); fields are only ever added.
pub fn rules_json() -> String {
    let doc = serde_json::json!({ "version": 1, "rules": RULES });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// GitHub Actions workflow commands (`::error file=...,line=...::message`), one per
/// finding, placed on the model file or the rendered file with paths relative to the
/// repository root, so a workflow step shows each finding on the line it is about.
pub fn github(findings: &[Finding], base: &SarifBase) -> String {
    let mut out = String::new();
    for finding in findings {
        let mut properties = Vec::new();
        if let Some(location) = &finding.location {
            let file = base.model_uri(location);
            properties.push(format!("file={}", github_property(&file)));
            properties.push(format!("line={}", location.line));
            properties.push(format!("col={}", location.column));
            properties.push(format!("endColumn={}", location.column + location.width));
        } else if let Some(artifact) = &finding.artifact {
            let file = base.artifact_uri(artifact);
            properties.push(format!("file={}", github_property(&file)));
            if let Some(line) = artifact.line {
                properties.push(format!("line={line}"));
            }
        }
        let name = crate::check::catalog::rule(&finding.rule).map_or("", |r| r.name);
        properties.push(format!(
            "title={}",
            github_property(&format!("{} {name}", finding.rule))
        ));
        let mut message = finding.message.clone();
        if let Some(help) = &finding.help {
            message.push_str(&format!("\nhelp: {help}"));
        }
        let _ = writeln!(
            out,
            "::{} {}::{}",
            finding.severity.as_str(),
            properties.join(","),
            github_data(&message)
        );
    }
    out
}

/// A workflow command's message: `%`, CR and LF escaped.
fn github_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A workflow command's property value: its message escapes, plus `:` and `,`.
fn github_property(text: &str) -> String {
    github_data(text).replace(':', "%3A").replace(',', "%2C")
}

/// Where SARIF's paths are relative to: the repository root (`SRCROOT`), and the rendered
/// tree's directory as seen from there.
#[derive(Debug, Clone)]
pub struct SarifBase {
    /// Absolute directory every URI is relative to (the git work tree, else the directory
    /// tgstack ran in).
    pub root: std::path::PathBuf,
    /// The rendered tree (`--generated` / `--out`).
    pub generated: std::path::PathBuf,
}

impl SarifBase {
    /// The git work tree holding `start`, or `start` itself.
    pub fn find(start: &std::path::Path, generated: &std::path::Path) -> Self {
        let start = std::path::absolute(start).unwrap_or_else(|_| start.to_path_buf());
        let root = start
            .ancestors()
            .find(|dir| dir.join(".git").exists())
            .map(std::path::Path::to_path_buf)
            .unwrap_or(start);
        SarifBase {
            root,
            generated: std::path::absolute(generated).unwrap_or_else(|_| generated.to_path_buf()),
        }
    }

    /// The model file of a location, relative to the root.
    fn model_uri(&self, location: &crate::source::Location) -> String {
        self.relative(std::path::Path::new(&location.file))
    }

    /// A rendered file, relative to the root (wherever `--generated` points).
    fn artifact_uri(&self, artifact: &crate::finding::ArtifactLocation) -> String {
        self.relative(&self.generated.join(&artifact.file))
    }

    /// `path` relative to the root, `/`-separated; as given when it lies outside.
    fn relative(&self, path: &std::path::Path) -> String {
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        absolute
            .strip_prefix(&self.root)
            .unwrap_or(&absolute)
            .to_string_lossy()
            .replace('\\', "/")
    }
}

/// The section of a rule in docs/rules.md (GitHub's heading anchor of `### TG203`).
fn help_uri(rule: &str) -> String {
    format!(
        "https://github.com/tgstack/tgstack/blob/main/docs/rules.md#{}",
        rule.to_ascii_lowercase()
    )
}

/// A result's identity across runs: rule, key path and rendered file, not line numbers
/// or message text, so code hosts keep tracking a finding while the file around it moves.
fn fingerprint(finding: &Finding, base: &SarifBase) -> String {
    use sha2::Digest as _;
    let artifact = finding
        .artifact
        .as_ref()
        .map(|a| a.file.as_str())
        .unwrap_or("");
    // The model file as the repository names it, however it was typed on the command line.
    let file = finding
        .location
        .as_ref()
        .map(|l| base.model_uri(l))
        .unwrap_or_default();
    let digest = sha2::Sha256::digest(format!(
        "{}\0{}\0{file}\0{artifact}",
        finding.rule, finding.path
    ));
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// SARIF 2.1.0, with rule metadata, so code hosts show findings inline on stack.toml: URIs
/// relative to the repository root (`SRCROOT`), a `helpUri` per rule, stable
/// `partialFingerprints`, and findings that have no place in a file (I/O errors) as
/// tool notifications.
pub fn sarif(findings: &[Finding], base: &SarifBase) -> String {
    let rules: Vec<_> = RULES
        .iter()
        .map(|rule| {
            serde_json::json!({
                "id": rule.id,
                "name": rule.name,
                "shortDescription": { "text": rule.summary },
                "fullDescription": { "text": rule.explanation },
                "help": { "text": format!("{}\n\nBad:\n{}\n\nGood:\n{}", rule.explanation, rule.bad, rule.good) },
                "helpUri": help_uri(rule.id),
                "defaultConfiguration": { "level": sarif_level(rule.severity) },
            })
        })
        .collect();
    // An I/O error has no place in any file: a notification of the tool, not a result.
    let placed = |f: &&Finding| f.rule != "TG000" || f.location.is_some() || f.artifact.is_some();
    let results: Vec<_> = findings
        .iter()
        .filter(placed)
        .map(|f| {
            let mut locations = Vec::new();
            if let Some(location) = &f.location {
                locations.push(serde_json::json!({
                    "physicalLocation": {
                        "artifactLocation": {
                            "uri": base.model_uri(location),
                            "uriBaseId": "SRCROOT",
                        },
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
                let uri = base.artifact_uri(artifact);
                let mut physical = serde_json::json!({ "artifactLocation": { "uri": uri, "uriBaseId": "SRCROOT" } });
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
                "partialFingerprints": { "tgstackFinding/v1": fingerprint(f, base) },
            })
        })
        .collect();
    let notifications: Vec<_> = findings
        .iter()
        .filter(|f| !placed(f))
        .map(|f| {
            serde_json::json!({
                "level": sarif_level(f.severity),
                "message": { "text": f.message },
                "descriptor": { "id": f.rule },
            })
        })
        .collect();
    let root_uri = format!(
        "file://{}/",
        base.root.to_string_lossy().trim_end_matches('/')
    );
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
            "originalUriBaseIds": { "SRCROOT": { "uri": root_uri } },
            "invocations": [{
                "executionSuccessful": notifications.is_empty(),
                "toolExecutionNotifications": notifications,
            }],
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
