//! The routing policy: loaded from YAML, validated whole, then immutable.
//!
//! `Policy` is plain data built once per load: prices are integers, candidate lists are model
//! indexes, header names are parsed. Requests take one `Arc<Policy>` snapshot from
//! `PolicyHandle` and never see two policies. Every YAML call lives in this module (serde_yaml is
//! archived upstream; replacing it touches only here).
//!
//! Invariant: a `Policy` value is always fully valid; an invalid file yields `Error::Invalid`
//! with every problem found, each with file:line:column.

mod position;
mod reload;
mod schema;
mod sections;
mod validate;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::budget::Price;
pub use crate::classify::Thresholds;
use crate::classify::{Difficulty, Task};

pub use position::Position;
pub use reload::{ReloadStatus, Reloader};
pub use schema::{Mode, ModelKind, ProviderKind, Tier, Trigger};

/// A validated policy. Cheap to read; never mutated after load.
#[derive(Debug)]
pub struct Policy {
    /// The file it came from, for messages.
    pub source: Arc<str>,
    pub mode: Mode,
    pub providers: Vec<ProviderSpec>,
    pub models: Vec<Model>,
    pub routes: Vec<Route>,
    /// Overrides applied after classification, first match per field wins.
    pub rules: Vec<Rule>,
    /// Savings are measured against sending everything to this model.
    pub baseline: Option<usize>,
    pub thresholds: Thresholds,
    /// Classifier weights to use instead of the embedded ones (as written in the policy;
    /// relative paths are relative to the policy file).
    pub classifier_weights: Option<std::path::PathBuf>,
    /// Monthly caps, in policy order (the first that refuses is named in a 429).
    pub budgets: Vec<crate::budget::BudgetSpec>,
    /// Virtual keys (names, teams, SHA-256 hashes). Empty: every client is anonymous.
    pub keys: Vec<VirtualKey>,
    /// Whether a client may pin a tier with `x-switchyard-tier: open|frontier`.
    pub allow_tier_header: bool,
    /// How the dashboard shows money (None: US dollars).
    pub display_currency: Option<DisplayCurrency>,
    model_index: HashMap<Arc<str>, usize>,
    /// Every `model` a client may ask for: `auto`, logical model names and route aliases.
    requestable: HashSet<Arc<str>>,
}

/// How to reach one upstream.
#[derive(Debug, Clone)]
pub struct ProviderSpec {
    pub name: Arc<str>,
    pub kind: ProviderKind,
    /// Without trailing slash, e.g. `http://127.0.0.1:11434/v1`.
    pub base_url: Arc<str>,
    pub api_key: Option<Secret>,
    /// Longest silence between two reads of an upstream response (headers or body).
    pub read_timeout: Duration,
    pub anthropic_version: Arc<str>,
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
}

/// A secret string (a provider key). `Debug` and `Display` never print it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    pub fn new(s: &str) -> Secret {
        Secret(s.into())
    }
    /// The only way to read the secret: when building the upstream request.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A display currency: `per_usd` units of `code` per US dollar. For display only; money is
/// integer micro-dollars everywhere else.
#[derive(Debug, Clone, PartialEq)]
pub struct DisplayCurrency {
    pub code: Arc<str>,
    pub per_usd: f64,
}

/// A virtual key as the policy holds it: never the key, only its SHA-256.
#[derive(Debug, Clone)]
pub struct VirtualKey {
    pub name: Arc<str>,
    pub team: Option<Arc<str>>,
    pub sha256: [u8; 32],
}

/// A logical model: what routes name, what the ledger records.
#[derive(Debug, Clone)]
pub struct Model {
    pub name: Arc<str>,
    /// Index into `Policy::providers`.
    pub provider: usize,
    /// The name the provider knows it by.
    pub upstream: Arc<str>,
    pub tier: Tier,
    pub kind: ModelKind,
    pub price: Price,
    /// Most output tokens the model may produce: the worst case when a request gives no bound.
    pub max_output_tokens: u32,
}

/// One entry of `routes`: first match wins.
#[derive(Debug, Clone)]
pub struct Route {
    pub name: Arc<str>,
    pub when: When,
    /// Indexes into `Policy::models`, in the policy's order (later ones are fallbacks).
    pub candidates: Vec<usize>,
    /// Retry a non-streamed answer on this model when it fails one of these checks.
    pub escalate: Option<Escalate>,
}

#[derive(Debug, Clone)]
pub struct Escalate {
    /// Index into `Policy::models`.
    pub to: usize,
    pub on: Vec<Trigger>,
}

/// A classification override from the policy's `rules`.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: Arc<str>,
    /// Lower-cased; any one present in the last user message.
    pub keywords: Vec<String>,
    pub regex: Option<regex::Regex>,
    pub min_input_tokens: Option<u64>,
    pub max_input_tokens: Option<u64>,
    pub headers: Vec<(http::HeaderName, Arc<str>)>,
    pub task: Option<Task>,
    pub difficulty: Option<Difficulty>,
}

/// Conditions of a route; an empty list means "any".
#[derive(Debug, Clone, Default)]
pub struct When {
    pub models: Vec<Arc<str>>,
    pub headers: Vec<(http::HeaderName, Arc<str>)>,
    pub tasks: Vec<Task>,
    pub difficulties: Vec<Difficulty>,
}

/// Default output bound when neither the request nor the model gives one.
pub const DEFAULT_MAX_OUTPUT_TOKENS: u32 = 4096;

impl Policy {
    /// Parse and validate `text`; `file` names it in messages; `env` resolves `${VAR}`.
    pub fn from_yaml(
        file: &str,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Policy, Vec<Diagnostic>> {
        validate::build(file, text, env)
    }

    /// Read and validate a policy file, resolving `${VAR}` from the process environment and
    /// classifier weights relative to the file.
    pub fn load(path: &Path) -> Result<Policy, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut policy = Policy::from_yaml(&path.display().to_string(), &text, &|name| {
            std::env::var(name).ok()
        })
        .map_err(Error::Invalid)?;
        if let Some(weights) = &policy.classifier_weights
            && weights.is_relative()
        {
            let base = path.parent().unwrap_or(Path::new("."));
            policy.classifier_weights = Some(base.join(weights));
        }
        Ok(policy)
    }

    pub fn model(&self, index: usize) -> Option<&Model> {
        self.models.get(index)
    }

    pub fn model_named(&self, name: &str) -> Option<(usize, &Model)> {
        let i = *self.model_index.get(name)?;
        Some((i, self.models.get(i)?))
    }

    pub fn provider_of(&self, model: &Model) -> Option<&ProviderSpec> {
        self.providers.get(model.provider)
    }

    /// Whether a client may name `model`: `auto`, a logical model, a route alias, or a
    /// model's upstream name (an app already sending `gpt-4o` keeps working unchanged).
    pub fn accepts_model(&self, model: &str) -> bool {
        self.requestable.contains(model) || self.models.iter().any(|m| *m.upstream == *model)
    }

    /// The names `GET /v1/models` lists: `auto`, then logical models, then aliases, sorted.
    pub fn listed_models(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.requestable.iter().map(|s| &**s).collect();
        names.sort_unstable();
        names
    }
}

/// One problem in a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: Arc<str>,
    pub position: Option<Position>,
    /// Where in the document: `routes[2].use[0]`.
    pub path: String,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some(p) => write!(f, "{}:{}:{}: ", self.file, p.line, p.column)?,
            None => write!(f, "{}: ", self.file)?,
        }
        f.write_str(&self.message)?;
        if !self.path.is_empty() {
            write!(f, " (at `{}`)", self.path)?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read policy {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", render(.0))]
    Invalid(Vec<Diagnostic>),
}

fn render(diagnostics: &[Diagnostic]) -> String {
    let lines: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
    lines.join("\n")
}

/// The live policy: an atomic pointer swapped whole on reload.
#[derive(Clone)]
pub struct PolicyHandle(Arc<ArcSwap<Policy>>);

impl PolicyHandle {
    pub fn new(policy: Policy) -> PolicyHandle {
        PolicyHandle(Arc::new(ArcSwap::from_pointee(policy)))
    }

    /// Once per request, so a request never sees two policies. Readers never block.
    pub fn snapshot(&self) -> Arc<Policy> {
        self.0.load_full()
    }

    /// Swap in an already validated policy.
    pub fn store(&self, policy: Policy) {
        self.0.store(Arc::new(policy));
    }
}

#[cfg(test)]
mod tests;
