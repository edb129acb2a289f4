//! Burn rate and month-end projection of one budget copy: pure arithmetic on integers.
//!
//! The projection is linear: what was spent so far this month, spread over the time elapsed,
//! continued to the end of the window. It is what the dashboard shows and what the
//! `switchyard_budget_projected_usd` gauge exports for the "projected to exceed its cap" alert.
//! Invariant: no clock is read here; `now` is passed in.

use jiff::{SignedDuration, Timestamp};

use super::money::MicroUsd;

/// Below this much elapsed time the rate is taken over this much instead, so one request in
/// the first minute of a month does not project a thousandfold month.
const MIN_ELAPSED_SECONDS: i64 = 3_600;
const DAY_SECONDS: u128 = 86_400;

/// How a budget copy is burning through its month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forecast {
    /// Average spend per day so far this month.
    pub burn_per_day: MicroUsd,
    /// Spend at the end of the window if the average holds (`spent` once the month is over).
    pub projected: MicroUsd,
    /// When the limit is reached at this rate, if before the end of the window and not yet
    /// reached.
    pub cap_at: Option<Timestamp>,
}

/// The forecast for `spent` of `limit` in the window `[start, end)` seen at `now`.
pub fn forecast(
    spent: MicroUsd,
    limit: MicroUsd,
    start: Timestamp,
    end: Timestamp,
    now: Timestamp,
) -> Forecast {
    let total = (end.as_second() - start.as_second()).max(1);
    let elapsed = (now.clamp(start, end).as_second() - start.as_second())
        .max(MIN_ELAPSED_SECONDS)
        .min(total);
    let (total, elapsed) = (total.unsigned_abs(), elapsed.unsigned_abs());
    let spent_u = u128::from(spent.0);
    let to_money = |x: u128| MicroUsd(u64::try_from(x).unwrap_or(u64::MAX));
    let projected = to_money(spent_u * u128::from(total) / u128::from(elapsed));
    let burn_per_day = to_money(spent_u * DAY_SECONDS / u128::from(elapsed));
    let over = now < end && spent < limit && projected > limit && spent.0 > 0;
    let cap_at = over
        .then(|| {
            // Seconds from the start at which spend reaches the limit at this rate.
            let at = u128::from(limit.0) * u128::from(elapsed) / spent_u;
            let at = i64::try_from(at).ok()?;
            start.checked_add(SignedDuration::from_secs(at)).ok()
        })
        .flatten();
    Forecast {
        burn_per_day,
        projected,
        cap_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap_or_else(|e| unreachable!("{e}"))
    }

    #[test]
    fn a_third_of_a_thirty_day_month_triples_the_spend() {
        let (start, end) = (ts("2026-11-01T00:00:00Z"), ts("2026-12-01T00:00:00Z"));
        let f = forecast(
            MicroUsd(100_000_000),
            MicroUsd(250_000_000),
            start,
            end,
            ts("2026-11-11T00:00:00Z"),
        );
        assert_eq!(f.burn_per_day, MicroUsd(10_000_000));
        assert_eq!(f.projected, MicroUsd(300_000_000));
        // $250 at $10 a day: 25 days after the start.
        assert_eq!(f.cap_at, Some(ts("2026-11-26T00:00:00Z")));
    }

    #[test]
    fn no_cap_day_when_the_projection_fits_or_the_cap_is_already_reached() {
        let (start, end) = (ts("2026-11-01T00:00:00Z"), ts("2026-12-01T00:00:00Z"));
        let mid = ts("2026-11-16T00:00:00Z");
        let fits = forecast(MicroUsd(10), MicroUsd(1_000), start, end, mid);
        assert_eq!((fits.projected, fits.cap_at), (MicroUsd(20), None));
        let capped = forecast(MicroUsd(1_000), MicroUsd(1_000), start, end, mid);
        assert_eq!(capped.cap_at, None);
        let idle = forecast(MicroUsd::ZERO, MicroUsd(1_000), start, end, mid);
        assert_eq!(
            (idle.projected, idle.burn_per_day),
            (MicroUsd::ZERO, MicroUsd::ZERO)
        );
    }

    #[test]
    fn a_finished_month_projects_what_it_spent_and_the_first_hour_is_damped() {
        let (start, end) = (ts("2026-11-01T00:00:00Z"), ts("2026-12-01T00:00:00Z"));
        let after = forecast(
            MicroUsd(500),
            MicroUsd(400),
            start,
            end,
            ts("2027-01-05T00:00:00Z"),
        );
        assert_eq!((after.projected, after.cap_at), (MicroUsd(500), None));
        // One minute in, the rate is taken over an hour: 720 hours in the month.
        let early = forecast(
            MicroUsd(1),
            MicroUsd(10_000),
            start,
            end,
            ts("2026-11-01T00:01:00Z"),
        );
        assert_eq!(early.projected, MicroUsd(720));
    }
}
