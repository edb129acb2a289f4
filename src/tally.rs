//! In-process running totals per (route, model): requests, tokens, cost and baseline cost.
//!
//! Feeds the demo report and the `/v1` response path's bookkeeping until the durable ledger
//! (budgets) records each request. Synchronised by a `DashMap` keyed by interned names; a guard
//! is never held across `.await`.

use std::sync::Arc;

use dashmap::DashMap;
use serde::Serialize;

use crate::budget::{MicroUsd, Usage};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub requests: u64,
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub output_tokens: u64,
    pub cost: MicroUsd,
    /// What the same tokens would have cost on the policy's baseline model.
    pub baseline_cost: MicroUsd,
    /// Requests whose usage was estimated (the provider reported none).
    pub estimated: u64,
    pub streamed: u64,
}

/// One finished request, as the tally sees it.
pub struct Entry<'a> {
    pub route: &'a Arc<str>,
    pub model: &'a Arc<str>,
    pub usage: Usage,
    pub cost: MicroUsd,
    pub baseline_cost: MicroUsd,
    pub estimated: bool,
    pub streamed: bool,
}

#[derive(Debug)]
pub struct Tally {
    rows: DashMap<(Arc<str>, Arc<str>), Totals>,
    /// How many entries were recorded; watchers wait on it (tests, shutdown reports).
    recorded: tokio::sync::watch::Sender<u64>,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            rows: DashMap::new(),
            recorded: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl Tally {
    pub fn record(&self, e: &Entry<'_>) {
        let mut row = self
            .rows
            .entry((e.route.clone(), e.model.clone()))
            .or_default();
        row.requests += 1;
        row.input_tokens += e.usage.input;
        row.cached_input_tokens += e.usage.cached_input;
        row.output_tokens += e.usage.output;
        row.cost += e.cost;
        row.baseline_cost += e.baseline_cost;
        row.estimated += u64::from(e.estimated);
        row.streamed += u64::from(e.streamed);
        drop(row);
        self.recorded.send_modify(|n| *n += 1);
    }

    /// Resolves once at least `n` entries have been recorded.
    pub async fn recorded(&self, n: u64) {
        let mut rx = self.recorded.subscribe();
        // The sender lives as long as `self`, so waiting cannot fail while we borrow it.
        let _seen = rx.wait_for(|count| *count >= n).await;
    }

    /// A copy of every row, sorted by route then model.
    pub fn rows(&self) -> Vec<(Arc<str>, Arc<str>, Totals)> {
        let mut rows: Vec<_> = self
            .rows
            .iter()
            .map(|r| (r.key().0.clone(), r.key().1.clone(), r.value().clone()))
            .collect();
        rows.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        rows
    }
}
