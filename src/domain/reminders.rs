//! Reminders before a link expires (R16): when each goes, relative to the
//! link's life, and how the time left reads. Pure: times are parameters.

use std::fmt;

use time::{Duration, OffsetDateTime};

use super::duration::HumanDuration;

/// At most this many reminders per link.
pub const MAX_REMINDERS: usize = 5;

/// One reminder's place in a link's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReminderOffset {
    /// This share of the link's life has passed: `50%` is halfway.
    Elapsed { percent: u8 },
    /// This long before the link expires: `48h`, `2d`.
    BeforeExpiry(HumanDuration),
}

/// A reminder offset that cannot be used, named by its place in the list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("reminders[{index}] {value:?}: {message}")]
pub struct ReminderError {
    pub index: usize,
    pub value: String,
    pub message: String,
}

impl ReminderOffset {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        if let Some(number) = s.strip_suffix('%') {
            return match number.trim().parse::<u8>() {
                Ok(p) if (1..=99).contains(&p) => Ok(Self::Elapsed { percent: p }),
                _ => Err("a share of the link's life is 1% to 99%, like 50%".into()),
            };
        }
        match HumanDuration::parse(s) {
            Ok(d) if d.as_secs() > 0 => Ok(Self::BeforeExpiry(d)),
            Ok(_) => Err("a time before expiry must be longer than 0".into()),
            Err(_) => Err(
                "write a share of the link's life (50%) or a time before it expires (48h, 2d)"
                    .into(),
            ),
        }
    }

    /// When this reminder goes for a link issued at `issued` that expires
    /// at `expires`.
    pub fn at(self, issued: OffsetDateTime, expires: OffsetDateTime) -> OffsetDateTime {
        match self {
            Self::Elapsed { percent } => issued + (expires - issued) * (f64::from(percent) / 100.0),
            Self::BeforeExpiry(d) => expires - d.to_time(),
        }
    }

    /// Whether it falls inside a life of `life`: after the link is sent
    /// and before it expires.
    fn fits(self, life: Duration) -> bool {
        match self {
            Self::Elapsed { .. } => true,
            Self::BeforeExpiry(d) => d.to_time() < life,
        }
    }
}

impl fmt::Display for ReminderOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Elapsed { percent } => write!(f, "{percent}%"),
            Self::BeforeExpiry(d) => write!(f, "{d}"),
        }
    }
}

/// The reminders of a batch's links, each checked to fall inside the
/// links' life.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReminderPlan(Vec<ReminderOffset>);

impl ReminderPlan {
    /// Offsets someone asked for: each must parse and fall inside a life
    /// of `life`, or the error names it.
    pub fn asked(items: &[String], life: Duration) -> Result<Self, ReminderError> {
        if items.len() > MAX_REMINDERS {
            return Err(ReminderError {
                index: MAX_REMINDERS,
                value: items[MAX_REMINDERS].clone(),
                message: format!("at most {MAX_REMINDERS} reminders per link"),
            });
        }
        let mut offsets = Vec::with_capacity(items.len());
        for (index, raw) in items.iter().enumerate() {
            let bad = |message: String| ReminderError {
                index,
                value: raw.clone(),
                message,
            };
            let offset = ReminderOffset::parse(raw).map_err(bad)?;
            if !offset.fits(life) {
                return Err(bad(format!(
                    "that is before the link is sent: the links live {}",
                    HumanDuration::from_secs(life.whole_seconds().max(0) as u64)
                )));
            }
            offsets.push(offset);
        }
        Ok(Self(offsets))
    }

    /// The configured defaults for a life of `life`: those that do not
    /// fall inside it are left out (nobody asked for them on this batch).
    pub fn defaults(items: &[String], life: Duration) -> Self {
        Self(
            items
                .iter()
                .filter_map(|raw| ReminderOffset::parse(raw).ok())
                .filter(|o| o.fits(life))
                .take(MAX_REMINDERS)
                .collect(),
        )
    }

    /// As stored with a batch.
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }

    /// From a batch's stored list (written by [`Self::to_strings`]).
    pub fn stored(items: &[String]) -> Self {
        Self(
            items
                .iter()
                .filter_map(|raw| ReminderOffset::parse(raw).ok())
                .collect(),
        )
    }

    /// When the reminders of a link issued at `issued` and expiring at
    /// `expires` go, earliest first; two that fall in the same minute are
    /// one.
    pub fn times(&self, issued: OffsetDateTime, expires: OffsetDateTime) -> Vec<OffsetDateTime> {
        let mut times: Vec<OffsetDateTime> = self
            .0
            .iter()
            .map(|o| o.at(issued, expires))
            .filter(|t| *t > issued && *t < expires)
            .collect();
        times.sort();
        times.dedup_by(|a, b| (*a - *b).abs() < Duration::minutes(1));
        times
    }

    /// The first reminder after `after` (exclusive), and its number (1 for
    /// the earliest).
    pub fn next_after(
        &self,
        after: OffsetDateTime,
        issued: OffsetDateTime,
        expires: OffsetDateTime,
    ) -> Option<(u32, OffsetDateTime)> {
        self.times(issued, expires)
            .into_iter()
            .enumerate()
            .find(|(_, t)| *t > after)
            .map(|(i, t)| (i as u32 + 1, t))
    }
}

impl fmt::Display for ReminderPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        f.write_str(&self.to_strings().join(", "))
    }
}

/// The time a link has left, in words, hardly ever more than it has (a
/// message sent a moment after its hour still says that hour): whole days
/// from two days on, then whole hours, then whole minutes.
pub fn time_left(now: OffsetDateTime, expires: OffsetDateTime, locale: &str) -> String {
    let minutes = (expires - now).max(Duration::ZERO).whole_minutes();
    let de = locale.starts_with("de");
    let hours = (minutes + 1) / 60;
    let (n, unit) = if hours >= 48 {
        (
            (minutes + 29) / 1440,
            if de { ("Tag", "Tage") } else { ("day", "days") },
        )
    } else if hours == 24 {
        (1, if de { ("Tag", "Tage") } else { ("day", "days") })
    } else if hours >= 1 {
        (
            hours,
            if de {
                ("Stunde", "Stunden")
            } else {
                ("hour", "hours")
            },
        )
    } else {
        (
            minutes.max(1),
            if de {
                ("Minute", "Minuten")
            } else {
                ("minute", "minutes")
            },
        )
    };
    format!("{n} {}", if n == 1 { unit.0 } else { unit.1 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-12-01 09:00 UTC);

    fn plan(items: &[&str], life_days: i64) -> Result<ReminderPlan, ReminderError> {
        let items: Vec<String> = items.iter().map(|s| s.to_string()).collect();
        ReminderPlan::asked(&items, Duration::days(life_days))
    }

    #[test]
    fn halfway_and_two_days_before_a_30_day_link() {
        let p = plan(&["50%", "48h"], 30).unwrap();
        let expires = T0 + Duration::days(30);
        assert_eq!(
            p.times(T0, expires),
            [T0 + Duration::days(15), T0 + Duration::days(28)]
        );
        assert_eq!(
            p.next_after(T0, T0, expires),
            Some((1, T0 + Duration::days(15)))
        );
        assert_eq!(
            p.next_after(T0 + Duration::days(15), T0, expires),
            Some((2, T0 + Duration::days(28)))
        );
        assert_eq!(p.next_after(T0 + Duration::days(28), T0, expires), None);
        assert_eq!(p.to_strings(), ["50%", "2d"]);
    }

    #[test]
    fn offsets_outside_the_life_are_refused_by_name() {
        let e = plan(&["50%", "40d"], 30).unwrap_err();
        assert_eq!(e.index, 1);
        assert!(e.to_string().starts_with("reminders[1] \"40d\""), "{e}");
        assert!(e.message.contains("30d"), "{e}");
        assert_eq!(plan(&["0%"], 30).unwrap_err().index, 0);
        assert_eq!(plan(&["100%"], 30).unwrap_err().index, 0);
        assert_eq!(plan(&["soon"], 30).unwrap_err().index, 0);
        assert_eq!(plan(&["30d"], 30).unwrap_err().index, 0);
        assert!(plan(&["1%", "2%", "3%", "4%", "5%", "6%"], 30).is_err());
        assert!(plan(&[], 30).unwrap().to_strings().is_empty());
    }

    #[test]
    fn defaults_that_do_not_fit_a_short_link_are_left_out() {
        let d: Vec<String> = vec!["50%".into(), "48h".into()];
        let p = ReminderPlan::defaults(&d, Duration::days(1));
        assert_eq!(p.to_strings(), ["50%"]);
    }

    #[test]
    fn reminders_at_the_same_moment_are_one() {
        let p = plan(&["50%", "2d", "48h"], 4).unwrap();
        assert_eq!(p.times(T0, T0 + Duration::days(4)).len(), 1);
    }

    #[test]
    fn time_left_in_words() {
        let e = T0 + Duration::days(30);
        assert_eq!(time_left(T0 + Duration::days(15), e, "en"), "15 days");
        assert_eq!(time_left(T0 + Duration::days(28), e, "en"), "2 days");
        assert_eq!(time_left(T0 + Duration::days(28), e, "de"), "2 Tage");
        assert_eq!(time_left(e - Duration::hours(30), e, "en"), "30 hours");
        assert_eq!(time_left(e - Duration::hours(24), e, "de"), "1 Tag");
        // Sent a moment after its hour, a reminder still says that hour.
        assert_eq!(
            time_left(T0 + Duration::days(15) + Duration::seconds(5), e, "en"),
            "15 days"
        );
        assert_eq!(time_left(e - Duration::hours(5), e, "de"), "5 Stunden");
        assert_eq!(time_left(e - Duration::minutes(10), e, "en"), "10 minutes");
        // Never more than is left: 30 minutes is not "1 hour", nor 23h55m
        // "1 day".
        assert_eq!(time_left(e - Duration::minutes(30), e, "en"), "30 minutes");
        assert_eq!(time_left(e - Duration::minutes(58), e, "de"), "58 Minuten");
        assert_eq!(
            time_left(e - Duration::minutes(23 * 60 + 55), e, "en"),
            "23 hours"
        );
        assert_eq!(time_left(e - Duration::hours(1), e, "en"), "1 hour");
        assert_eq!(time_left(e, e, "en"), "1 minute");
    }
}
