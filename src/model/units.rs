//! Quantities written as strings in stack.toml: byte sizes and durations.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A byte size such as `512MiB`, `2GiB`, `128MB`.
///
/// Binary and decimal-looking suffixes both mean powers of 1024, as in PostgreSQL
/// (`MB` = 1024 kB), so `512MB` and `512MiB` are the same size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

const SIZE_UNITS: &[(&str, u64)] = &[
    ("TiB", 1 << 40),
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
    ("TB", 1 << 40),
    ("GB", 1 << 30),
    ("MB", 1 << 20),
    ("kB", 1 << 10),
    ("KB", 1 << 10),
    ("B", 1),
];

impl ByteSize {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        for (suffix, factor) in SIZE_UNITS {
            if let Some(number) = text.strip_suffix(suffix) {
                let number: u64 = number.trim().parse().map_err(|_| {
                    format!("`{text}` is not a size: expected a whole number before `{suffix}`")
                })?;
                return number
                    .checked_mul(*factor)
                    .filter(|bytes| *bytes <= MAX_BYTE_SIZE)
                    .map(ByteSize)
                    .ok_or_else(|| format!("`{text}` is too large: at most 1 PiB"));
            }
        }
        Err(format!(
            "`{text}` is not a size: write a whole number with a unit, e.g. `512MiB` or `2GiB`"
        ))
    }

    pub fn mebibytes(self) -> u64 {
        self.0 / (1 << 20)
    }

    /// The largest unit that divides the size exactly, in PostgreSQL's spelling (`kB`, `MB`, `GB`).
    pub fn postgres(self) -> String {
        self.with_units(&[
            ("TB", 1 << 40),
            ("GB", 1 << 30),
            ("MB", 1 << 20),
            ("kB", 1 << 10),
        ])
    }

    /// Redis spelling (`mb`, `gb`; Redis `mb` is 1024*1024).
    pub fn redis(self) -> String {
        self.with_units(&[("gb", 1 << 30), ("mb", 1 << 20), ("kb", 1 << 10)])
    }

    /// Docker/Compose spelling (`m`, `g`: powers of 1024).
    pub fn docker(self) -> String {
        self.with_units(&[("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)])
    }

    /// The largest unit of `units` (largest first) that divides the size exactly, else bytes.
    pub fn with_units(self, units: &[(&str, u64)]) -> String {
        for (suffix, factor) in units {
            if self.0 >= *factor && self.0.is_multiple_of(*factor) {
                return format!("{}{}", self.0 / factor, suffix);
            }
        }
        self.0.to_string()
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.with_units(&[
            ("TiB", 1 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ]);
        if text.chars().all(|c| c.is_ascii_digit()) {
            write!(f, "{text}B")
        } else {
            f.write_str(&text)
        }
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        ByteSize::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The longest duration a model may hold (100 years): every sum and product of model
/// durations stays far inside u64 milliseconds.
pub const MAX_DURATION_MS: u64 = 100 * 365 * 24 * 3600 * 1000;
/// The largest size a model may hold (1 PiB), for the same reason.
pub const MAX_BYTE_SIZE: u64 = 1 << 50;

/// The schema's pattern of a [`ByteSize`] (the parser decides; this tells an editor).
pub const BYTE_SIZE_PATTERN: &str = r"^[0-9]+\s*(TiB|GiB|MiB|KiB|TB|GB|MB|kB|KB|B)$";
/// The schema's pattern of a [`Duration`].
pub const DURATION_PATTERN: &str = r"^[0-9]+\s*(ms|s|m|h|d|w)$";

impl JsonSchema for ByteSize {
    fn schema_name() -> Cow<'static, str> {
        "ByteSize".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": BYTE_SIZE_PATTERN,
            "description": "A byte size with a unit, e.g. `512MiB`, `2GiB` (MB = MiB, as in PostgreSQL)."
        })
    }
}

/// A duration such as `500ms`, `15s`, `5m`, `30d`, stored in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub u64);

const DURATION_UNITS: &[(&str, u64)] = &[
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
    ("w", 604_800_000),
];

impl Duration {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        // Longest suffix first so `ms` is not read as `m` + garbage.
        let mut units: Vec<_> = DURATION_UNITS.to_vec();
        units.sort_by_key(|(suffix, _)| std::cmp::Reverse(suffix.len()));
        for (suffix, factor) in units {
            if let Some(number) = text.strip_suffix(suffix)
                && let Ok(number) = number.trim().parse::<u64>()
            {
                return number
                    .checked_mul(factor)
                    .filter(|millis| *millis <= MAX_DURATION_MS)
                    .map(Duration)
                    .ok_or_else(|| format!("`{text}` is too long: at most 100 years (36500d)"));
            }
        }
        Err(format!(
            "`{text}` is not a duration: write a whole number with a unit (ms, s, m, h, d, w), e.g. `15s`"
        ))
    }

    pub fn millis(self) -> u64 {
        self.0
    }

    pub fn seconds(self) -> u64 {
        self.0 / 1000
    }

    /// Largest exact unit, Prometheus/Go spelling (`15s`, `5m`, `30d`).
    pub fn prometheus(self) -> String {
        for (suffix, factor) in DURATION_UNITS.iter().rev() {
            if *suffix == "w" {
                continue;
            }
            if self.0 >= *factor && self.0.is_multiple_of(*factor) {
                return format!("{}{}", self.0 / factor, suffix);
            }
        }
        format!("{}ms", self.0)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.prometheus())
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Duration::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": DURATION_PATTERN,
            "description": "A duration with a unit: ms, s, m, h, d or w, e.g. `15s`, `30d`."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_have_an_upper_bound() {
        assert!(Duration::parse("36500d").is_ok());
        assert!(
            Duration::parse("18446744073709551615ms")
                .unwrap_err()
                .contains("at most 100 years")
        );
        assert!(ByteSize::parse("1024TiB").is_ok());
        assert!(
            ByteSize::parse("1025TiB")
                .unwrap_err()
                .contains("at most 1 PiB")
        );
    }

    #[test]
    fn sizes_parse_in_binary_units() {
        assert_eq!(ByteSize::parse("512MiB").unwrap().0, 512 << 20);
        assert_eq!(ByteSize::parse("512MB").unwrap().0, 512 << 20);
        assert_eq!(ByteSize::parse("2GiB").unwrap().postgres(), "2GB");
        assert_eq!(ByteSize::parse("1536MB").unwrap().postgres(), "1536MB");
        assert_eq!(ByteSize::parse("768MiB").unwrap().redis(), "768mb");
        assert!(ByteSize::parse("12 parsecs").is_err());
        assert!(ByteSize::parse("1.5GB").is_err());
    }

    #[test]
    fn durations_parse_and_print_in_largest_unit() {
        assert_eq!(Duration::parse("5000ms").unwrap().prometheus(), "5s");
        assert_eq!(Duration::parse("30d").unwrap().millis(), 30 * 86_400_000);
        assert_eq!(Duration::parse("90s").unwrap().prometheus(), "90s");
        assert_eq!(Duration::parse("2m").unwrap().seconds(), 120);
        assert!(Duration::parse("soon").is_err());
    }
}
