//! Money: integer micro-dollars and per-token prices.
//!
//! Invariant: money is an integer number of micro-dollars everywhere; an `f64` becomes money in
//! exactly one place (`MicroUsd::from_usd_rounded`) at the YAML edge, and leaves it only for
//! display (`MicroUsd::as_usd`).

mod money;

pub use money::{MicroUsd, Price, Usage};
