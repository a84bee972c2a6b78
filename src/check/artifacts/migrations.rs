//! SQL migrations re-read from the tree: every statement parsed (TimescaleDB-only
//! statements recognised explicitly by `check::sql`), ON CONFLICT targets deterministic
//! unique keys (17), every DDL statement idempotent (19), no session-level state in
//! functions called through the pooler (18).

use super::Files;
use crate::check::Ctx;
use crate::check::index::Index;
use crate::finding::Severity;
use crate::model::{Kind, PostgresVariant, paths};

pub fn run(cx: &mut Ctx<'_>, files: &Files<'_>, index: &Index<'_>) {
    let stack = cx.stack();
    for (name, service) in &stack.services {
        if service.kind != Kind::Postgres {
            continue;
        }
        let path = format!("services.{name}.postgres");
        let behind_pooler = index.transaction_pooled(name);
        for &variant in &[PostgresVariant::Timescaledb, PostgresVariant::Plain] {
            let prefix = format!("{}/", paths::migrations_dir(name, variant));
            let scripts: Vec<(String, String)> = files
                .under(&prefix)
                .filter(|p| p.ends_with(".sql"))
                .filter_map(|p| files.text(p).map(|t| (p.clone(), t.to_string())))
                .collect();
            for issue in crate::check::sql::check_sql_files(&scripts) {
                cx.report_file(
                    "TG401",
                    Severity::Error,
                    &path,
                    &issue.file,
                    Some(issue.line as usize),
                    format!("{}: {}", issue.file, issue.message),
                    "fix the statement in the model's SQL settings, or re-render".into(),
                );
            }
            for (file, text) in &scripts {
                idempotent(cx, &path, file, text);
                literal_passwords(cx, &path, file, text);
                if behind_pooler {
                    session_state(cx, &path, file, text);
                }
            }
        }
        let roles = paths::roles_sql(name);
        if let Some(text) = files.text(&roles) {
            literal_passwords(cx, &path, &roles, text);
        }
    }
}

/// The arguments of the call whose `(` is at `open` in `text`, split at top-level commas
/// (strings and nested parentheses respected), with where the call ends.
fn call_args(text: &str, open: usize) -> (Vec<&str>, usize) {
    let bytes = text.as_bytes();
    let (mut depth, mut start, mut quoted) = (0usize, open + 1, false);
    let mut args = Vec::new();
    for (i, &b) in bytes.iter().enumerate().skip(open) {
        match b {
            b'\'' => quoted = !quoted,
            _ if quoted => {}
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    args.push(text[start..i].trim());
                    return (args, i);
                }
            }
            b',' if depth == 1 => {
                args.push(text[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    (args, text.len())
}

/// A password written into SQL: `PASSWORD '...'`, or a `format('... PASSWORD %L ...')`
/// whose password argument is a literal rather than a psql variable (`:'name'`). The
/// value is never repeated.
fn literal_passwords(cx: &mut Ctx<'_>, path: &str, file: &str, text: &str) {
    let upper = text.to_ascii_uppercase();
    let line_of = |at: usize| text[..at].matches('\n').count() + 1;
    let mut report = |at: usize| {
        cx.report_file(
            "TG104",
            Severity::Error,
            path,
            file,
            Some(line_of(at)),
            format!("{file}: a password written into the SQL"),
            "pass it as a psql variable (`:'name'`), as the rendered roles.sql does".into(),
        );
    };
    for (at, _) in upper.match_indices("PASSWORD '") {
        report(at);
    }
    for (at, _) in upper.match_indices("FORMAT(") {
        let (args, _) = call_args(text, at + "format".len());
        let Some(template) = args.first() else {
            continue;
        };
        let template_upper = template.to_ascii_uppercase();
        let Some(password_at) = template_upper.find("PASSWORD %L") else {
            continue;
        };
        // Which argument fills the password's %L: count the placeholders before it.
        let before = &template[..password_at];
        let index = ["%I", "%L", "%s"]
            .iter()
            .map(|p| before.matches(p).count())
            .sum::<usize>()
            + 1;
        if let Some(argument) = args.get(index)
            && argument.starts_with('\'')
        {
            report(at);
        }
    }
}

/// Incident 19: applying a migration twice must change nothing and not fail.
fn idempotent(cx: &mut Ctx<'_>, path: &str, file: &str, text: &str) {
    // Lines that begin inside a string, a comment or a function body are not statements;
    // a `;` or `$$` inside a value does not end or open anything.
    let code = crate::check::sql::rows::code_mask(text);
    // Byte offset of the current line, kept as we go (summing the lines before each
    // INSERT again would be quadratic in a long migration).
    let mut offset = 0;
    for (index, line) in text.lines().enumerate() {
        let start = offset;
        offset += line.len() + 1;
        let upper = line.trim().to_ascii_uppercase();
        let first = start + (line.len() - line.trim_start().len());
        if upper.is_empty() || !code.get(first).copied().unwrap_or(false) || upper.starts_with("--")
        {
            continue;
        }
        let needs = [
            ("CREATE TABLE ", "IF NOT EXISTS"),
            ("CREATE UNLOGGED TABLE ", "IF NOT EXISTS"),
            ("CREATE INDEX ", "IF NOT EXISTS"),
            ("CREATE UNIQUE INDEX ", "IF NOT EXISTS"),
            ("CREATE SCHEMA ", "IF NOT EXISTS"),
            ("CREATE MATERIALIZED VIEW ", "IF NOT EXISTS"),
            ("CREATE EXTENSION ", "IF NOT EXISTS"),
            ("CREATE SEQUENCE ", "IF NOT EXISTS"),
            ("CREATE FUNCTION ", "OR REPLACE"),
            ("CREATE VIEW ", "OR REPLACE"),
        ];
        for (statement, guard) in needs {
            if upper.starts_with(statement) && !upper.contains(guard) {
                cx.report_file(
                    "TG403",
                    Severity::Error,
                    path,
                    file,
                    Some(index + 1),
                    format!(
                        "{file}: `{}` fails when the migration runs twice",
                        statement.trim()
                    ),
                    format!("write `{} {guard}`", statement.trim()),
                );
            }
        }
        // The statement runs to the first `;` that is code.
        let statement_end = || {
            (start..text.len())
                .find(|&i| code[i] && text.as_bytes()[i] == b';')
                .unwrap_or(text.len())
        };
        if upper.starts_with("INSERT INTO")
            && !text[start..statement_end()]
                .to_ascii_uppercase()
                .contains("ON CONFLICT")
        {
            cx.report_file("TG403", Severity::Error, path, file, Some(index + 1), format!("{file}: INSERT without ON CONFLICT fails or duplicates when the migration runs twice"), "add ON CONFLICT ... DO NOTHING / DO UPDATE".into());
        }
    }
}

/// Incident 18: session-level state inside functions the app calls through the pooler.
fn session_state(cx: &mut Ctx<'_>, path: &str, file: &str, text: &str) {
    for (index, line) in text.lines().enumerate() {
        let lower = line.to_ascii_lowercase();
        let code = lower.split("--").next().unwrap_or("");
        if code.contains("pg_advisory_lock(") || code.contains("pg_advisory_lock_shared(") {
            cx.report_file("TG402", Severity::Error, path, file, Some(index + 1), format!("{file}: session-level advisory lock behind transaction pooling: it stays on a server connection other clients get"), "use pg_advisory_xact_lock (released at commit)".into());
        }
        // set_config(name, value, false) sets it for the session, not the transaction.
        if let Some(at) = code.find("set_config(") {
            let (args, _) = call_args(code, at + "set_config".len());
            if args.get(2).is_some_and(|local| *local == "false") {
                cx.report_file("TG402", Severity::Error, path, file, Some(index + 1), format!("{file}: set_config(..., false) sets session state the next transaction of another client inherits"), "pass true (transaction-local), or use a function's SET clause".into());
            }
        }
        let trimmed = code.trim_start();
        if trimmed.starts_with("set search_path") || trimmed.starts_with("set session ") {
            cx.report_file("TG402", Severity::Error, path, file, Some(index + 1), format!("{file}: `SET` changes session state the next transaction of another client inherits"), "use SET LOCAL, a function's SET clause, or schema-qualified names".into());
        }
    }
}
