//! Findings: what load, render and validate report. Every finding has a stable rule ID,
//! a severity, the model path and stack.toml location, and a fix hint.

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

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

/// Whether a setting or variable named `name` holds a credential (`password`,
/// `PGPASSWORD`, `api_key`, `JWT_SECRET`, ...; not `password_encryption`, `secrets_dir`, a
/// `*_FILE` path or a reference's `secret`). The model loader, the app rules and the audit
/// all ask this one question.
pub fn is_credential_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    const EXACT: &[&str] = &[
        "password",
        "passwd",
        "pass",
        "pwd",
        "api_hash",
        "api_key",
        "apikey",
        "token",
        "private_key",
        "secret_key",
        "access_key",
        "requirepass",
        "masterauth",
        "auth_pass",
    ];
    const SUFFIXES: &[&str] = &[
        "password",
        "passwd",
        "_pass",
        "_token",
        "_api_key",
        "_api_hash",
        "_secret_key",
        "_secret",
        "_private_key",
        "_access_key",
    ];
    EXACT.contains(&name.as_str()) || SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// Excerpt maskers: (pattern, replacement). The value after a credential's name, a URL's
/// password, SQL `PASSWORD '...'`, a userlist's second field.
static MASKS: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    [
        (r"(?i)(\b(?:requirepass|masterauth|sentinel-pass)\s+)\S+", "${1}<redacted>"),
        (r"(?i)(\bauth-pass\s+\S+\s+)\S+", "${1}<redacted>"),
        (r#"(?i)(\b[\w.-]*(?:pass|password|passwd|secret|token|api_?key)["']?\s*[=:]\s*)("[^"]*"|'[^']*'|\S+)"#, "${1}<redacted>"),
        (r"(?i)(\bPASSWORD\s+)'[^']*'", "${1}'<redacted>'"),
        (r#"^(\s*"[^"]*"\s+)"[^"]*""#, "${1}\"<redacted>\""),
        // Redis ACL rules: `>password` adds a password (`#<sha256>` is a hash).
        (r"(\s)>\S+", "${1}><redacted>"),
    ]
    .into_iter()
    .map(|(pattern, with)| (Regex::new(pattern).unwrap(), with))
    .collect()
});

/// `line` with every credential-looking value replaced by `<redacted>`.
pub fn mask_credentials(line: &str) -> String {
    let mut out = line.to_owned();
    // Every URL's password, replaced from the right so earlier offsets stay valid.
    let mut ranges: Vec<_> = line
        .match_indices("://")
        .filter_map(|(at, _)| {
            let start = line[..at]
                .rfind(|c: char| c.is_whitespace() || "\"'=".contains(c))
                .map_or(0, |i| i + 1);
            url_password(&line[start..]).map(|r| r.start + start..r.end + start)
        })
        .collect();
    ranges.sort_by_key(|r| r.start);
    ranges.dedup();
    for range in ranges.into_iter().rev() {
        out.replace_range(range, "<redacted>");
    }
    for (pattern, with) in MASKS.iter() {
        out = pattern.replace_all(&out, *with).into_owned();
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_never_show_a_credential() {
        for (line, hidden) in [
            ("requirepass s3cret", "s3cret"),
            ("sentinel auth-pass mymaster s3cret", "s3cret"),
            ("default_pass = s3cret", "s3cret"),
            ("app = host=db password=s3cret", "s3cret"),
            ("CREATE ROLE app LOGIN PASSWORD 's3cret';", "s3cret"),
            ("      POSTGRES_PASSWORD: s3cret", "s3cret"),
            (
                "Environment=DATABASE_URL=postgres://app:s3cret@127.0.0.1:6432/app",
                "s3cret",
            ),
            ("\"app\" \"s3cret\"", "s3cret"),
        ] {
            let masked = mask_credentials(line);
            assert!(!masked.contains(hidden), "{line} -> {masked}");
            assert!(masked.contains("<redacted>"), "{line} -> {masked}");
        }
        assert_eq!(mask_credentials("maxmemory 256mb"), "maxmemory 256mb");
        let two = mask_credentials("A=redis://:one@r:6379 B=amqp://u:two@q:5672/v");
        assert!(!two.contains("one") && !two.contains("two"), "{two}");
        let acl = mask_credentials("user app on >s3cret ~* +@all");
        assert!(!acl.contains("s3cret"), "{acl}");
    }
}
