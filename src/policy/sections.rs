//! Validation of each section of a policy (providers, models, routes, rules, budgets, keys):
//! typed entry by entry through `Cx::parse`, then cross-referenced, every problem recorded with
//! its path. `validate::build` calls these in order.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_yaml::Value;

use super::VirtualKey;
use super::position::{join_index, join_key};
use super::schema::{
    ModelKind, OneOrMany, RawBudget, RawKey, RawModel, RawOnLimit, RawProvider, RawRoute, RawRule,
    RawScope,
};
use super::{DEFAULT_MAX_OUTPUT_TOKENS, Model, ProviderSpec, Route, Rule, Secret, When};
use crate::budget::Price;

use super::validate::{At, Cx, closest};

const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(120);
const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";

fn entries<'v>(
    section: Option<&'v Value>,
    name: &str,
    cx: &mut Cx<'_>,
) -> Vec<(String, &'v Value)> {
    match section {
        Some(Value::Mapping(map)) => map
            .iter()
            .map(|(k, v)| (k.as_str().unwrap_or("?").to_owned(), v))
            .collect(),
        Some(_) => {
            cx.error(
                name,
                At::Value,
                format!("`{name}` must be a mapping of name → settings"),
                None,
            );
            Vec::new()
        }
        None => Vec::new(),
    }
}

pub(super) fn providers(section: Option<&Value>, cx: &mut Cx<'_>) -> Vec<ProviderSpec> {
    let mut out = Vec::new();
    for (name, value) in entries(section, "providers", cx) {
        let path = join_key("providers", &name);
        let Some(raw) = cx.parse::<RawProvider>(value, &path) else {
            continue;
        };
        let mut headers = Vec::new();
        for (k, v) in &raw.headers {
            match (
                http::HeaderName::try_from(k.as_str()),
                http::HeaderValue::try_from(v.as_str()),
            ) {
                (Ok(k), Ok(v)) => headers.push((k, v)),
                _ => cx.error(
                    &join_key(&join_key(&path, "headers"), k),
                    At::Key,
                    format!("`{k}` is not a valid HTTP header"),
                    None,
                ),
            }
        }
        out.push(ProviderSpec {
            name: name.as_str().into(),
            kind: raw.kind,
            base_url: raw.base_url.0.into(),
            api_key: raw
                .api_key
                .filter(|k| !k.is_empty())
                .map(|k| Secret::new(&k)),
            read_timeout: raw
                .read_timeout_ms
                .map_or(DEFAULT_READ_TIMEOUT, |m| Duration::from_millis(m.0)),
            anthropic_version: raw
                .anthropic_version
                .as_deref()
                .unwrap_or(DEFAULT_ANTHROPIC_VERSION)
                .into(),
            headers,
        });
    }
    out
}

/// The entry names of a mapping section, valid or not.
pub(super) fn declared(section: Option<&Value>) -> HashSet<String> {
    match section {
        Some(Value::Mapping(map)) => map
            .keys()
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect(),
        _ => HashSet::new(),
    }
}

pub(super) fn models(
    section: Option<&Value>,
    providers: &[Arc<str>],
    declared_providers: &HashSet<String>,
    cx: &mut Cx<'_>,
) -> Vec<Model> {
    let mut out = Vec::new();
    for (name, value) in entries(section, "models", cx) {
        let path = join_key("models", &name);
        let Some(raw) = cx.parse::<RawModel>(value, &path) else {
            continue;
        };
        let Some(provider) = providers.iter().position(|p| **p == *raw.provider) else {
            if declared_providers.contains(&raw.provider) {
                continue; // the provider's own error is already reported
            }
            let hint = closest(&raw.provider, providers.iter().map(|p| &**p))
                .map(|s| format!("did you mean `{s}`?"))
                .or_else(|| {
                    Some(format!(
                        "declare it under `providers:` (known: {})",
                        join(providers)
                    ))
                });
            cx.error(
                &join_key(&path, "provider"),
                At::Value,
                format!("unknown provider `{}`", raw.provider),
                hint,
            );
            continue;
        };
        let input = raw.price.input.0;
        out.push(Model {
            name: name.as_str().into(),
            provider,
            upstream: raw.model.as_str().into(),
            tier: raw.tier,
            kind: raw.kind,
            price: Price {
                input,
                output: raw.price.output.0,
                cached_input: raw.price.cached_input.map_or(input, |p| p.0),
            },
            max_output_tokens: raw
                .max_output_tokens
                .map_or(DEFAULT_MAX_OUTPUT_TOKENS, |t| t.0),
        });
    }
    out
}

fn join(names: &[Arc<str>]) -> String {
    names.iter().map(|n| &**n).collect::<Vec<_>>().join(", ")
}

pub(super) fn routes(
    section: Option<&Value>,
    all: &[Model],
    models: &HashMap<Arc<str>, usize>,
    declared_models: &HashSet<String>,
    cx: &mut Cx<'_>,
) -> Vec<Route> {
    let items: &[Value] = match section {
        Some(Value::Sequence(items)) => items,
        Some(_) => {
            cx.error(
                "routes",
                At::Value,
                "`routes` must be a list".to_owned(),
                Some("write `routes:` then `- { name: …, use: [...] }` entries".to_owned()),
            );
            &[]
        }
        None => &[],
    };
    let mut out: Vec<Route> = Vec::new();
    let mut names: HashSet<String> = HashSet::new();
    // The first unconditional route for each kind of model (chat, embedding): a later route
    // serving only kinds already caught can never match.
    let mut catch_all: [Option<String>; 2] = [None, None];
    for (i, value) in items.iter().enumerate() {
        let path = join_index("routes", i);
        let Some(raw) = cx.parse::<RawRoute>(value, &path) else {
            continue;
        };
        if !names.insert(raw.name.clone()) {
            cx.error(
                &join_key(&path, "name"),
                At::Value,
                format!("route name `{}` is used twice", raw.name),
                None,
            );
        }
        if raw.use_.is_empty() {
            cx.error(
                &join_key(&path, "use"),
                At::Value,
                "`use` lists no model".to_owned(),
                Some("name at least one model from `models:`".to_owned()),
            );
        }
        let mut candidates = Vec::new();
        for (j, model) in raw.use_.iter().enumerate() {
            match models.get(model.as_str()) {
                Some(m) => candidates.push(*m),
                None if declared_models.contains(model) => {} // reported where it is declared
                None => {
                    let hint = closest(model, models.keys().map(|k| &**k))
                        .map(|s| format!("did you mean `{s}`?"))
                        .or_else(|| Some("name a model declared under `models:`".to_owned()));
                    cx.error(
                        &join_index(&join_key(&path, "use"), j),
                        At::Value,
                        format!("unknown model `{model}`"),
                        hint,
                    );
                }
            }
        }
        let raw_when = raw.when.unwrap_or_default();
        let mut when = When {
            models: raw_when
                .model
                .map(OneOrMany::into_vec)
                .unwrap_or_default()
                .iter()
                .map(|m| Arc::from(m.as_str()))
                .collect(),
            tasks: raw_when.task.map(OneOrMany::into_vec).unwrap_or_default(),
            difficulties: raw_when
                .difficulty
                .map(OneOrMany::into_vec)
                .unwrap_or_default(),
            headers: Vec::new(),
        };
        for (k, v) in &raw_when.header {
            match http::HeaderName::try_from(k.to_ascii_lowercase()) {
                Ok(name) => when.headers.push((name, v.as_str().into())),
                Err(_) => cx.error(
                    &join_key(&join_key(&join_key(&path, "when"), "header"), k),
                    At::Key,
                    format!("`{k}` is not a valid HTTP header name"),
                    None,
                ),
            }
        }
        let unconditional = when.models.is_empty()
            && when.headers.is_empty()
            && when.tasks.is_empty()
            && when.difficulties.is_empty();
        // Which kinds of request this route can take. A route whose models all failed
        // validation takes none: its kind is unknown and its errors are already reported, so
        // it neither shadows later routes nor is reported as shadowed.
        let serves = |kind: ModelKind| {
            candidates
                .iter()
                .any(|i| all.get(*i).is_some_and(|m| m.kind == kind))
        };
        let kinds = [serves(ModelKind::Chat), serves(ModelKind::Embedding)];
        let shadowed: Vec<&String> = kinds
            .iter()
            .zip(&catch_all)
            .filter(|(serves, _)| **serves)
            .map(|(_, earlier)| earlier.as_ref())
            .collect::<Option<Vec<_>>>()
            .unwrap_or_default();
        if let Some(earlier) = shadowed.first().filter(|_| kinds.iter().any(|k| *k)) {
            cx.error(
                &path,
                At::Value,
                format!(
                    "route `{}` is unreachable: route `{earlier}` before it matches every request",
                    raw.name
                ),
                Some("move the catch-all route last, or give it a `when`".to_owned()),
            );
        }
        if unconditional {
            for (serves, slot) in kinds.iter().zip(catch_all.iter_mut()) {
                if *serves && slot.is_none() {
                    *slot = Some(raw.name.clone());
                }
            }
        }
        let escalate = raw.escalate.as_ref().and_then(|e| {
            let at = join_key(&join_key(&path, "escalate"), "to");
            if e.on.is_empty() {
                cx.error(
                    &join_key(&join_key(&path, "escalate"), "on"),
                    At::Value,
                    "`on` lists no trigger".to_owned(),
                    Some("use error, truncated and/or invalid_json".to_owned()),
                );
            }
            match models.get(e.to.as_str()) {
                Some(i) => Some(super::Escalate {
                    to: *i,
                    on: e.on.clone(),
                }),
                None if declared_models.contains(&e.to) => None,
                None => {
                    let hint = closest(&e.to, models.keys().map(|k| &**k))
                        .map(|s| format!("did you mean `{s}`?"));
                    cx.error(&at, At::Value, format!("unknown model `{}`", e.to), hint);
                    None
                }
            }
        });
        out.push(Route {
            name: raw.name.as_str().into(),
            when,
            candidates,
            escalate,
        });
    }
    out
}

pub(super) fn rules(section: Option<&Value>, cx: &mut Cx<'_>) -> Vec<Rule> {
    let items: &[Value] = match section {
        Some(Value::Sequence(items)) => items,
        Some(_) => {
            cx.error(
                "rules",
                At::Value,
                "`rules` must be a list".to_owned(),
                None,
            );
            &[]
        }
        None => &[],
    };
    let mut out = Vec::new();
    for (i, value) in items.iter().enumerate() {
        let path = join_index("rules", i);
        let Some(raw) = cx.parse::<RawRule>(value, &path) else {
            continue;
        };
        let regex = match raw.if_.regex.as_deref().map(regex::Regex::new) {
            None => None,
            Some(Ok(re)) => Some(re),
            Some(Err(e)) => {
                let message = format!(
                    "invalid regex: {}",
                    e.to_string().lines().last().unwrap_or("syntax error")
                );
                cx.error(
                    &join_key(&join_key(&path, "if"), "regex"),
                    At::Value,
                    message,
                    None,
                );
                None
            }
        };
        let c = &raw.if_;
        if c.keywords.is_empty()
            && c.regex.is_none()
            && c.min_input_tokens.is_none()
            && c.max_input_tokens.is_none()
            && c.header.is_empty()
        {
            cx.error(
                &join_key(&path, "if"),
                At::Value,
                "a rule needs at least one condition".to_owned(),
                Some(
                    "use keywords, regex, min_input_tokens, max_input_tokens or header".to_owned(),
                ),
            );
        }
        if raw.then.task.is_none() && raw.then.difficulty.is_none() {
            cx.error(
                &join_key(&path, "then"),
                At::Value,
                "a rule must set `task` or `difficulty`".to_owned(),
                None,
            );
        }
        let mut headers = Vec::new();
        for (k, v) in &raw.if_.header {
            match http::HeaderName::try_from(k.to_ascii_lowercase()) {
                Ok(name) => headers.push((name, Arc::from(v.as_str()))),
                Err(_) => cx.error(
                    &join_key(&join_key(&join_key(&path, "if"), "header"), k),
                    At::Key,
                    format!("`{k}` is not a valid HTTP header name"),
                    None,
                ),
            }
        }
        out.push(Rule {
            name: raw.name.as_str().into(),
            keywords: raw.if_.keywords.iter().map(|k| k.to_lowercase()).collect(),
            regex,
            min_input_tokens: raw.if_.min_input_tokens,
            max_input_tokens: raw.if_.max_input_tokens,
            headers,
            task: raw.then.task,
            difficulty: raw.then.difficulty,
        });
    }
    out
}

fn list<'v>(section: Option<&'v Value>, name: &str, cx: &mut Cx<'_>) -> &'v [Value] {
    match section {
        Some(Value::Sequence(items)) => items,
        Some(_) => {
            cx.error(name, At::Value, format!("`{name}` must be a list"), None);
            &[]
        }
        None => &[],
    }
}

/// Names end up in ledger columns and metric labels: plain printable text only.
fn check_name(name: &str, path: &str, cx: &mut Cx<'_>) {
    if name.is_empty() || name.chars().any(char::is_control) {
        cx.error(
            path,
            At::Value,
            "a name must be non-empty printable text".to_owned(),
            None,
        );
    }
}

pub(super) fn budgets(section: Option<&Value>, cx: &mut Cx<'_>) -> Vec<crate::budget::BudgetSpec> {
    use crate::budget::{BudgetSpec, OnLimit, Ppm, Scope};
    let mut out: Vec<BudgetSpec> = Vec::new();
    for (i, value) in list(section, "budgets", cx).iter().enumerate() {
        let path = join_index("budgets", i);
        let Some(raw) = cx.parse::<RawBudget>(value, &path) else {
            continue;
        };
        check_name(&raw.name, &join_key(&path, "name"), cx);
        if out.iter().any(|b| *b.name == *raw.name) {
            cx.error(
                &join_key(&path, "name"),
                At::Value,
                format!("budget name `{}` is used twice", raw.name),
                Some("spend is kept per budget name: give each budget its own".to_owned()),
            );
        }
        let timezone = match raw.timezone.as_deref() {
            None => jiff::tz::TimeZone::UTC,
            Some(name) => match jiff::tz::TimeZone::get(name) {
                Ok(tz) => tz,
                Err(_) => {
                    cx.error(
                        &join_key(&path, "timezone"),
                        At::Value,
                        format!("unknown time zone `{name}`"),
                        Some(
                            "use an IANA name such as `Europe/Berlin` or `Asia/Kuala_Lumpur`"
                                .to_owned(),
                        ),
                    );
                    continue;
                }
            },
        };
        let ppm = |f: super::schema::Fraction| {
            Ppm::from_fraction_rounded(f64::from(f.0)).unwrap_or(Ppm::ONE)
        };
        out.push(BudgetSpec {
            name: raw.name.as_str().into(),
            scope: match raw.scope {
                RawScope::Global => Scope::Global,
                RawScope::Team => Scope::Team,
                RawScope::Key => Scope::Key,
            },
            limit: raw.limit_usd.0,
            timezone,
            on_limit: match raw.on_limit {
                RawOnLimit::Reject => OnLimit::Reject,
                RawOnLimit::Downgrade => OnLimit::Downgrade,
            },
            downgrade_at: raw.downgrade_at.map(ppm),
            warn_at: raw.warn_at.into_iter().map(ppm).collect(),
        });
    }
    out
}

pub(super) fn keys(section: Option<&Value>, cx: &mut Cx<'_>) -> Vec<VirtualKey> {
    let mut out: Vec<VirtualKey> = Vec::new();
    for (i, value) in list(section, "keys", cx).iter().enumerate() {
        let path = join_index("keys", i);
        let Some(raw) = cx.parse::<RawKey>(value, &path) else {
            continue;
        };
        check_name(&raw.name, &join_key(&path, "name"), cx);
        if out.iter().any(|k| *k.name == *raw.name) {
            cx.error(
                &join_key(&path, "name"),
                At::Value,
                format!("key name `{}` is used twice", raw.name),
                None,
            );
        }
        if out.iter().any(|k| k.sha256 == raw.sha256.0) {
            cx.error(
                &join_key(&path, "sha256"),
                At::Value,
                "this hash is used by another key".to_owned(),
                Some("make a fresh key with `switchyard keys new`".to_owned()),
            );
        }
        if let Some(team) = &raw.team {
            check_name(team, &join_key(&path, "team"), cx);
        }
        out.push(VirtualKey {
            name: raw.name.as_str().into(),
            team: raw.team.as_deref().map(Arc::from),
            sha256: raw.sha256.0,
        });
    }
    out
}
