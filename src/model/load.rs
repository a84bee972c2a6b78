//! Reading stack.toml (and overlays) into a typed [`Stack`] while keeping a span for
//! every key, so every finding can point at the line the operator wrote.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::Stack;
use super::alerting::{AlertProblem, BuiltAlert, build_alert};
use crate::finding::{Finding, Severity};
use crate::parallel::{self, Job};
use crate::source::{SourceFile, Sources, SpanTree};

/// A model read from disk: the typed stack, its text, and where every key is.
#[derive(Debug, Clone)]
pub struct Model {
    pub stack: Stack,
    pub sources: Sources,
    pub spans: SpanTree,
    /// Spans holding literal secret-looking values: masked in every excerpt.
    pub redactions: Vec<Range<usize>>,
    /// The alerts built into PromQL, on first use (see [`Model::built_alerts`]).
    alerts: OnceLock<Vec<Result<BuiltAlert, Vec<AlertProblem>>>>,
    /// Arrays of tables an overlay replaced, for `render` to say so.
    pub replaced: Vec<Replaced>,
}

/// An array of tables (such as `alerts`) that an overlay replaced rather than appended to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaced {
    pub overlay: PathBuf,
    /// Dotted key path of the array.
    pub path: String,
    pub before: usize,
    pub after: usize,
}

impl Model {
    /// Each alert of the model built into PromQL, or why it cannot be, in model order.
    /// Built once, on first use, for the rules that check them and the renderer that
    /// writes them: a test that edits `stack.alerts` does so before that.
    pub fn built_alerts(&self) -> &[Result<BuiltAlert, Vec<AlertProblem>>] {
        self.alerts.get_or_init(|| {
            let stack = &self.stack;
            // Thousands of alerts build in a few chunks on the machine's cores.
            let chunk = stack.alerts.len().div_ceil(4).max(1);
            let jobs: Vec<_> = stack
                .alerts
                .chunks(chunk)
                .map(|alerts| move || alerts.iter().map(|a| build_alert(stack, a)).collect())
                .collect();
            let jobs: Vec<&Job<'_, Vec<_>>> = jobs.iter().map(|job| job as _).collect();
            parallel::in_order(&jobs).into_iter().flatten().collect()
        })
    }
}

/// Keys whose string values are credentials; a literal string there is never accepted.
/// (`secret = "id"` inside a reference, `password_encryption`, `secrets_dir` are not.)
pub(super) fn looks_like_secret_key(key: &str) -> bool {
    crate::finding::is_credential_name(key)
}

/// Loads the base model and overlays, in order; later files override earlier ones.
pub fn load_files(paths: &[PathBuf]) -> Result<Model, Vec<Finding>> {
    let mut texts = Vec::new();
    for path in paths {
        // `-` is standard input, named `<stdin>` in messages; it can be read once.
        if path.as_os_str() == "-" {
            if texts.iter().any(|(p, _)| p == Path::new(STDIN_NAME)) {
                return Err(vec![Finding::io(
                    "`-f -` is given more than once: standard input can be read once".into(),
                )]);
            }
            match std::io::read_to_string(std::io::stdin()) {
                Ok(text) => texts.push((PathBuf::from(STDIN_NAME), text)),
                Err(error) => {
                    return Err(vec![Finding::io(format!(
                        "cannot read standard input: {error}"
                    ))]);
                }
            }
            continue;
        }
        match std::fs::read_to_string(path) {
            Ok(text) => texts.push((path.clone(), text)),
            Err(error) => {
                return Err(vec![Finding::io(format!(
                    "cannot read {}: {error}",
                    path.display()
                ))]);
            }
        }
    }
    load_texts(texts)
}

/// The name a model read from standard input (`-f -`) has in messages.
pub const STDIN_NAME: &str = "<stdin>";

/// Loads from in-memory texts (tests, benchmarks); names are used in messages.
pub fn load_texts(texts: Vec<(PathBuf, String)>) -> Result<Model, Vec<Finding>> {
    let mut sources = Sources::default();
    for (path, text) in texts {
        sources.add(&path, text);
    }
    let mut merged: Option<Spanned<DeTable<'_>>> = None;
    let mut findings = Vec::new();
    let mut replaced = Vec::new();
    for (index, file) in sources.files.iter().enumerate() {
        match DeTable::parse(&file.text) {
            Ok(table) => {
                let table = shift_table(table, file.base);
                merged = Some(match merged {
                    None => table,
                    Some(base) => {
                        let mut overlay = Overlay {
                            file: &file.path,
                            findings: &mut findings,
                            replaced: &mut replaced,
                            appended: Vec::new(),
                        };
                        debug_assert!(index > 0);
                        overlay.apply(base, table)
                    }
                });
            }
            Err(error) => findings.push(syntax_finding(&sources, file, &error)),
        }
    }
    if !findings.is_empty() {
        return Err(findings
            .into_iter()
            .map(|f| f.locate(&sources, &[]))
            .collect());
    }
    let Some(merged) = merged else {
        return Err(vec![Finding::io("no model file given".to_string())]);
    };

    let spans = table_spans(None, merged.span(), merged.get_ref());
    let mut redactions = Vec::new();
    collect_secret_literals(
        merged.get_ref(),
        &mut Vec::new(),
        &mut redactions,
        &mut findings,
    );

    // The shape of every value first (keys, types, ranges, classes), all at once and in
    // the model's words; deserialization stops at its first error and speaks serde, so it
    // is only heard when the walk found nothing.
    let shape = super::limits::check(&merged);
    let shape_found = !shape.is_empty();
    findings.extend(shape);
    let stack = Stack::deserialize(toml::de::Deserializer::from(merged));
    let mut model_stack = None;
    match stack {
        Ok(stack) => model_stack = Some(stack),
        Err(error) => {
            let span = error.span();
            // A literal secret already reported at that place says it better.
            let covered = shape_found
                || span.as_ref().is_some_and(|s| {
                    redactions
                        .iter()
                        .any(|r| r.start <= s.start && s.start <= r.end)
                });
            if !covered {
                findings.push(schema_finding(&error, span, &spans));
            }
        }
    }
    match model_stack {
        Some(stack) if findings.is_empty() => Ok(Model {
            stack,
            sources,
            spans,
            redactions,
            alerts: OnceLock::new(),
            replaced,
        }),
        _ => Err(findings
            .into_iter()
            .map(|f| f.locate(&sources, &redactions))
            .collect()),
    }
}

/// One overlay applied to the model so far. Its own keys `unset` (dotted paths to remove
/// first) and `append` (dotted paths of arrays whose entries it adds instead of replacing
/// them) steer the merge; every other key merges deeply, arrays replaced.
struct Overlay<'a> {
    file: &'a std::path::Path,
    findings: &'a mut Vec<Finding>,
    replaced: &'a mut Vec<Replaced>,
    /// Dotted paths whose arrays this overlay appends to (already combined).
    appended: Vec<String>,
}

impl Overlay<'_> {
    fn apply<'i>(
        &mut self,
        mut base: Spanned<DeTable<'i>>,
        mut overlay: Spanned<DeTable<'i>>,
    ) -> Spanned<DeTable<'i>> {
        let unset = self.take_paths(&mut overlay, "unset");
        let append = self.take_paths(&mut overlay, "append");
        for (path, span) in &unset {
            if !remove_path(base.get_mut(), path) {
                self.findings.push(self.names_nothing(
                    "unset",
                    path,
                    span.clone(),
                    "in the model it applies to",
                ));
            }
        }
        for (path, span) in &append {
            let Some(added) = array_at(overlay.get_mut(), path) else {
                self.findings.push(self.names_nothing(
                    "append",
                    path,
                    span.clone(),
                    "in this overlay",
                ));
                continue;
            };
            // Nothing before it: the overlay's entries are all there is.
            let Some(existing) = array_at(base.get_mut(), path) else {
                continue;
            };
            let mut combined = std::mem::replace(existing, toml::de::DeArray::new());
            for item in std::mem::replace(added, toml::de::DeArray::new()) {
                combined.push(item);
            }
            *added = combined;
            self.appended.push(path.join("."));
        }
        let span = base.span();
        let mut at = Vec::new();
        Spanned::new(
            span,
            self.merge_maps(&mut at, base.into_inner(), overlay.into_inner()),
        )
    }

    /// Takes the overlay's list of dotted paths under `key` out of the table, with spans.
    fn take_paths(
        &mut self,
        table: &mut Spanned<DeTable<'_>>,
        key: &str,
    ) -> Vec<(Vec<String>, Range<usize>)> {
        let Some(value) = table.get_mut().remove(key) else {
            return Vec::new();
        };
        let span = value.span();
        let bad = |span: Range<usize>| {
            Finding::new(
                "TG002",
                Severity::Error,
                format!("`{key}` must be an array of dotted key paths"),
            )
            .with_path(key)
            .with_span(span)
            .with_help(format!("write e.g. `{key} = [\"alerts\"]`"))
        };
        let DeValue::Array(items) = value.into_inner() else {
            self.findings.push(bad(span));
            return Vec::new();
        };
        let mut paths = Vec::new();
        for item in items.iter() {
            match item.get_ref() {
                DeValue::String(path) => {
                    paths.push((path.split('.').map(str::to_string).collect(), item.span()))
                }
                _ => self.findings.push(bad(item.span())),
            }
        }
        paths
    }

    fn names_nothing(
        &self,
        key: &str,
        path: &[String],
        span: Range<usize>,
        place: &str,
    ) -> Finding {
        let dotted = path.join(".");
        Finding::new(
            "TG003",
            Severity::Error,
            format!("`{key}` names `{dotted}`, which is not {place}"),
        )
        .with_path(key)
        .with_span(span)
        .with_help(match key {
            "append" => "name an array of tables this overlay also writes, e.g. `append = [\"alerts\"]` with `[[alerts]]` entries below".to_string(),
            _ => format!("check the spelling of `{dotted}` against the model and the overlays before this one"),
        })
    }

    fn merge_maps<'i>(
        &mut self,
        at: &mut Vec<String>,
        mut base: DeTable<'i>,
        overlay: DeTable<'i>,
    ) -> DeTable<'i> {
        for (key, value) in overlay {
            let name: &str = key.get_ref().as_ref();
            let value = match base.remove(name) {
                Some(old) => {
                    at.push(name.to_string());
                    let merged = self.merge_values(at, old, value);
                    at.pop();
                    merged
                }
                None => value,
            };
            base.insert(key, value);
        }
        base
    }

    fn merge_values<'i>(
        &mut self,
        at: &mut Vec<String>,
        old: Spanned<DeValue<'i>>,
        new: Spanned<DeValue<'i>>,
    ) -> Spanned<DeValue<'i>> {
        let span = new.span();
        match (old.into_inner(), new.into_inner()) {
            (DeValue::Table(old), DeValue::Table(new)) => {
                Spanned::new(span, DeValue::Table(self.merge_maps(at, old, new)))
            }
            (DeValue::Array(old), DeValue::Array(new)) => {
                let of_tables = |items: &[Spanned<DeValue<'_>>]| {
                    items
                        .first()
                        .is_some_and(|i| matches!(i.get_ref(), DeValue::Table(_)))
                };
                let path = at.join(".");
                if (of_tables(&old) || of_tables(&new)) && !self.appended.contains(&path) {
                    self.replaced.push(Replaced {
                        overlay: self.file.to_path_buf(),
                        path,
                        before: old.len(),
                        after: new.len(),
                    });
                }
                Spanned::new(span, DeValue::Array(new))
            }
            (_, new) => Spanned::new(span, new),
        }
    }
}

/// Removes the value at `path`; false when nothing is there.
fn remove_path(table: &mut DeTable<'_>, path: &[String]) -> bool {
    match path {
        [] => false,
        [last] => table.remove(last.as_str()).is_some(),
        [first, rest @ ..] => match table.get_mut(first.as_str()).map(|v| v.get_mut()) {
            Some(DeValue::Table(inner)) => remove_path(inner, rest),
            _ => false,
        },
    }
}

/// The array at `path`, if that is what is there.
fn array_at<'t, 'i>(
    table: &'t mut DeTable<'i>,
    path: &[String],
) -> Option<&'t mut toml::de::DeArray<'i>> {
    match path {
        [] => None,
        [last] => match table.get_mut(last.as_str())?.get_mut() {
            DeValue::Array(items) => Some(items),
            _ => None,
        },
        [first, rest @ ..] => match table.get_mut(first.as_str())?.get_mut() {
            DeValue::Table(inner) => array_at(inner, rest),
            _ => None,
        },
    }
}

fn syntax_finding(sources: &Sources, file: &SourceFile, error: &toml::de::Error) -> Finding {
    let span = error
        .span()
        .map(|s| s.start + file.base..s.end + file.base)
        .unwrap_or(file.base..file.base);
    Finding::new(
        "TG001",
        Severity::Error,
        format!(
            "{} is not valid TOML: {}",
            file.path.display(),
            error.message().trim()
        ),
    )
    .with_span(span)
    .with_help("fix the TOML syntax at the marked place")
    .locate(sources, &[])
}

fn schema_finding(
    error: &toml::de::Error,
    span: Option<Range<usize>>,
    spans: &SpanTree,
) -> Finding {
    let message = error.message().trim().to_string();
    let mut finding = Finding::new("TG002", Severity::Error, describe_schema_error(&message));
    if let Some(span) = span {
        finding = finding.with_span(span.clone());
        if let Some(path) = path_at(spans, &span) {
            finding.path = path;
        }
    }
    if let Some(help) = schema_help(&message) {
        finding = finding.with_help(help);
    }
    finding
}

fn describe_schema_error(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((field, _)) = rest.split_once('`')
    {
        return format!("unknown key `{field}`");
    }
    message.replace("Stack", "the model")
}

/// "did you mean" for unknown keys and variants, from serde's list of expected names.
fn schema_help(message: &str) -> Option<String> {
    let (unknown, expected) = if let Some(rest) = message.strip_prefix("unknown field `") {
        let (field, rest) = rest.split_once('`')?;
        (field, rest)
    } else if let Some(rest) = message.strip_prefix("unknown variant `") {
        let (variant, rest) = rest.split_once('`')?;
        (variant, rest)
    } else if message.starts_with("missing field") {
        return Some(
            "add the missing key (see `tgstack schema` for every key and its default)".into(),
        );
    } else {
        return Some("see `tgstack schema` for the expected type of this key".into());
    };
    let candidates: Vec<&str> = expected
        .split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s)
        .collect();
    match crate::suggest::closest(unknown, candidates.iter().copied()) {
        Some(best) => Some(format!("did you mean `{best}`?")),
        None if !candidates.is_empty() => Some(format!(
            "expected one of: {}",
            candidates
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        None => None,
    }
}

/// The model path of the deepest node whose key or value contains `span`.
pub fn path_at(tree: &SpanTree, span: &Range<usize>) -> Option<String> {
    fn walk(node: &SpanTree, span: &Range<usize>, path: &mut Vec<String>) -> bool {
        for (name, child) in &node.children {
            let hit = child.value.start <= span.start
                && span.start < child.value.end.max(child.value.start + 1)
                || child
                    .key
                    .as_ref()
                    .is_some_and(|k| k.start <= span.start && span.start < k.end);
            if hit {
                path.push(name.clone());
                walk(child, span, path);
                return true;
            }
        }
        for (index, item) in node.items.iter().enumerate() {
            if item.value.start <= span.start && span.start < item.value.end {
                path.push(index.to_string());
                walk(item, span, path);
                return true;
            }
        }
        false
    }
    let mut path = Vec::new();
    walk(tree, span, &mut path);
    (!path.is_empty()).then(|| path.join("."))
}

fn collect_secret_literals(
    table: &DeTable<'_>,
    path: &mut Vec<String>,
    redactions: &mut Vec<Range<usize>>,
    findings: &mut Vec<Finding>,
) {
    for (key, value) in table {
        path.push(key.get_ref().to_string());
        // `[secrets.api_key]` declares a secret (checked below); elsewhere such a key holds one.
        let secret_key = looks_like_secret_key(key.get_ref()) && path[0] != "secrets";
        // `[secrets.<id>]` declares a variable and a description; anything else written
        // there is most likely the value itself.
        let in_declaration = path.len() == 3
            && path[0] == "secrets"
            && !matches!(path[2].as_str(), "env" | "description");
        if in_declaration {
            redactions.push(value.span());
            path.pop();
            continue;
        }
        match value.get_ref() {
            // A reference: `{ secret = "<id>" }` and nothing else.
            DeValue::Table(inner) if secret_key && is_secret_reference(inner) => {}
            // Any other shape at a secret-bearing key (a number, an array, a table with
            // other keys) may hold the secret: hidden everywhere, reported without it.
            value_shape if secret_key && !matches!(value_shape, DeValue::String(_)) => {
                redactions.push(value.span());
                findings.push(
                    Finding::new(
                        "TG002",
                        Severity::Error,
                        format!(
                            "`{}` must be a reference `{{ secret = \"<id>\" }}` (the value written there is not shown)",
                            path.join(".")
                        ),
                    )
                    .with_path(path.join("."))
                    .with_span(value.span())
                    .with_help(
                        "declare the secret under [secrets] as `{ env = \"VAR\" }` and reference it here as `{ secret = \"<id>\" }`",
                    ),
                );
            }
            DeValue::String(_) if secret_key => {
                redactions.push(value.span());
                findings.push(literal_secret(
                    path,
                    value.span(),
                    "secrets are never written in the model",
                    "declare the secret under [secrets] as `{ env = \"VAR\" }` and reference it here as `{ secret = \"<id>\" }`",
                ));
            }
            DeValue::String(text) if crate::finding::url_password(text).is_some() => {
                redactions.push(value.span());
                findings.push(literal_secret(
                    path,
                    value.span(),
                    "a URL with a password in it",
                    "leave the credentials out of the URL; the stack reads passwords from [secrets]",
                ));
            }
            DeValue::Table(inner) => collect_secret_literals(inner, path, redactions, findings),
            DeValue::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    if let DeValue::Table(inner) = item.get_ref() {
                        path.push(index.to_string());
                        collect_secret_literals(inner, path, redactions, findings);
                        path.pop();
                    }
                }
            }
            _ => {}
        }
        path.pop();
    }
}

/// TG104 at `path`, never holding the value.
fn literal_secret(path: &[String], span: Range<usize>, why: &str, help: &str) -> Finding {
    let at = path.join(".");
    Finding::new(
        "TG104",
        Severity::Error,
        format!("literal secret at `{at}`: {why}"),
    )
    .with_path(at)
    .with_span(span)
    .with_help(help)
}

/// `{ secret = "<id>" }`: one key, `secret`, holding a string.
fn is_secret_reference(table: &DeTable<'_>) -> bool {
    table.len() == 1
        && table
            .get("secret")
            .is_some_and(|value| matches!(value.get_ref(), DeValue::String(_)))
}

fn span_tree(key: Option<Range<usize>>, span: Range<usize>, value: &DeValue<'_>) -> SpanTree {
    match value {
        DeValue::Table(table) => table_spans(key, span, table),
        DeValue::Array(items) => SpanTree {
            key,
            value: span,
            items: items
                .iter()
                .map(|item| span_tree(None, item.span(), item.get_ref()))
                .collect(),
            ..SpanTree::default()
        },
        _ => SpanTree {
            key,
            value: span,
            ..SpanTree::default()
        },
    }
}

fn table_spans(key: Option<Range<usize>>, span: Range<usize>, table: &DeTable<'_>) -> SpanTree {
    SpanTree {
        key,
        value: span,
        children: table
            .iter()
            .map(|(k, v)| {
                let child = span_tree(Some(k.span()), v.span(), v.get_ref());
                (k.get_ref().to_string(), child)
            })
            .collect(),
        ..SpanTree::default()
    }
}

fn shift(span: Range<usize>, by: usize) -> Range<usize> {
    span.start + by..span.end + by
}

fn shift_table(table: Spanned<DeTable<'_>>, by: usize) -> Spanned<DeTable<'_>> {
    if by == 0 {
        return table;
    }
    let span = shift(table.span(), by);
    Spanned::new(span, shift_map(table.into_inner(), by))
}

fn shift_map(table: DeTable<'_>, by: usize) -> DeTable<'_> {
    let mut out = DeTable::new();
    for (key, value) in table {
        let key = Spanned::new(shift(key.span(), by), key.into_inner());
        out.insert(key, shift_value(value, by));
    }
    out
}

fn shift_value(value: Spanned<DeValue<'_>>, by: usize) -> Spanned<DeValue<'_>> {
    let span = shift(value.span(), by);
    let inner = match value.into_inner() {
        DeValue::Table(table) => DeValue::Table(shift_map(table, by)),
        DeValue::Array(items) => DeValue::Array(
            items
                .into_iter()
                .map(|item| shift_value(item, by))
                .collect(),
        ),
        other => other,
    };
    Spanned::new(span, inner)
}
