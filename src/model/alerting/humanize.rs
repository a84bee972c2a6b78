//! How Prometheus prints values: Go's float formatting, `humanizeDuration`,
//! `humanizePercentage`, and the annotation template forms the typed alerts use. The
//! promtool fixtures expect annotations expanded exactly as Prometheus expands them.

use std::collections::BTreeMap;

/// Expands the Prometheus template forms the typed alerts use, as Prometheus would:
/// `{{ $labels.x }}`, `{{ $value }}`, `| humanizeDuration`, `| humanizePercentage`.
pub fn expand(template: &str, labels: &BTreeMap<String, String>, value: f64) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let inner = rest[start + 2..start + end].trim();
        let text = match inner {
            "$value" => go_value(value),
            "$value | humanizeDuration" => humanize_duration(value),
            "$value | humanizePercentage" => humanize_percentage(value),
            other => match other.strip_prefix("$labels.") {
                Some(label) => labels.get(label).cloned().unwrap_or_default(),
                None => format!("{{{{ {other} }}}}"),
            },
        };
        out.push_str(&text);
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    out
}

/// Go's `%v` of a float64 (how Prometheus prints `$value` and how promtool reads values).
pub fn go_value(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e21 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

/// Go's `%.4g`.
fn go_g4(value: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        return format!("{value}");
    }
    let scientific = format!("{value:.3e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if !(-4..4).contains(&exponent) {
        let mantissa = trim_zeros(mantissa);
        let sign = if exponent < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exponent.abs());
    }
    let decimals = usize::try_from(3 - exponent).unwrap_or(0);
    trim_zeros(&format!("{value:.decimals$}"))
}

fn trim_zeros(text: &str) -> String {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text.to_string()
    }
}

/// Prometheus' `humanizePercentage`.
pub fn humanize_percentage(value: f64) -> String {
    format!("{}%", go_g4(value * 100.0))
}

/// Prometheus' `humanizeDuration` (seconds and up; below a second in ms/us/ns).
pub fn humanize_duration(value: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        return format!("{}s", go_g4(value));
    }
    let (sign, v) = if value < 0.0 {
        ("-", -value)
    } else {
        ("", value)
    };
    if v >= 1.0 {
        let total = v as i64;
        let (days, hours, minutes, seconds) = (
            total / 86_400,
            (total / 3600) % 24,
            (total / 60) % 60,
            total % 60,
        );
        return if days != 0 {
            format!("{sign}{days}d {hours}h {minutes}m {seconds}s")
        } else if hours != 0 {
            format!("{sign}{hours}h {minutes}m {seconds}s")
        } else if minutes != 0 {
            format!("{sign}{minutes}m {seconds}s")
        } else {
            format!("{sign}{}s", go_g4(v))
        };
    }
    for (unit, factor) in [("ms", 1e3), ("us", 1e6), ("ns", 1e9)] {
        if v * factor >= 1.0 || unit == "ns" {
            return format!("{sign}{}{unit}", go_g4(v * factor));
        }
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humanizers_match_prometheus() {
        assert_eq!(humanize_duration(600.0), "10m 0s");
        assert_eq!(humanize_duration(90061.0), "1d 1h 1m 1s");
        assert_eq!(humanize_duration(42.5), "42.5s");
        assert_eq!(humanize_duration(0.25), "250ms");
        assert_eq!(humanize_percentage(0.95), "95%");
        assert_eq!(humanize_percentage(0.5), "50%");
        assert_eq!(humanize_percentage(0.12345), "12.35%");
        assert_eq!(go_g4(123456.0), "1.235e+05");
        assert_eq!(go_value(20000.0), "20000");
        assert_eq!(go_value(0.9), "0.9");
    }

    #[test]
    fn expand_fills_labels_and_value() {
        let labels = BTreeMap::from([("queue".to_string(), "q1".to_string())]);
        assert_eq!(
            expand("{{ $value }} in {{ $labels.queue }}", &labels, 3.0),
            "3 in q1"
        );
    }
}
