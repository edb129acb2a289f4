//! Raw serde types of the policy file: the YAML shape, nothing more.
//!
//! Every struct denies unknown fields so a typo fails loudly; local invariants (a price in range,
//! a URL with a scheme) live in newtypes here so the error points at the bad value. Cross-references
//! (a route naming a model) are checked in `validate.rs`.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::budget::MicroUsd;
use crate::classify::{Difficulty, Task};

/// The top-level keys, in the order `check` walks them.
pub(super) const TOP_LEVEL_KEYS: &[&str] = &[
    "version",
    "mode",
    "providers",
    "models",
    "difficulty",
    "rules",
    "routes",
    "baseline",
    "classifier",
    "allow_tier_header",
    "budgets",
    "keys",
    "display_currency",
];

/// `classifier:`: replace the embedded weights.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClassifier {
    /// A weights file written by `switchyard train`, relative to the policy file.
    pub weights: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Route and enforce (the default).
    #[default]
    Enforce,
    /// Forward as the client asked; record what the policy would have done.
    Shadow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// Any OpenAI-compatible server: vLLM, Ollama, llama.cpp, Together, Groq, OpenAI, …
    Openai,
    /// Anthropic's Messages API.
    Anthropic,
}

impl ProviderKind {
    /// The GenAI semantic-convention provider name (`gen_ai.provider.name`).
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Openai => "openai",
            ProviderKind::Anthropic => "anthropic",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProvider {
    pub kind: ProviderKind,
    pub base_url: BaseUrl,
    #[serde(default)]
    pub api_key: Option<String>,
    #[serde(default)]
    pub read_timeout_ms: Option<Millis>,
    /// Anthropic's `anthropic-version` header.
    #[serde(default)]
    pub anthropic_version: Option<String>,
    /// Extra headers sent upstream (e.g. `OpenAI-Organization`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// A base URL: `http://` or `https://`, trailing slash removed.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub(super) struct BaseUrl(pub String);

impl TryFrom<String> for BaseUrl {
    type Error = String;
    fn try_from(url: String) -> Result<Self, String> {
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .ok_or_else(|| format!("`{url}` is not an http:// or https:// URL"))?;
        if rest.is_empty() || rest.starts_with('/') {
            return Err(format!("`{url}` has no host"));
        }
        Ok(BaseUrl(url.trim_end_matches('/').to_owned()))
    }
}

/// A duration in milliseconds, 1 ms ..= 1 hour.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "u64")]
pub(super) struct Millis(pub u64);

impl TryFrom<u64> for Millis {
    type Error = String;
    fn try_from(ms: u64) -> Result<Self, String> {
        if (1..=3_600_000).contains(&ms) {
            Ok(Millis(ms))
        } else {
            Err(format!("{ms} ms is outside 1..=3600000"))
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Open,
    Frontier,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Open => "open",
            Tier::Frontier => "frontier",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// Serves `/v1/chat/completions` and `/v1/messages`.
    #[default]
    Chat,
    /// Serves `/v1/embeddings`.
    Embedding,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawModel {
    pub provider: String,
    pub model: String,
    pub tier: Tier,
    pub price: RawPrice,
    #[serde(default)]
    pub kind: ModelKind,
    /// The most output tokens this model may produce (the worst case a reservation holds).
    #[serde(default)]
    pub max_output_tokens: Option<TokenCount>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPrice {
    pub input: UsdPerMTok,
    pub output: UsdPerMTok,
    #[serde(default)]
    pub cached_input: Option<UsdPerMTok>,
}

/// USD per million tokens, 0..=1000; becomes integer micro-dollars here and nowhere else.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "f64")]
pub(super) struct UsdPerMTok(pub MicroUsd);

impl TryFrom<f64> for UsdPerMTok {
    type Error = String;
    fn try_from(usd: f64) -> Result<Self, String> {
        if !(0.0..=1000.0).contains(&usd) {
            return Err(format!("{usd} is outside 0..=1000 USD per million tokens"));
        }
        Ok(UsdPerMTok(MicroUsd::from_usd_rounded(usd)))
    }
}

/// A token count, 1..=10,000,000.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "u64")]
pub(super) struct TokenCount(pub u32);

impl TryFrom<u64> for TokenCount {
    type Error = String;
    fn try_from(n: u64) -> Result<Self, String> {
        match u32::try_from(n) {
            Ok(n) if (1..=10_000_000).contains(&n) => Ok(TokenCount(n)),
            _ => Err(format!("{n} tokens is outside 1..=10000000")),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawThresholds {
    pub medium: Fraction,
    pub hard: Fraction,
}

/// A number in 0..=1.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "f64")]
pub(crate) struct Fraction(pub f32);

impl TryFrom<f64> for Fraction {
    type Error = String;
    fn try_from(x: f64) -> Result<Self, String> {
        if (0.0..=1.0).contains(&x) {
            Ok(Fraction(x as f32))
        } else {
            Err(format!("{x} is outside 0..=1"))
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    pub name: String,
    #[serde(default)]
    pub when: Option<RawWhen>,
    #[serde(rename = "use")]
    pub use_: Vec<String>,
    #[serde(default)]
    pub escalate: Option<RawEscalate>,
}

/// `escalate: { to: MODEL, on: [error, truncated, invalid_json] }`: retry a non-streamed
/// answer on a stronger model when the cheap one fails a check.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEscalate {
    pub to: String,
    pub on: Vec<Trigger>,
}

/// What makes a cheap answer worth escalating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// Every candidate failed, or the upstream answered an error.
    Error,
    /// `finish_reason: length`: the answer was cut at the token limit.
    Truncated,
    /// `response_format` asked for JSON and the answer does not parse.
    InvalidJson,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Error => "error",
            Trigger::Truncated => "truncated",
            Trigger::InvalidJson => "invalid_json",
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWhen {
    /// The `model` the client asked for (`auto`, a logical model, or an alias).
    #[serde(default)]
    pub model: Option<OneOrMany<String>>,
    /// Request headers that must all be present with these exact values.
    #[serde(default)]
    pub header: BTreeMap<String, String>,
    #[serde(default)]
    pub task: Option<OneOrMany<Task>>,
    #[serde(default)]
    pub difficulty: Option<OneOrMany<Difficulty>>,
}

/// `x` or `[x, y]`. Hand-written rather than `untagged` so a bad item keeps its own message
/// ("unknown variant `sumarization`") instead of "did not match any variant".
#[derive(Debug, Clone)]
pub(super) enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        match serde_yaml::Value::deserialize(d)? {
            serde_yaml::Value::Sequence(items) => items
                .into_iter()
                .map(|item| serde_yaml::from_value(item).map_err(D::Error::custom))
                .collect::<Result<Vec<T>, D::Error>>()
                .map(OneOrMany::Many),
            one => serde_yaml::from_value(one)
                .map(OneOrMany::One)
                .map_err(D::Error::custom),
        }
    }
}

impl<T> OneOrMany<T> {
    pub fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::One(x) => vec![x],
            OneOrMany::Many(v) => v,
        }
    }
}

/// A rule that beats the classifier: when every condition of `if` holds, `then` sets the task
/// and/or the difficulty.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
    pub name: String,
    #[serde(rename = "if")]
    pub if_: RawCondition,
    pub then: RawEffect,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCondition {
    /// Any of these words or phrases in the last user message (case-insensitive).
    #[serde(default)]
    pub keywords: Vec<String>,
    /// A regular expression matched against the last user message.
    #[serde(default)]
    pub regex: Option<String>,
    /// Estimated input tokens of the whole request, inclusive bounds.
    #[serde(default)]
    pub min_input_tokens: Option<u64>,
    #[serde(default)]
    pub max_input_tokens: Option<u64>,
    /// Request headers with these exact values.
    #[serde(default)]
    pub header: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEffect {
    #[serde(default)]
    pub task: Option<Task>,
    #[serde(default)]
    pub difficulty: Option<Difficulty>,
}

/// One entry of `budgets:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBudget {
    pub name: String,
    #[serde(default)]
    pub scope: RawScope,
    pub limit_usd: UsdAmount,
    /// IANA name; months reset at local midnight on the 1st. Default UTC.
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub on_limit: RawOnLimit,
    #[serde(default)]
    pub downgrade_at: Option<Fraction>,
    #[serde(default)]
    pub warn_at: Vec<Fraction>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum RawScope {
    #[default]
    Global,
    Team,
    Key,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum RawOnLimit {
    #[default]
    Reject,
    Downgrade,
}

/// A positive amount of USD, at most one billion; becomes integer micro-dollars here.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "f64")]
pub(super) struct UsdAmount(pub MicroUsd);

impl TryFrom<f64> for UsdAmount {
    type Error = String;
    fn try_from(usd: f64) -> Result<Self, String> {
        if !(usd > 0.0 && usd <= 1e9) {
            return Err(format!("{usd} is outside 0 < USD <= 1000000000"));
        }
        Ok(UsdAmount(MicroUsd::from_usd_rounded(usd)))
    }
}

/// One entry of `keys:`: a virtual key's name, team and SHA-256 (never the key itself).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKey {
    pub name: String,
    #[serde(default)]
    pub team: Option<String>,
    pub sha256: Sha256Hex,
}

/// 64 hexadecimal digits.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "String")]
pub(super) struct Sha256Hex(pub [u8; 32]);

impl TryFrom<String> for Sha256Hex {
    type Error = String;
    fn try_from(hex: String) -> Result<Self, String> {
        let bad =
            || "expected 64 hexadecimal digits (the output of `switchyard keys hash`)".to_owned();
        if hex.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            let pair = hex.get(2 * i..2 * i + 2).ok_or_else(bad)?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
        }
        Ok(Sha256Hex(out))
    }
}

/// `display_currency: { code: MYR, per_usd: 4.45 }`: how the dashboard shows money. Money stays
/// USD underneath; this is a display rate only.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDisplayCurrency {
    pub code: CurrencyCode,
    pub per_usd: PerUsd,
}

/// An ISO 4217-style code: three upper-case ASCII letters.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub(super) struct CurrencyCode(pub String);

impl TryFrom<String> for CurrencyCode {
    type Error = String;
    fn try_from(code: String) -> Result<Self, String> {
        if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(CurrencyCode(code))
        } else {
            Err(format!(
                "`{code}` is not a currency code (three upper-case letters, e.g. `MYR`)"
            ))
        }
    }
}

/// Units of the display currency per US dollar, 0 < x <= 1000000.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "f64")]
pub(super) struct PerUsd(pub f64);

impl TryFrom<f64> for PerUsd {
    type Error = String;
    fn try_from(x: f64) -> Result<Self, String> {
        if x > 0.0 && x <= 1e6 {
            Ok(PerUsd(x))
        } else {
            Err(format!("{x} is outside 0 < per_usd <= 1000000"))
        }
    }
}
