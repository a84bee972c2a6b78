//! rabbitmq.conf against the cuttlefish schemas of the pinned RabbitMQ and its plugins.

use super::Issue;
use super::catalog::Catalog;
use crate::check::artifacts::parse;

pub fn rabbitmq_conf(text: &str, catalog: &Catalog) -> Vec<Issue> {
    let (settings, syntax) = parse::settings(text);
    let mut issues = Issue::from_syntax(syntax);
    let program = format!("RabbitMQ {}", catalog.version);
    for s in &settings {
        // cuttlefish's own directive: more files of the same format.
        if s.key == "include" {
            continue;
        }
        let Some(row) = mapping(catalog, &s.key) else {
            let mut issue = Issue::unknown(s.line, "key", &s.key, &program, catalog.keys());
            if issue.hint.starts_with("remove it") {
                issue.hint =
                    "no schema of the broker or its plugins maps it: an Erlang-term setting \
                 belongs in advanced.config"
                        .into();
            }
            issues.push(issue);
            continue;
        };
        let datatype = row.get(1).copied().unwrap_or("string");
        if !accepts(datatype, &s.value) {
            issues.push(Issue::new(
                s.line,
                format!(
                    "{} = {}: not a value of type {datatype} ({program})",
                    s.key, s.value
                ),
                "see the key in RabbitMQ's configuration documentation",
            ));
        }
    }
    issues
}

/// The schema row of `key`: exact, or a mapping whose `$name` segments match any segment.
fn mapping<'c>(catalog: &'c Catalog, key: &str) -> Option<&'c [&'static str]> {
    if let Some(row) = catalog.get(key) {
        return Some(row);
    }
    let segments: Vec<&str> = key.split('.').collect();
    // The most specific pattern wins (fewest `$` segments), then the first by name, so the
    // datatype does not depend on the catalog's hash order.
    let pattern = catalog
        .keys()
        .filter(|k| k.contains('$'))
        .filter(|pattern| {
            let parts: Vec<&str> = pattern.split('.').collect();
            parts.len() == segments.len()
                && parts
                    .iter()
                    .zip(&segments)
                    .all(|(p, s)| p.starts_with('$') || p == s)
        })
        .min_by_key(|pattern| (pattern.matches('$').count(), *pattern))?;
    catalog.get(pattern)
}

/// Top-level comma-separated terms of a cuttlefish datatype list.
fn alternatives(datatype: &str) -> Vec<&str> {
    let inner = match datatype.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        Some(inner) => inner,
        None => return vec![datatype],
    };
    let (mut terms, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, ch) in inner.char_indices() {
        match ch {
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&inner[start..]);
    terms
}

/// Whether cuttlefish would accept `value` for `datatype`. Types this check does not model
/// (string, atom, file, lists) accept anything.
fn accepts(datatype: &str, value: &str) -> bool {
    alternatives(datatype).into_iter().any(|term| {
        if let Some(values) = term
            .strip_prefix("{enum,[")
            .and_then(|t| t.strip_suffix("]}"))
        {
            return values.split(',').any(|v| v.trim_matches('\'') == value);
        }
        if let Some(atom) = term
            .strip_prefix("{atom,")
            .and_then(|t| t.strip_suffix('}'))
        {
            return atom == value;
        }
        match term {
            "integer" => value.parse::<i64>().is_ok(),
            "float" => value.parse::<f64>().is_ok(),
            "flag" => matches!(value, "on" | "off" | "true" | "false"),
            "bytesize" => bytesize(value),
            "{duration,ms}" => duration(value),
            "ip" => value
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok()),
            _ => true,
        }
    })
}

/// cuttlefish bytesize: an integer, optionally followed by kB/KB, MB, GB (or lower case).
fn bytesize(value: &str) -> bool {
    let digits = value.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &value[digits.len()..];
    digits.parse::<u64>().is_ok()
        && matches!(unit.to_ascii_lowercase().as_str(), "" | "kb" | "mb" | "gb")
}

/// cuttlefish duration: numbers each followed by f, w, d, h, m, s or ms (`1h30m`), or a
/// bare integer of milliseconds.
fn duration(value: &str) -> bool {
    if value.parse::<u64>().is_ok() {
        return true;
    }
    let mut rest = value;
    while !rest.is_empty() {
        let digits = rest.len()
            - rest
                .trim_start_matches(|c: char| c.is_ascii_digit() || c == '.')
                .len();
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        let unit = ["ms", "f", "w", "d", "h", "m", "s"]
            .into_iter()
            .find(|u| rest.starts_with(u));
        match unit {
            Some(u) => rest = &rest[u.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::super::catalog::RABBITMQ_3_13;
    use super::*;

    #[test]
    fn schema_keys_patterns_and_datatypes() {
        let good = "listeners.tcp.default = 5672\nvm_memory_high_watermark.relative = 0.6\n\
            disk_free_limit.absolute = 2GB\nmanagement.tcp.port = 15672\n\
            cluster_partition_handling = pause_minority\nlog.console.level = info\n\
            prometheus.return_per_object_metrics = true\nconsumer_timeout = 1800000\n";
        let found: Vec<String> = rabbitmq_conf(good, &RABBITMQ_3_13)
            .into_iter()
            .map(|i| i.message)
            .collect();
        assert_eq!(found, Vec::<String>::new());
        let bad = "listeners.tcp.default = amqp\ncluster_partition_handling = pause\n\
            vm_memory_high_watermark = 0.6\nmanagment.tcp.port = 15672\n";
        let found: Vec<String> = rabbitmq_conf(bad, &RABBITMQ_3_13)
            .into_iter()
            .map(|i| i.message)
            .collect();
        assert_eq!(found.len(), 4, "{found:#?}");
        assert!(
            found[0].contains("not a value of type [integer,ip]")
                || found[0].contains("not a value")
        );
        assert!(found[1].contains("not a value of type {enum"));
        assert!(found[2].contains("unknown key `vm_memory_high_watermark`"));
        assert!(found[3].contains("unknown key `managment.tcp.port`"));
    }
}
