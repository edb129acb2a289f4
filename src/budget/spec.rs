//! What a budget is (`BudgetSpec`), who spends (`Tenant`), and how a budget stands (`BudgetStatus`).
//!
//! Plain data, built from the validated policy. Fractions are integers (`Ppm`) so that the
//! thresholds that gate routing compare exactly; floats exist only at the YAML edge.

use std::fmt;
use std::sync::Arc;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::money::MicroUsd;
use super::window::MonthId;

/// Who a budget is shared by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// One copy for all traffic (scope id `"global"`).
    Global,
    /// One copy per team (scope id = team name); tenants without a team are not charged.
    Team,
    /// One copy per virtual key (scope id = key name, `"anonymous"` without a key).
    Key,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Global => "global",
            Scope::Team => "team",
            Scope::Key => "key",
        }
    }
}

/// The scope id of the single copy of a `Scope::Global` budget.
pub const GLOBAL_SCOPE_ID: &str = "global";

/// What the request path does when a reservation does not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OnLimit {
    /// HTTP 429 `budget_exceeded`.
    Reject,
    /// Re-decide among cheaper models that fit; reject only if none does.
    Downgrade,
}

/// A fraction in parts per million: `Ppm(500_000)` is one half. May exceed `Ppm::ONE` when a
/// budget is over its limit (recorded overshoot).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ppm(pub u32);

impl Ppm {
    pub const ZERO: Ppm = Ppm(0);
    pub const ONE: Ppm = Ppm(1_000_000);

    /// `part / whole`, rounded down. A zero `whole` reads as full (`Ppm::ONE`): a zero budget
    /// is capped.
    pub fn ratio(part: MicroUsd, whole: MicroUsd) -> Ppm {
        if whole.0 == 0 {
            return Ppm::ONE;
        }
        let ppm = u128::from(part.0) * 1_000_000 / u128::from(whole.0);
        Ppm(u32::try_from(ppm).unwrap_or(u32::MAX))
    }

    /// The one place a float becomes a fraction: the YAML edge (`0.8` → `Ppm(800_000)`).
    /// Rounds to the nearest ppm; out-of-range and non-finite values give `None`.
    pub fn from_fraction_rounded(fraction: f64) -> Option<Ppm> {
        let ppm = (fraction * 1_000_000.0).round();
        if ppm.is_finite() && (0.0..=f64::from(u32::MAX)).contains(&ppm) {
            // In range and integral, so the cast is exact.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Some(Ppm(ppm as u32))
        } else {
            None
        }
    }

    /// `amount × self`, rounded down (the share of a limit this fraction names).
    pub fn of(self, amount: MicroUsd) -> MicroUsd {
        let micros = u128::from(amount.0) * u128::from(self.0) / 1_000_000;
        MicroUsd(u64::try_from(micros).unwrap_or(u64::MAX))
    }

    /// For display only.
    pub fn as_fraction(self) -> f64 {
        f64::from(self.0) / 1_000_000.0
    }
}

impl fmt::Display for Ppm {
    /// `80.0000%`: exact.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:04}%", self.0 / 10_000, self.0 % 10_000)
    }
}

/// One budget of the policy. Spend is keyed by `name` and scope id, so a reload that edits the
/// limit, thresholds or action keeps the month's spend.
#[derive(Debug, Clone)]
pub struct BudgetSpec {
    pub name: Arc<str>,
    pub scope: Scope,
    pub limit: MicroUsd,
    /// The budget's calendar: months reset at local midnight on the 1st.
    pub timezone: TimeZone,
    pub on_limit: OnLimit,
    /// Past this fraction used, frontier models are kept for `hard` requests only.
    pub downgrade_at: Option<Ppm>,
    /// Fractions at which the budget reports `Warned` (any order).
    pub warn_at: Vec<Ppm>,
}

/// Who a request is charged to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tenant {
    /// The virtual key's NAME (never the secret), `"anonymous"` when the request had none.
    pub key: Arc<str>,
    pub team: Option<Arc<str>>,
}

impl Tenant {
    pub const ANONYMOUS: &'static str = "anonymous";

    pub fn anonymous() -> Tenant {
        Tenant {
            key: Arc::from(Tenant::ANONYMOUS),
            team: None,
        }
    }
}

/// How a budget copy stands, most severe last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BudgetState {
    Ok,
    /// At or past one of `warn_at`; carries the highest threshold crossed.
    Warned(Ppm),
    /// At or past `downgrade_at`: frontier models only for `hard` requests.
    Downgrading,
    /// Nothing more fits: `spent + held >= limit`.
    Capped,
}

/// A read-only view of one budget copy in its current month, for routing, headers and reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetStatus {
    pub budget: Arc<str>,
    pub scope: Scope,
    pub scope_id: Arc<str>,
    pub month: MonthId,
    pub limit: MicroUsd,
    /// Committed this month (including any recorded overshoot).
    pub spent: MicroUsd,
    /// Reserved by requests in flight.
    pub held: MicroUsd,
    /// What a new reservation may still take: `limit - spent - held`, floored at zero.
    pub remaining: MicroUsd,
    /// `(spent + held) / limit`.
    pub used: Ppm,
    pub state: BudgetState,
    pub on_limit: OnLimit,
    /// The start of the month window (local midnight on the 1st).
    pub starts_at: Timestamp,
    /// The end of the month window: when the budget resets.
    pub resets_at: Timestamp,
}

/// A reservation did not fit: the first budget (in policy order) that refused it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "budget `{budget}` ({scope_id}) is exhausted: limit {limit}, spent {spent}, held {held}, \
     requested {requested}; resets at {resets_at}"
)]
pub struct Exhausted {
    pub budget: Arc<str>,
    pub scope_id: Arc<str>,
    pub limit: MicroUsd,
    pub spent: MicroUsd,
    pub held: MicroUsd,
    pub requested: MicroUsd,
    pub resets_at: Timestamp,
    pub on_limit: OnLimit,
}

pub(crate) fn state_of(spec: &BudgetSpec, spent: MicroUsd, held: MicroUsd) -> (Ppm, BudgetState) {
    let committed = spent + held;
    let used = Ppm::ratio(committed, spec.limit);
    let state = if committed >= spec.limit {
        BudgetState::Capped
    } else if spec.downgrade_at.is_some_and(|at| used >= at) {
        BudgetState::Downgrading
    } else if let Some(at) = spec.warn_at.iter().copied().filter(|at| used >= *at).max() {
        BudgetState::Warned(at)
    } else {
        BudgetState::Ok
    };
    (used, state)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(limit: u64) -> BudgetSpec {
        BudgetSpec {
            name: Arc::from("b"),
            scope: Scope::Global,
            limit: MicroUsd(limit),
            timezone: TimeZone::UTC,
            on_limit: OnLimit::Reject,
            downgrade_at: Some(Ppm(900_000)),
            warn_at: vec![Ppm(800_000), Ppm(500_000)],
        }
    }

    #[test]
    fn state_reports_the_most_severe_threshold_crossed() {
        let s = spec(1_000);
        let st = |spent, held| state_of(&s, MicroUsd(spent), MicroUsd(held));
        assert_eq!(st(0, 0), (Ppm(0), BudgetState::Ok));
        assert_eq!(st(499, 0).1, BudgetState::Ok);
        assert_eq!(st(300, 200).1, BudgetState::Warned(Ppm(500_000)));
        assert_eq!(st(850, 0).1, BudgetState::Warned(Ppm(800_000)));
        assert_eq!(st(900, 0).1, BudgetState::Downgrading);
        assert_eq!(st(999, 1), (Ppm::ONE, BudgetState::Capped));
        assert_eq!(st(1_500, 0), (Ppm(1_500_000), BudgetState::Capped));
        assert_eq!(
            state_of(&spec(0), MicroUsd(0), MicroUsd(0)).1,
            BudgetState::Capped
        );
    }

    #[test]
    fn ppm_is_exact_at_the_edges() {
        assert_eq!(Ppm::from_fraction_rounded(0.8), Some(Ppm(800_000)));
        assert_eq!(Ppm::from_fraction_rounded(-0.1), None);
        assert_eq!(Ppm::from_fraction_rounded(f64::NAN), None);
        assert_eq!(
            Ppm(900_000).of(MicroUsd(2_000_000_000)),
            MicroUsd(1_800_000_000)
        );
        assert_eq!(Ppm::ratio(MicroUsd(1), MicroUsd(3)), Ppm(333_333));
        assert_eq!(Ppm(800_000).to_string(), "80.0000%");
    }
}
