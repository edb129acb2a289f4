//! Integer money and the one cost formula.

use std::fmt;
use std::ops::{Add, AddAssign};

use serde::Serialize;

/// An amount of US dollars in millionths. Never a float.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct MicroUsd(pub u64);

impl MicroUsd {
    pub const ZERO: MicroUsd = MicroUsd(0);

    /// The one place a float becomes money: the YAML edge. Rounds to the nearest micro-dollar;
    /// callers validate the range first.
    pub fn from_usd_rounded(usd: f64) -> MicroUsd {
        let micros = (usd * 1_000_000.0).round();
        if micros.is_finite() && micros >= 0.0 && micros < u64::MAX as f64 {
            MicroUsd(micros as u64)
        } else {
            MicroUsd(0)
        }
    }

    /// For display only.
    pub fn as_usd(self) -> f64 {
        self.0 as f64 / 1_000_000.0
    }

    pub fn saturating_sub(self, other: MicroUsd) -> MicroUsd {
        MicroUsd(self.0.saturating_sub(other.0))
    }
}

impl Add for MicroUsd {
    type Output = MicroUsd;
    fn add(self, rhs: MicroUsd) -> MicroUsd {
        MicroUsd(self.0.saturating_add(rhs.0))
    }
}

impl AddAssign for MicroUsd {
    fn add_assign(&mut self, rhs: MicroUsd) {
        self.0 = self.0.saturating_add(rhs.0);
    }
}

impl std::iter::Sum for MicroUsd {
    fn sum<I: Iterator<Item = MicroUsd>>(iter: I) -> MicroUsd {
        iter.fold(MicroUsd::ZERO, Add::add)
    }
}

impl fmt::Display for MicroUsd {
    /// `$1.234567`: six decimals, exact.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${}.{:06}", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

/// Canonical token usage of one response, whatever the provider's wire format.
///
/// `input` is billed at the input price and `cached_input` at the cached price; they do not
/// overlap (OpenAI's `prompt_tokens` includes its cached tokens, so the OpenAI reader subtracts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub input: u64,
    pub cached_input: u64,
    pub output: u64,
}

impl Usage {
    pub fn total(&self) -> u64 {
        self.input
            .saturating_add(self.cached_input)
            .saturating_add(self.output)
    }
}

/// Prices of one model, in micro-dollars per million tokens (so $2.50/Mtok is 2_500_000).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Price {
    pub input: MicroUsd,
    pub output: MicroUsd,
    /// Price of cached input tokens; the input price when the policy gives none.
    pub cached_input: MicroUsd,
}

impl Price {
    /// Cost = input × input price + cached × cached price + output × output price,
    /// rounded up to the micro-dollar so a bill is never under-stated.
    pub fn cost(&self, usage: &Usage) -> MicroUsd {
        let sum = u128::from(usage.input) * u128::from(self.input.0)
            + u128::from(usage.cached_input) * u128::from(self.cached_input.0)
            + u128::from(usage.output) * u128::from(self.output.0);
        let micros = sum.div_ceil(1_000_000);
        MicroUsd(u64::try_from(micros).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_follows_the_formula_and_rounds_up() {
        let price = Price {
            input: MicroUsd(2_500_000),
            output: MicroUsd(10_000_000),
            cached_input: MicroUsd(1_250_000),
        };
        let usage = Usage {
            input: 1_000,
            cached_input: 2_000,
            output: 500,
        };
        // 1000*2.5 + 2000*1.25 + 500*10 = 2500 + 2500 + 5000 = 10000 micro-dollars.
        assert_eq!(price.cost(&usage), MicroUsd(10_000));
        let one_token = Usage {
            input: 1,
            ..Usage::default()
        };
        assert_eq!(price.cost(&one_token), MicroUsd(3)); // 2.5 rounds up to 3
    }

    #[test]
    fn display_is_exact() {
        assert_eq!(MicroUsd(1_234_567).to_string(), "$1.234567");
        assert_eq!(MicroUsd::from_usd_rounded(2.5), MicroUsd(2_500_000));
    }
}
