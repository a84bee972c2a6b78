//! `tgstack audit DIR`: a directory of hand-written files checked with no model. Files are
//! found by name and content ([`discover`]), the compose file's bind mounts tie each file
//! to the service and image that reads it ([`deployment`]), and every dialect rule and
//! every cross-file rule that needs no model runs. Findings point at the audited files.

mod data;
pub mod deployment;
pub mod discover;
pub(crate) mod monitoring;
mod secrets;
mod services;

use std::path::{Path, PathBuf};

pub use discover::{Audited, FileKind};

use crate::check::dialect::{Dialect, Release};
use crate::finding::{Finding, Severity, mask_credentials};
use crate::source::Location;
use deployment::Deployment;

/// The audit of one directory: its files, what the compose file deploys, the findings.
pub struct Audit<'a> {
    /// The directory as given, so finding paths are ones the user can open.
    dir: PathBuf,
    files: &'a [Audited],
    deployment: Deployment<'a>,
    findings: Vec<Finding>,
}

/// Audits `dir`; Err when the directory cannot be read at all.
pub fn audit(dir: &Path) -> std::io::Result<Vec<Finding>> {
    let files = discover::read(dir)?;
    let deployment = Deployment::new(dir, &files);
    let mut audit = Audit {
        dir: dir.to_path_buf(),
        files: &files,
        deployment,
        findings: Vec::new(),
    };
    audit.dialects();
    services::run(&mut audit);
    data::run(&mut audit);
    monitoring::run(&mut audit);
    secrets::run(&mut audit);
    let mut findings = audit.findings;
    findings.sort_by(|a, b| {
        let place = |f: &Finding| f.location.as_ref().map(|l| (l.file.clone(), l.line));
        place(a).cmp(&place(b)).then_with(|| a.rule.cmp(&b.rule))
    });
    findings
        .dedup_by(|a, b| a.rule == b.rule && a.location == b.location && a.message == b.message);
    Ok(findings)
}

/// A host name that can only mean a compose service: one DNS label, no dots (an FQDN,
/// an address, a socket directory or a host list names something else on purpose).
fn single_label(host: &str) -> bool {
    !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl<'a> Audit<'a> {
    fn of_kind(&self, kind: FileKind) -> impl Iterator<Item = &'a Audited> + use<'a> {
        self.files.iter().filter(move |f| f.kind == kind)
    }

    /// A finding at `line` of the audited file `rel`, the line shown with secrets masked.
    fn report(
        &mut self,
        rule: &str,
        severity: Severity,
        rel: &str,
        line: usize,
        message: String,
        hint: impl Into<String>,
    ) {
        let text = self
            .files
            .iter()
            .find(|f| f.rel == rel)
            .map(|f| f.text.as_str())
            .unwrap_or("");
        let line = line.max(1);
        let line_text = mask_credentials(text.lines().nth(line - 1).unwrap_or(""));
        let shown = if self.dir == Path::new(".") {
            PathBuf::from(rel)
        } else {
            self.dir.join(rel)
        };
        let location = Location {
            file: shown.to_string_lossy().into_owned(),
            line,
            column: 1,
            width: line_text.chars().count().max(1),
            line_text,
        };
        let mut finding = Finding::new(rule, severity, message).with_help(hint);
        finding.location = Some(location);
        self.findings.push(finding);
    }

    fn error(
        &mut self,
        rule: &str,
        rel: &str,
        line: usize,
        message: String,
        hint: impl Into<String>,
    ) {
        self.report(rule, Severity::Error, rel, line, message, hint);
    }

    /// Every file checked alone in its dialect, against the release of the image that
    /// mounts it (the newest catalog for a file no service mounts).
    fn dialects(&mut self) {
        for file in self.files {
            let dialect = match file.kind {
                FileKind::Postgresql => Dialect::Postgresql,
                FileKind::Pgbouncer => Dialect::Pgbouncer,
                FileKind::Redis => Dialect::Redis,
                FileKind::Sentinel => Dialect::Sentinel,
                FileKind::Rabbitmq => Dialect::Rabbitmq,
                FileKind::Unit => Dialect::Systemd,
                FileKind::Compose => {
                    self.compose_format(file);
                    continue;
                }
                _ => continue,
            };
            let image = self.deployment.image_reading(&file.rel);
            let release = match (file.kind, image) {
                (FileKind::Unit, _) => Release::Installed,
                (_, Some(image)) => Release::Image(image),
                (_, None) => Release::Newest,
            };
            let name = file.rel.rsplit('/').next().unwrap_or(&file.rel);
            for issue in dialect.check(name, &file.text, release) {
                self.error("TG022", &file.rel, issue.line, issue.message, issue.hint);
            }
        }
    }

    fn compose_format(&mut self, file: &Audited) {
        match &file.yaml {
            Some(Ok(document)) => {
                for issue in crate::check::dialect::compose_file(&file.text, document) {
                    self.error("TG023", &file.rel, issue.line, issue.message, issue.hint);
                }
            }
            Some(Err(message)) => {
                let line = crate::check::artifacts::parse::error_line(message).unwrap_or(1);
                let first = message.lines().next().unwrap_or("").to_string();
                self.error(
                    "TG020",
                    &file.rel,
                    line,
                    format!("not valid YAML: {first}"),
                    "fix the YAML",
                );
            }
            None => {}
        }
    }
}
