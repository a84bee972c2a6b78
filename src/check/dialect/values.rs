//! Value readers shared by the dialects: booleans, numbers with memory and time units.

/// A PostgreSQL boolean: on/off, true/false, yes/no, 1/0, or an unambiguous prefix of
/// true/false/yes/no/off (what `parse_bool` accepts).
pub fn postgres_bool(value: &str) -> bool {
    let v = value.to_ascii_lowercase();
    if v.is_empty() {
        return false;
    }
    matches!(v.as_str(), "on" | "1" | "0" | "of" | "off")
        || "true".starts_with(&v)
        || "false".starts_with(&v)
        || "yes".starts_with(&v)
        || "no".starts_with(&v)
}

/// Bytes per memory unit and milliseconds per time unit, the suffixes PostgreSQL takes.
const MEMORY: &[(&str, f64)] = &[
    ("B", 1.0),
    ("kB", 1024.0),
    ("MB", 1048576.0),
    ("GB", 1073741824.0),
    ("TB", 1099511627776.0),
];
const TIME: &[(&str, f64)] = &[
    ("us", 0.001),
    ("ms", 1.0),
    ("s", 1000.0),
    ("min", 60000.0),
    ("h", 3600000.0),
    ("d", 86400000.0),
];

/// The size of one `unit` of a catalog (`8kB`, `MB`, `ms`, `min`) and whether it is a
/// memory unit; None for a unitless parameter.
fn unit_size(unit: &str) -> Option<(f64, bool)> {
    let digits: String = unit.chars().take_while(char::is_ascii_digit).collect();
    let count = if digits.is_empty() {
        1.0
    } else {
        digits.parse().ok()?
    };
    let name = &unit[digits.len()..];
    if let Some((_, size)) = MEMORY.iter().find(|(n, _)| *n == name) {
        return Some((count * size, true));
    }
    TIME.iter()
        .find(|(n, _)| *n == name)
        .map(|(_, size)| (count * size, false))
}

/// A PostgreSQL numeric value in the parameter's own `unit`, or why it cannot be read.
pub fn postgres_number(value: &str, unit: &str) -> Result<f64, String> {
    let value = value.trim();
    if let Some(hex) = value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
    {
        return i64::from_str_radix(hex, 16)
            .map(|n| n as f64)
            .map_err(|_| "not a number".to_string());
    }
    let split = value
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')))
        .unwrap_or(value.len());
    let (number, suffix) = (value[..split].trim(), value[split..].trim());
    // Integers are read like strtol with base 0: a leading 0 for octal (0x is above).
    let radix = |digits: &str, radix: u32| {
        i64::from_str_radix(digits, radix)
            .map(|n| n as f64)
            .map_err(|_| "not a number".to_string())
    };
    let number: f64 = if number.len() > 1
        && number.starts_with('0')
        && number.bytes().all(|b| b.is_ascii_digit())
    {
        radix(number, 8)?
    } else {
        number.parse().map_err(|_| "not a number".to_string())?
    };
    if suffix.is_empty() {
        return Ok(number);
    }
    let Some((size, memory)) = unit_size(unit) else {
        return Err(format!("takes no unit, but `{suffix}` is given"));
    };
    let table = if memory { MEMORY } else { TIME };
    match table.iter().find(|(n, _)| *n == suffix) {
        Some((_, given)) => Ok(number * given / size),
        None => {
            let names: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
            Err(format!(
                "unit `{suffix}` is not one of {} (units are case-sensitive)",
                names.join(", ")
            ))
        }
    }
}

/// A PostgreSQL setting of a memory or time `unit` in bytes or milliseconds; None when it
/// cannot be read or is negative (`-1`: the server picks the value).
pub fn postgres_absolute(value: &str, unit: &str) -> Option<f64> {
    let number = postgres_number(value, unit).ok()?;
    let (size, _) = unit_size(unit)?;
    (number >= 0.0).then_some(number * size)
}

/// A Redis number with the memory units Redis reads (`1gb`, `100mb`, `4k`; case-insensitive),
/// or a percentage when `percent` is allowed (`10%`, stored as a negative number).
pub fn redis_number(value: &str, memory: bool, percent: bool) -> Option<f64> {
    let v = value.to_ascii_lowercase();
    if let Some(p) = v.strip_suffix('%').filter(|_| percent) {
        return p.parse::<f64>().ok().map(|p| -p);
    }
    if memory {
        for (suffix, factor) in [
            ("kb", 1024.0),
            ("mb", 1048576.0),
            ("gb", 1073741824.0),
            ("k", 1000.0),
            ("m", 1e6),
            ("g", 1e9),
            ("b", 1.0),
        ] {
            if let Some(n) = v.strip_suffix(suffix) {
                return n.parse::<f64>().ok().map(|n| n * factor);
            }
        }
    }
    v.parse::<i128>().ok().map(|n| n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_units_convert_to_the_parameters_unit() {
        assert_eq!(postgres_number("2GB", "8kB"), Ok(262144.0));
        assert_eq!(postgres_number("250ms", "ms"), Ok(250.0));
        assert_eq!(postgres_number("1min", "s"), Ok(60.0));
        assert_eq!(postgres_number("128", "kB"), Ok(128.0));
        assert_eq!(postgres_number("0640", ""), Ok(416.0));
        assert_eq!(postgres_number("0x1F", ""), Ok(31.0));
        assert!(
            postgres_number("2gb", "8kB")
                .unwrap_err()
                .contains("case-sensitive")
        );
        assert!(postgres_number("5s", "8kB").is_err());
        assert!(postgres_number("10MB", "").unwrap_err().contains("no unit"));
        assert!(postgres_number("lots", "").is_err());
    }

    #[test]
    fn booleans_and_redis_numbers() {
        assert!(postgres_bool("on") && postgres_bool("t") && postgres_bool("No"));
        assert!(!postgres_bool("o") && !postgres_bool("enabled"));
        assert_eq!(redis_number("1gb", true, false), Some(1073741824.0));
        assert_eq!(redis_number("10%", true, true), Some(-10.0));
        assert_eq!(redis_number("1gb", false, false), None);
    }
}
