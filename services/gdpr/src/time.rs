//! Times and the Art. 12(3) deadline arithmetic.

use crate::error::{Error, Result};
use chrono::{DateTime, Months, NaiveDate, SecondsFormat, Utc};

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn now_rfc3339() -> String {
    rfc3339(Utc::now())
}

pub fn now_s() -> i64 {
    Utc::now().timestamp()
}

/// Parses an operator-given receipt time: RFC 3339 or a plain date (taken as
/// midnight UTC).
pub fn parse_received(text: &str) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| {
            Error::Invalid(format!(
                "received_at: {text:?} is neither RFC 3339 nor YYYY-MM-DD"
            ))
        })
}

/// The day the answer is due: `months` calendar months after the day of
/// receipt, clamped to the end of a shorter month (31 Jan + 1 month is
/// 28 Feb, or 29 Feb in a leap year).
pub fn due_date(received: NaiveDate, months: u32) -> Result<NaiveDate> {
    received
        .checked_add_months(Months::new(months))
        .ok_or_else(|| Error::Invalid("deadline out of range".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn month_ends_clamp() {
        assert_eq!(due_date(d("2025-01-31"), 1).unwrap(), d("2025-02-28"));
        assert_eq!(due_date(d("2024-01-31"), 1).unwrap(), d("2024-02-29"));
        assert_eq!(due_date(d("2024-01-31"), 3).unwrap(), d("2024-04-30"));
        assert_eq!(due_date(d("2025-03-31"), 1).unwrap(), d("2025-04-30"));
        assert_eq!(due_date(d("2025-12-15"), 1).unwrap(), d("2026-01-15"));
        assert_eq!(due_date(d("2025-02-28"), 1).unwrap(), d("2025-03-28"));
    }

    #[test]
    fn receipt_times_parse() {
        assert_eq!(
            parse_received("2025-01-31").unwrap().date_naive(),
            d("2025-01-31")
        );
        assert_eq!(
            parse_received("2025-01-31T23:30:00Z").unwrap().date_naive(),
            d("2025-01-31")
        );
        assert!(parse_received("31/01/2025").is_err());
    }
}
