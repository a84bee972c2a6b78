//! Findings: what load, render and validate report. Every finding has a stable rule ID,
//! a severity, the model path and stack.toml location, and a fix hint.

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

/// Where the password of a `scheme://user:password@host` URL in `text` is (the first
/// one). The loader, the compose rules and the diff redactor all ask this one question.
pub fn url_password(text: &str) -> Option<Range<usize>> {
    text.match_indices("://").find_map(|(at, sep)| {
        let start = at + sep.len();
        let end = text[start..]
            .find(['/', '?', '#', ' ', '"', '\''])
            .map_or(text.len(), |i| start + i);
        let at_sign = start + text[start..end].rfind('@')?;
        let colon = start + text[start..at_sign].find(':')?;
        (colon + 1 < at_sign).then_some(colon + 1..at_sign)
    })
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
