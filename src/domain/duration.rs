//! Human durations such as `30d`, `12h` or `1h30m`, used for invite expiry
//! in the configuration, the CLI and the API.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("{0:?} is not a duration; write it like 30d, 12h, 90m or 1h30m")]
    Syntax(String),
    #[error("{0:?} is too long")]
    TooLong(String),
}

/// A whole number of seconds, parsed from `<n><unit>` pieces with units
/// s, m, h, d, w.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(u64);

impl HumanDuration {
    pub const fn from_secs(secs: u64) -> Self {
        Self(secs)
    }

    pub const fn days(days: u64) -> Self {
        Self(days * 86_400)
    }

    pub fn parse(raw: &str) -> Result<Self, DurationError> {
        let s = raw.trim();
        if s.is_empty() {
            return Err(DurationError::Syntax(raw.to_string()));
        }
        let mut total: u64 = 0;
        let mut number = String::new();
        for c in s.chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            let unit = match c {
                's' => 1,
                'm' => 60,
                'h' => 3_600,
                'd' => 86_400,
                'w' => 604_800,
                _ => return Err(DurationError::Syntax(raw.to_string())),
            };
            if number.is_empty() {
                return Err(DurationError::Syntax(raw.to_string()));
            }
            let n: u64 = number
                .parse()
                .map_err(|_| DurationError::TooLong(raw.to_string()))?;
            total = n
                .checked_mul(unit)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(|| DurationError::TooLong(raw.to_string()))?;
            number.clear();
        }
        if !number.is_empty() {
            return Err(DurationError::Syntax(raw.to_string()));
        }
        // Keep every duration inside what time::Duration and i64 seconds hold.
        if total > 100 * 365 * 86_400 {
            return Err(DurationError::TooLong(raw.to_string()));
        }
        Ok(Self(total))
    }

    pub fn as_secs(self) -> u64 {
        self.0
    }

    pub fn to_time(self) -> time::Duration {
        time::Duration::seconds(self.0 as i64)
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        if rest == 0 {
            return f.write_str("0s");
        }
        for (unit, secs) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
            if rest >= secs {
                write!(f, "{}{unit}", rest / secs)?;
                rest %= secs;
            }
        }
        Ok(())
    }
}

impl serde::Serialize for HumanDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        assert_eq!(HumanDuration::parse("30d").unwrap().as_secs(), 30 * 86_400);
        assert_eq!(HumanDuration::parse("1h30m").unwrap().as_secs(), 5_400);
        assert_eq!(HumanDuration::parse("2w").unwrap(), HumanDuration::days(14));
        assert_eq!(HumanDuration::parse("1h30m").unwrap().to_string(), "1h30m");
        for bad in ["", "30", "d", "3x", "-1d", "1.5d", "99999999999999999999d"] {
            assert!(HumanDuration::parse(bad).is_err(), "{bad}");
        }
    }
}
