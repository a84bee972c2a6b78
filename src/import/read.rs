//! Settings read out of the config dialects, and their values in the model's units.

use crate::check::dialect::values::postgres_absolute;
use crate::model::units::{ByteSize, Duration};

/// `key = value` lines (postgresql.conf, rabbitmq.conf, an ini section): comments and
/// blank lines skipped, quotes around the value removed. For an ini file, only the lines
/// of `section` (`None`: every line).
pub fn assignments(text: &str, section: Option<&str>) -> Vec<(String, String)> {
    let mut current: Option<String> = None;
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with(['#', ';', '%']) {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = Some(name.trim().to_owned());
            continue;
        }
        if section.is_some_and(|s| current.as_deref() != Some(s)) {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = strip_comment(value.trim());
        out.push((key.trim().to_owned(), unquote(value).to_owned()));
    }
    out
}

/// The value of `key` among `pairs` (the last one wins, as in the programs).
pub fn value<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// A trailing `# comment` outside quotes.
fn strip_comment(value: &str) -> &str {
    let mut quoted = false;
    for (at, c) in value.char_indices() {
        match c {
            '\'' | '"' => quoted = !quoted,
            '#' if !quoted => return value[..at].trim_end(),
            _ => {}
        }
    }
    value
}

fn unquote(value: &str) -> &str {
    for quote in ['\'', '"'] {
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|v| v.strip_suffix(quote))
        {
            return inner;
        }
    }
    value
}

/// Redis-style lines: directive and its words (quotes removed).
pub fn directives(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            l.split_whitespace()
                .map(|w| unquote(w).to_owned())
                .collect()
        })
        .collect()
}

/// The words after `name` of the last directive `name` (`["maxmemory", "768mb"]`).
pub fn directive<'a>(lines: &'a [Vec<String>], name: &[&str]) -> Option<&'a [String]> {
    lines.iter().rev().find_map(|words| {
        let matches = words.len() >= name.len()
            && words
                .iter()
                .zip(name)
                .all(|(w, n)| w.eq_ignore_ascii_case(n));
        matches.then(|| &words[name.len()..])
    })
}

/// A PostgreSQL memory setting in bytes, `unit` being the parameter's own unit (`8kB` for
/// shared_buffers); None for `-1` (the server's choice) or an unreadable value.
pub fn postgres_bytes(value: &str, unit: &str) -> Option<ByteSize> {
    postgres_absolute(value, unit).map(|bytes| ByteSize(bytes.min(u64::MAX as f64) as u64))
}

/// A PostgreSQL time setting in milliseconds (`20s`, `20000`).
pub fn postgres_millis(value: &str) -> Option<Duration> {
    postgres_absolute(value, "ms").map(|ms| Duration(ms.min(u64::MAX as f64) as u64))
}

/// A RabbitMQ byte size: a number, or one with a unit RabbitMQ reads (`kB`/`MB`/`GB` and
/// `k`/`M`/`G` are powers of 1000, `KiB`/`MiB`/`GiB` powers of 1024).
pub fn rabbitmq_bytes(value: &str) -> Option<ByteSize> {
    let value = value.trim();
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let number: u64 = value[..split].parse().ok()?;
    let factor: u64 = match &value[split..] {
        "" => 1,
        "kB" | "k" | "K" | "KB" => 1000,
        "MB" | "M" => 1_000_000,
        "GB" | "G" => 1_000_000_000,
        "KiB" | "Ki" => 1 << 10,
        "MiB" | "Mi" => 1 << 20,
        "GiB" | "Gi" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(factor).map(ByteSize)
}

/// A Redis memory value (`768mb`, `1gb`, `100000`): Redis's `mb` is MiB.
pub fn redis_bytes(value: &str) -> Option<ByteSize> {
    crate::check::dialect::values::redis_number(value, true, false).map(|b| ByteSize(b as u64))
}

/// A PostgreSQL interval literal (`1 day`, `30 minutes`, `7 days`, `1 hour`).
pub fn interval(text: &str) -> Option<Duration> {
    let mut total = 0u64;
    let mut words = text.split_whitespace();
    while let Some(number) = words.next() {
        let count: u64 = number.parse().ok()?;
        let unit = words.next()?.trim_end_matches('s');
        let millis = match unit {
            "millisecond" => 1,
            "second" => 1_000,
            "minute" => 60_000,
            "hour" => 3_600_000,
            "day" => 86_400_000,
            "week" => 7 * 86_400_000,
            _ => return None,
        };
        total = total.checked_add(count.checked_mul(millis)?)?;
    }
    (total > 0).then_some(Duration(total))
}

/// The text after `marker` up to the next `'`: `INTERVAL '1 day'` -> `1 day`.
pub fn quoted_after<'a>(text: &'a str, marker: &str) -> Option<&'a str> {
    let rest = &text[text.find(marker)? + marker.len()..];
    let rest = rest.trim_start().strip_prefix('\'')?;
    rest.split('\'').next()
}

/// `:9100`, `0.0.0.0:9100`, `--flag=:9100` -> 9100.
pub fn port_of(address: &str) -> Option<u16> {
    address.rsplit(':').next()?.trim().parse().ok()
}

/// The value of `--name=value` (or `--name value`) among command words.
pub fn flag<'a>(command: &'a [String], name: &str) -> Option<&'a str> {
    let prefix = format!("{name}=");
    command.iter().enumerate().find_map(|(at, word)| {
        word.strip_prefix(&prefix).or_else(|| {
            (word == name)
                .then(|| command.get(at + 1).map(String::as_str))
                .flatten()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_of_each_dialect_become_model_values() {
        assert_eq!(postgres_bytes("512MB", "8kB"), Some(ByteSize(512 << 20)));
        assert_eq!(postgres_bytes("65536", "8kB"), Some(ByteSize(512 << 20)));
        assert_eq!(postgres_bytes("4MB", "kB"), Some(ByteSize(4 << 20)));
        assert_eq!(postgres_millis("20000"), Some(Duration(20_000)));
        assert_eq!(postgres_millis("20s"), Some(Duration(20_000)));
        assert_eq!(postgres_bytes("-1", "8kB"), None, "the server's choice");
        assert_eq!(
            postgres_bytes("010", "kB"),
            Some(ByteSize(8 << 10)),
            "octal, as PostgreSQL"
        );
        assert_eq!(rabbitmq_bytes("2GB"), Some(ByteSize(2_000_000_000)));
        assert_eq!(rabbitmq_bytes("2GiB"), Some(ByteSize(2 << 30)));
        assert_eq!(rabbitmq_bytes("2147483648"), Some(ByteSize(2 << 30)));
        assert_eq!(rabbitmq_bytes("lots"), None);
        assert_eq!(
            interval("99999999999999 weeks"),
            None,
            "overflow is no interval"
        );
        assert_eq!(redis_bytes("768mb"), Some(ByteSize(768 << 20)));
        assert_eq!(interval("30 minutes"), Some(Duration(1_800_000)));
        assert_eq!(interval("1 day"), Some(Duration(86_400_000)));
        assert_eq!(interval("soon"), None);
        assert_eq!(port_of(":9121"), Some(9121));
        let words: Vec<String> = ["--a=1", "--b", "2"].map(String::from).to_vec();
        assert_eq!(
            (flag(&words, "--a"), flag(&words, "--b")),
            (Some("1"), Some("2"))
        );
        let pairs = assignments("[x]\na = 1 # c\n[y]\na = '2'\n", Some("y"));
        assert_eq!(value(&pairs, "a"), Some("2"));
    }
}
