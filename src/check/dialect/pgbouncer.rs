//! pgbouncer.ini against the settings table of the pinned PgBouncer.

use super::Issue;
use super::catalog::Catalog;
use crate::check::artifacts::parse;

/// The admin console's database name: a `[databases]` entry of that name stops PgBouncer.
pub const RESERVED_DATABASE: &str = "pgbouncer";

pub fn pgbouncer_ini(text: &str, catalog: &Catalog) -> Vec<Issue> {
    let (entries, mut syntax) = parse::ini(text);
    // `%include FILE` is PgBouncer's own directive, not a malformed setting.
    syntax.retain(|s| {
        let line = text.lines().nth(s.line - 1).unwrap_or("");
        !line.trim_start().starts_with("%include")
    });
    let mut issues = Issue::from_syntax(syntax);
    let program = format!("PgBouncer {}", catalog.version);
    for entry in &entries {
        if let Some(at) = inline_comment(&entry.value) {
            issues.push(Issue::new(
                entry.line,
                format!(
                    "`{}` has a comment after its value (`{}`): PgBouncer takes comments only at the start of a line \
                     and refuses the value",
                    entry.key,
                    crate::finding::mask_credentials(&entry.value[at..])
                ),
                "move the comment to a line of its own",
            ));
            continue;
        }
        match entry.section.as_str() {
            "pgbouncer" => match catalog.get(&entry.key) {
                None => issues.push(Issue::unknown(
                    entry.line,
                    "setting",
                    &entry.key,
                    &program,
                    catalog.keys(),
                )),
                Some(row) => {
                    if let Some(problem) = value_problem(row, &entry.value) {
                        issues.push(Issue::new(
                            entry.line,
                            format!("{} = {}: {problem} ({program})", entry.key, entry.value),
                            "see the setting in PgBouncer's documentation",
                        ));
                    }
                }
            },
            "databases" if entry.key.eq_ignore_ascii_case(RESERVED_DATABASE) => {
                issues.push(Issue::new(
                    entry.line,
                    "a database named `pgbouncer` in [databases]: the name is reserved for the admin console \
                     and PgBouncer refuses to start",
                    "give the database another name",
                ))
            }
            "databases" | "users" | "peers" => {}
            other => issues.push(Issue::new(
                entry.line,
                format!("unknown section `[{other}]` ({program})"),
                "PgBouncer reads [databases], [users], [peers] and [pgbouncer]",
            )),
        }
    }
    issues
}

/// Where a `;` or `#` comment starts after whitespace inside a value.
fn inline_comment(value: &str) -> Option<usize> {
    let bytes = value.as_bytes();
    (1..bytes.len())
        .find(|&i| matches!(bytes[i], b';' | b'#') && bytes[i - 1].is_ascii_whitespace())
}

/// Why `value` is not valid for the setting of `row` (name, type, enumvals).
fn value_problem(row: &[&str], value: &str) -> Option<String> {
    let (kind, values) = (row.get(1).copied()?, row.get(2).copied().unwrap_or(""));
    match kind {
        "int" if value.parse::<i64>().is_err() => Some("is not an integer".into()),
        "uint" if value.parse::<u64>().is_err() => Some("is not a non-negative integer".into()),
        "time_usec" if value.parse::<f64>().is_err() => {
            Some("is not a number of seconds (PgBouncer takes no unit suffix)".into())
        }
        "enum" if !values.split(',').any(|v| v.eq_ignore_ascii_case(value)) => {
            Some(format!("is not one of {}", values.replace(',', ", ")))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::catalog::PGBOUNCER_1_23;
    use super::*;

    #[test]
    fn inline_comments_reserved_names_types_and_enums() {
        let text = "[databases]\npgbouncer = host=db\napp = host=db dbname=app\n[pgbouncer]\n\
            max_client_conn = 500 ;; raised for the batch job\npool_mode = transactions\n\
            server_lifetime = 1h\nmax_prepared_statements = 200\nlisten_port = 6432\n";
        let found: Vec<String> = pgbouncer_ini(text, &PGBOUNCER_1_23)
            .into_iter()
            .map(|i| i.message)
            .collect();
        assert_eq!(found.len(), 4, "{found:#?}");
        assert!(found[0].contains("reserved"));
        assert!(found[1].contains("only at the start of a line"));
        assert!(found[2].contains("not one of session, transaction, statement"));
        assert!(found[3].contains("no unit suffix"));
    }
}
