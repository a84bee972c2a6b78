//! postgresql.conf against `pg_settings` of the pinned PostgreSQL.

use super::Issue;
use super::catalog::Catalog;
use super::values::{postgres_bool, postgres_number};
use crate::check::artifacts::parse;

/// Enum values `pg_settings.enumvals` of the catalog's build does not list: aliases kept
/// for old configs, and compression methods a build has only with lz4/zstd, which the
/// Debian packages and the official images are built with (the 16 catalog's build is not).
const HIDDEN_ENUM_VALUES: &[(&str, &[&str])] = &[
    ("wal_level", &["archive", "hot_standby"]),
    ("default_toast_compression", &["lz4"]),
    ("wal_compression", &["lz4", "zstd"]),
];

pub fn postgresql_conf(text: &str, catalog: &Catalog) -> Vec<Issue> {
    let (settings, syntax) = parse::settings(text);
    let mut issues = Issue::from_syntax(syntax);
    let program = format!("PostgreSQL {}", catalog.version);
    for s in &settings {
        let key = s.key.as_str();
        // Directives of the file format, and `prefix.name` placeholders for extensions.
        if matches!(key, "include" | "include_dir" | "include_if_exists") || key.contains('.') {
            continue;
        }
        let row = catalog.get(key).or_else(|| {
            let folded = catalog.keys().find(|k| k.eq_ignore_ascii_case(key))?;
            catalog.get(folded)
        });
        let Some(row) = row else {
            issues.push(Issue::unknown(
                s.line,
                "parameter",
                key,
                &program,
                catalog.keys(),
            ));
            continue;
        };
        if let Some(problem) = value_problem(row, &s.value) {
            issues.push(Issue::new(
                s.line,
                format!("{key} = '{}': {problem} ({program})", s.value),
                "see the parameter in the PostgreSQL documentation".to_string(),
            ));
        }
    }
    issues
}

/// Why `value` is not valid for the parameter of `row`
/// (name, type, unit, min, max, enumvals, context).
fn value_problem(row: &[&str], value: &str) -> Option<String> {
    let column = |i: usize| row.get(i).copied().unwrap_or("");
    let (name, kind, unit, context) = (column(0), column(1), column(2), column(6));
    if context == "internal" {
        return Some("is fixed when PostgreSQL is built and cannot be set".into());
    }
    match kind {
        "bool" if !postgres_bool(value) => Some("is not a boolean (on/off)".into()),
        "enum" => {
            let allowed: Vec<&str> = column(5).split(',').collect();
            let hidden = HIDDEN_ENUM_VALUES
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| *v)
                .unwrap_or(&[]);
            let known = allowed.iter().chain(hidden).any(|a| a.eq_ignore_ascii_case(value))
                // on/off enums also take every boolean spelling.
                || (allowed.contains(&"on") && postgres_bool(value));
            (!known).then(|| format!("is not one of {}", allowed.join(", ")))
        }
        "integer" | "real" => {
            let number = match postgres_number(value, unit) {
                Ok(n) => n,
                Err(why) => return Some(why),
            };
            let bound = |i: usize| column(i).parse::<f64>().ok();
            let rounded = if kind == "integer" {
                number.round()
            } else {
                number
            };
            match (bound(3), bound(4)) {
                (Some(min), _) if rounded < min => {
                    Some(format!("is below the minimum {min}{unit}"))
                }
                (_, Some(max)) if rounded > max => {
                    Some(format!("is above the maximum {max}{unit}"))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::catalog::POSTGRESQL_16;
    use super::*;

    fn messages(text: &str) -> Vec<String> {
        postgresql_conf(text, &POSTGRESQL_16)
            .into_iter()
            .map(|i| i.message)
            .collect()
    }

    #[test]
    fn real_parameters_and_values_pass() {
        let text = "shared_buffers = 2GB\nlog_min_duration_statement = 250ms\n\
            wal_level = logical\nsynchronous_commit = off\nDateStyle = 'iso, mdy'\n\
            autovacuum_vacuum_scale_factor = 0.05\ntimescaledb.max_background_workers = 8\n\
            huge_pages = try\nlog_line_prefix = '%m [%p] '\ncheckpoint_timeout = 15min\n";
        assert_eq!(messages(text), Vec::<String>::new());
    }

    #[test]
    fn wrong_names_types_units_ranges_and_enums_are_found() {
        let found = messages(
            "shared_buffer = 1GB\nwork_mem = 64mb\nmax_connections = 0\nwal_level = full\n\
             fsync = maybe\nblock_size = 16384\ncheckpoint_timeout = 2d\n",
        );
        assert_eq!(found.len(), 7, "{found:#?}");
        assert!(found[0].contains("unknown parameter `shared_buffer`"));
        assert!(found[1].contains("case-sensitive"));
        assert!(found[2].contains("below the minimum"));
        assert!(found[3].contains("not one of minimal, replica, logical"));
        assert!(found[4].contains("not a boolean"));
        assert!(found[5].contains("cannot be set"));
        assert!(found[6].contains("above the maximum"));
    }
}
