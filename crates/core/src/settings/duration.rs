//! Durations as the configuration writes them: `"250ms"`, `"90s"`, `"5m"`, `"1h"`, `"1d"`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written as a string: `"250ms"`, `"90s"`, `"5m"`, `"1h"`, `"1d"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    pub fn from_millis(ms: u64) -> Self {
        Duration(std::time::Duration::from_millis(ms))
    }

    /// Whole milliseconds, saturating at `i64::MAX` (event times are `i64` milliseconds).
    pub fn as_millis_i64(&self) -> i64 {
        i64::try_from(self.0.as_millis()).unwrap_or(i64::MAX)
    }

    /// Parses `<integer><unit>` with unit one of `ms`, `s`, `m`, `h`, `d`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| format!("`{text}` has no unit (use ms, s, m, h or d, e.g. \"90s\")"))?;
        let (digits, unit) = text.split_at(split);
        let value: u64 = digits
            .parse()
            .map_err(|_| format!("`{text}` does not start with a whole number (e.g. \"90s\")"))?;
        let unit_ms: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            other => {
                return Err(format!(
                    "`{text}` has an unknown unit `{other}` (use ms, s, m, h or d)"
                ))
            }
        };
        value
            .checked_mul(unit_ms)
            .map(Duration::from_millis)
            .ok_or_else(|| format!("`{text}` is too large"))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        for (unit, size) in [
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1_000),
        ] {
            if ms != 0 && ms % size == 0 {
                return write!(f, "{}{unit}", ms / size);
            }
        }
        write!(f, "{ms}ms")
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Duration::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Written back as the configuration writes it (`"90s"`), so that a serialized
/// configuration reads back the same.
impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_print() {
        assert_eq!(Duration::parse("90s").unwrap().as_millis_i64(), 90_000);
        assert_eq!(Duration::parse("5m").unwrap().as_millis_i64(), 300_000);
        assert_eq!(Duration::parse("1h").unwrap().as_millis_i64(), 3_600_000);
        assert_eq!(Duration::parse("250ms").unwrap().as_millis_i64(), 250);
        assert_eq!(Duration::parse("2d").unwrap().to_string(), "2d");
        assert!(Duration::parse("90").unwrap_err().contains("no unit"));
        assert!(Duration::parse("5 weeks").unwrap_err().contains("unit"));
        assert!(Duration::parse("m").is_err());
    }
}
