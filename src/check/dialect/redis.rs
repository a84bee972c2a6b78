//! redis.conf and sentinel.conf against the config table of the pinned Redis and the
//! subcommands Sentinel's config loader accepts.

use super::Issue;
use super::catalog::{Catalog, SENTINEL_7_0, SENTINEL_7_4};
use super::values::redis_number;
use crate::check::artifacts::parse::{self, Directive};

/// Directives whose arguments are credentials.
const SECRET_DIRECTIVES: &[&str] = &[
    "requirepass",
    "masterauth",
    "user",
    "tls-key-file-pass",
    "tls-client-key-file-pass",
];

pub fn redis_conf(text: &str, catalog: &Catalog) -> Vec<Issue> {
    let (directives, syntax) = parse::redis_conf(text);
    let mut issues = Issue::from_syntax(syntax);
    for d in &directives {
        issues.extend(directive_problem(d, catalog));
    }
    issues
}

/// sentinel.conf: `sentinel <subcommand> ...` lines against Sentinel's loader, every other
/// line against Redis's own table (Sentinel reads port, dir, logfile and the rest too).
pub fn sentinel_conf(text: &str, catalog: &Catalog) -> Vec<Issue> {
    let (directives, syntax) = parse::redis_conf(text);
    let mut issues = Issue::from_syntax(syntax);
    // Sentinel is redis-server in another mode: the same release as the Redis catalog.
    let sentinel: &Catalog = if catalog.version == SENTINEL_7_0.version {
        &SENTINEL_7_0
    } else {
        &SENTINEL_7_4
    };
    let program = format!("Redis Sentinel {}", sentinel.version);
    for d in &directives {
        if d.name() != "sentinel" {
            issues.extend(directive_problem(d, catalog));
            continue;
        }
        let sub = d.arg(0).unwrap_or("").to_ascii_lowercase();
        let Some(row) = sentinel.get(&sub) else {
            issues.push(Issue::unknown(
                d.line,
                "sentinel subcommand",
                &sub,
                &program,
                sentinel.keys(),
            ));
            continue;
        };
        let argc = d.words.len() - 1;
        if !arity_allows(row.get(1).copied().unwrap_or(""), argc) {
            issues.push(Issue::new(
                d.line,
                format!(
                    "`sentinel {sub}` takes {} words after `sentinel`, this line has {argc} \
                    ({program})",
                    row[1],
                ),
                "see the subcommand in the Sentinel documentation",
            ));
        }
    }
    issues
}

/// `arity` of a catalog (`5`, `>=2`, `4|5`) allows `argc` words.
fn arity_allows(arity: &str, argc: usize) -> bool {
    arity.split('|').any(|a| match a.strip_prefix(">=") {
        Some(min) => min.parse().is_ok_and(|m: usize| argc >= m),
        None => a.parse() == Ok(argc),
    })
}

/// Finds a directive by name or alias (`slaveof` for `replicaof`), case-insensitively.
fn lookup<'c>(catalog: &'c Catalog, name: &str) -> Option<&'c [&'static str]> {
    catalog.get(name).or_else(|| {
        let key = catalog
            .keys()
            .find(|k| catalog.get(k).is_some_and(|row| row.get(1) == Some(&name)))?;
        catalog.get(key)
    })
}

/// Why one directive is not valid for Redis (row: name, alias, type, flags, min, max,
/// enumvals).
fn directive_problem(d: &Directive, catalog: &Catalog) -> Option<Issue> {
    let program = format!("Redis {}", catalog.version);
    let name = d.name();
    let Some(row) = lookup(catalog, &name) else {
        let hint = if name == "sentinel" {
            " (only sentinel.conf, read by redis-sentinel, takes it)"
        } else {
            ""
        };
        let mut issue = Issue::unknown(d.line, "directive", &name, &program, catalog.keys());
        issue.message.push_str(hint);
        return Some(issue);
    };
    let column = |i: usize| row.get(i).copied().unwrap_or("");
    let (kind, flags) = (column(2), column(3));
    let args = &d.words[1..];
    // The value of a credential directive is never quoted back.
    let shown = if SECRET_DIRECTIVES.contains(&name.as_str()) {
        "<redacted>".to_string()
    } else {
        args.join(" ")
    };
    let bad = |problem: String| {
        Some(Issue::new(
            d.line,
            format!("{name} {shown}: {problem} ({program})"),
            "see the directive in redis.conf's documentation".to_string(),
        ))
    };
    // Accepted and ignored by Redis (its `deprecated_configs`).
    if kind == "deprecated" {
        return None;
    }
    if kind == "directive" {
        return (!arity_allows(column(4), d.words.len()))
            .then(|| bad(format!("takes {} words", column(4))))
            .flatten();
    }
    let multi = flags.split(',').any(|f| f == "multi");
    if !multi && args.len() != 1 {
        return bad(format!(
            "takes exactly one value, this line has {}",
            args.len()
        ));
    }
    if multi && args.is_empty() {
        return bad("needs a value".into());
    }
    match kind {
        "bool" if !["yes", "no"].contains(&args[0].to_ascii_lowercase().as_str()) => {
            bad("is not yes or no".into())
        }
        "enum" => {
            let allowed: Vec<&str> = column(6).split(',').collect();
            let unknown = args
                .iter()
                .find(|a| !allowed.iter().any(|v| v.eq_ignore_ascii_case(a)))?;
            bad(format!("`{unknown}` is not one of {}", allowed.join(", ")))
        }
        "integer" => {
            let memory = flags.contains("memory");
            let number = if flags.contains("octal") {
                i64::from_str_radix(&args[0], 8).ok().map(|n| n as f64)
            } else {
                redis_number(&args[0], memory, flags.contains("percent"))
            };
            let Some(number) = number else {
                let what = if memory {
                    "a size (e.g. 256mb)"
                } else {
                    "an integer"
                };
                return bad(format!("is not {what}"));
            };
            let bound = |i: usize| match flags.contains("octal") {
                true => i64::from_str_radix(column(i), 8).ok().map(|n| n as f64),
                false => column(i).parse::<f64>().ok(),
            };
            match (bound(4), bound(5)) {
                (Some(min), _) if number < min => bad(format!("is below the minimum {min}")),
                (_, Some(max)) if number > max => bad(format!("is above the maximum {max}")),
                _ => None,
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::catalog::REDIS_7_4;
    use super::*;

    fn messages(issues: Vec<Issue>) -> Vec<String> {
        issues.into_iter().map(|i| i.message).collect()
    }

    #[test]
    fn redis_directives_values_and_aliases() {
        let good = "maxmemory 2gb\nmaxmemory-policy allkeys-lfu\nslaveof 10.0.0.2 6379\n\
            save 900 1 300 10\nappendonly yes\nhz 50\nrename-command FLUSHALL \"\"\n\
            lazyfree-lazy-user-del yes\nlatency-tracking-info-percentiles 50 99 99.9\n";
        assert_eq!(messages(redis_conf(good, &REDIS_7_4)), Vec::<String>::new());
        let bad = "maxmemory lots\nmaxmemory-policy lru\nappendonly true\ndatabases 0\n\
            port 6379 6380\nsentinel monitor m 10.0.0.1 6379 2\nmaxmemroy 1gb\n";
        let found = messages(redis_conf(bad, &REDIS_7_4));
        assert_eq!(found.len(), 7, "{found:#?}");
        assert!(found[0].contains("is not a size"));
        assert!(found[1].contains("`lru` is not one of"));
        assert!(found[2].contains("not yes or no"));
        assert!(found[3].contains("below the minimum 1"));
        assert!(found[4].contains("exactly one value"));
        assert!(found[5].contains("only sentinel.conf"));
        assert!(found[6].contains("unknown directive `maxmemroy`"));
    }

    #[test]
    fn sentinel_subcommands_and_their_arity() {
        let good = "port 26379\nsentinel monitor m 10.0.0.1 6379 2\n\
            sentinel down-after-milliseconds m 5000\nsentinel known-replica m 10.0.0.3 6379\n\
            sentinel resolve-hostnames yes\n";
        assert_eq!(
            messages(sentinel_conf(good, &REDIS_7_4)),
            Vec::<String>::new()
        );
        let bad = "sentinel monitor m 10.0.0.1 6379\nsentinel down-after m 5000\n";
        let found = messages(sentinel_conf(bad, &REDIS_7_4));
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(found[0].contains("takes 5 words"));
        assert!(found[1].contains("unknown sentinel subcommand `down-after`"));
    }
}
