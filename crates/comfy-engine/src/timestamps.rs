//! Points in time as tools take and show them: milliseconds since the Unix epoch, an RFC 3339 date
//! or date-time (`2025-06-01`, `2025-06-01T12:00:00Z`, `2025-06-01T14:00:00+02:00`), or an age
//! (`90m`, `24h`, `7d`, `2w`: that long before now). Shown as RFC 3339 in UTC. Pure calendar
//! arithmetic, no time zone database.

use std::fmt::Write as _;

const MILLISECONDS_PER_DAY: i64 = 86_400_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// (year, month, day) of days since 1970-01-01 (Howard Hinnant's civil_from_days).
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    days_from_civil(year + i64::from(month == 12), month % 12 + 1, 1) - days_from_civil(year, month, 1)
}

/// `2025-06-01T12:00:00.123Z`.
pub fn format_rfc3339(milliseconds: i64) -> String {
    let days = milliseconds.div_euclid(MILLISECONDS_PER_DAY);
    let within_day = milliseconds.rem_euclid(MILLISECONDS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let mut text = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        within_day / 3_600_000,
        within_day / 60_000 % 60,
        within_day / 1000 % 60
    );
    let fraction = within_day % 1000;
    if fraction != 0 {
        let _ = write!(text, ".{fraction:03}");
    }
    text.push('Z');
    text
}

fn number(text: &str, what: &str) -> Result<i64, String> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(format!("{what} {text:?} is not a number"));
    }
    text.parse()
        .map_err(|_| format!("{what} {text:?} is out of range"))
}

fn parse_age(text: &str, now_ms: i64) -> Option<Result<i64, String>> {
    let unit = text.chars().last()?;
    let amount = &text[..text.len() - unit.len_utf8()];
    let unit_ms: i64 = match unit {
        's' => 1000,
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => MILLISECONDS_PER_DAY,
        'w' => 7 * MILLISECONDS_PER_DAY,
        _ => return None,
    };
    if amount.is_empty() || !amount.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    Some(
        amount
            .parse::<i64>()
            .ok()
            .and_then(|amount| amount.checked_mul(unit_ms))
            .map(|age| now_ms.saturating_sub(age))
            .ok_or_else(|| format!("the age {text:?} is too large")),
    )
}

fn parse_rfc3339(text: &str) -> Result<i64, String> {
    let (date, time) = match text.split_once(['T', 't', ' ']) {
        Some((date, time)) => (date, Some(time)),
        None => (text, None),
    };
    let mut parts = date.split('-');
    let (Some(year), Some(month), Some(day), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("{text:?} is not a date like 2025-06-01"));
    };
    let (year, month, day) = (
        number(year, "year")?,
        number(month, "month")?,
        number(day, "day")?,
    );
    if !(1..=9999).contains(&year) {
        return Err(format!("year {year} is outside 1 to 9999"));
    }
    if !(1..=12).contains(&month) || !(1..=days_in_month(year, month)).contains(&day) {
        return Err(format!("{date:?} is not a calendar date"));
    }
    let mut milliseconds = days_from_civil(year, month, day) * MILLISECONDS_PER_DAY;
    let Some(time) = time else {
        return Ok(milliseconds);
    };
    let (clock, offset_ms) = if let Some(clock) = time.strip_suffix(['Z', 'z']) {
        (clock, 0)
    } else if let Some(position) = time.rfind(['+', '-']) {
        let (clock, offset) = time.split_at(position);
        let sign = if offset.starts_with('-') { -1 } else { 1 };
        let (hours, minutes) = offset[1..]
            .split_once(':')
            .ok_or_else(|| format!("time zone offset {offset:?} is not like +02:00"))?;
        let (hours, minutes) = (number(hours, "offset hours")?, number(minutes, "offset minutes")?);
        if hours > 23 || minutes > 59 {
            return Err(format!("time zone offset {offset:?} is out of range"));
        }
        (clock, sign * (hours * 3_600_000 + minutes * 60_000))
    } else {
        return Err(format!(
            "{text:?} has no time zone: end it with Z (UTC) or an offset like +02:00"
        ));
    };
    let (clock, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let mut fields = clock.split(':');
    let (Some(hours), Some(minutes), seconds, None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(format!("{clock:?} is not a time like 12:30:00"));
    };
    let (hours, minutes) = (number(hours, "hours")?, number(minutes, "minutes")?);
    let seconds = seconds.map_or(Ok(0), |seconds| number(seconds, "seconds"))?;
    if hours > 23 || minutes > 59 || seconds > 60 {
        return Err(format!("{clock:?} is not a time of day"));
    }
    let fraction_ms = if fraction.is_empty() {
        0
    } else {
        let digits: String = fraction.chars().chain("000".chars()).take(3).collect();
        number(&digits, "fraction of a second")?
    };
    milliseconds += hours * 3_600_000 + minutes * 60_000 + seconds * 1000 + fraction_ms;
    Ok(milliseconds - offset_ms)
}

/// Parses a point in time given as text: an age before `now_ms`, an RFC 3339 date or date-time, or
/// a number of milliseconds since the epoch. The error says which forms are accepted.
pub fn parse_time(text: &str, now_ms: i64) -> Result<i64, String> {
    let text = text.trim();
    if let Some(age) = parse_age(text, now_ms) {
        return age;
    }
    if !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()) {
        return number(text, "milliseconds");
    }
    parse_rfc3339(text).map_err(|reason| {
        format!(
            "{reason}; give a time as an age (30m, 24h, 7d, 2w), an RFC 3339 date or date-time \
             (2025-06-01, 2025-06-01T12:00:00Z) or milliseconds since 1970"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_round_trips() {
        for days in [-800_000, -1, 0, 1, 10_957, 19_000, 20_000, 2_932_896] {
            let (year, month, day) = civil_from_days(days);
            assert_eq!(days_from_civil(year, month, day), days);
        }
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(2100, 2), 28);
        assert_eq!(days_in_month(2024, 12), 31);
    }

    #[test]
    fn parses_every_accepted_form() {
        let now = 1_750_000_000_000;
        assert_eq!(parse_time("24h", now), Ok(now - 86_400_000));
        assert_eq!(parse_time("2w", now), Ok(now - 14 * 86_400_000));
        assert_eq!(parse_time("0d", now), Ok(now));
        assert_eq!(parse_time("1700000000000", now), Ok(1_700_000_000_000));
        assert_eq!(parse_time("2000-02-29", now), Ok(951_782_400_000));
        assert_eq!(parse_time("2000-02-29T00:00:00.5Z", now), Ok(951_782_400_500));
        assert_eq!(parse_time("2000-02-29T02:00:00+02:00", now), Ok(951_782_400_000));
        assert_eq!(parse_time("2000-02-28T23:30-00:30", now), Ok(951_782_400_000));
        let stamp = 1_718_000_123_456;
        assert_eq!(parse_time(&format_rfc3339(stamp), now), Ok(stamp));
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        let now = 1_750_000_000_000;
        for bad in [
            "",
            "yesterday",
            "2001-02-29",
            "2025-13-01",
            "2025-06-01T12:00:00",
            "2025-06-01T25:00:00Z",
            "99999999999999999999d",
            "-5d",
            "2025-06-01T12:00:00+2",
            "99999999999999-01-01",
        ] {
            assert!(parse_time(bad, now).is_err(), "{bad:?} was accepted");
        }
    }
}
