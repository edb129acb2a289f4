//! From YAML text to a `Policy`, collecting every problem with its position.
//!
//! Steps: syntax (serde_yaml; the only step that stops early), `${VAR}` interpolation on string
//! values, each section entry deserialized on its own into the `schema` types (so one bad entry
//! does not hide the next), then cross-reference checks. Paths found on the way
//! (`routes[2].use[0]`) are turned into line:column by `position::Index`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_yaml::Value;

use super::VirtualKey;
use super::position::{Index, join_index, join_key};
use super::schema::{
    Mode, ModelKind, OneOrMany, RawBudget, RawClassifier, RawDisplayCurrency, RawKey, RawModel,
    RawOnLimit, RawProvider, RawRoute, RawRule, RawScope, RawThresholds, TOP_LEVEL_KEYS,
};
use super::{
    DEFAULT_MAX_OUTPUT_TOKENS, Diagnostic, Model, Policy, ProviderSpec, Route, Rule, Secret,
    Thresholds, When,
};
use crate::budget::Price;

const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(120);
const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";

struct Cx<'a> {
    file: Arc<str>,
    index: Index,
    diagnostics: Vec<Diagnostic>,
    env: &'a dyn Fn(&str) -> Option<String>,
}

/// Where an error points: the key (unknown or missing fields) or the value (bad values).
#[derive(Clone, Copy)]
enum At {
    Key,
    Value,
}

impl Cx<'_> {
    fn error(&mut self, path: &str, at: At, message: String, hint: Option<String>) {
        let position = match at {
            At::Key => self.index.key(path),
            At::Value => self.index.value(path),
        };
        self.diagnostics.push(Diagnostic {
            file: self.file.clone(),
            position,
            path: path.to_owned(),
            message,
            hint,
        });
    }

    /// Deserialize one entry; on failure record where and why, and return None.
    fn parse<T: DeserializeOwned>(&mut self, value: &Value, path: &str) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(v) => Some(v),
            Err(err) => {
                let mut inner = path.to_owned();
                for seg in err.path().iter() {
                    match seg {
                        serde_path_to_error::Segment::Seq { index } => {
                            inner = join_index(&inner, *index)
                        }
                        serde_path_to_error::Segment::Map { key } => inner = join_key(&inner, key),
                        serde_path_to_error::Segment::Enum { .. }
                        | serde_path_to_error::Segment::Unknown => {}
                    }
                }
                let message = strip_location(&err.inner().to_string());
                self.report_serde(&inner, message);
                None
            }
        }
    }

    fn report_serde(&mut self, path: &str, message: String) {
        if let Some(field) = between(&message, "unknown field `", "`") {
            let expected = backticked(message.split_once("expected").map_or("", |(_, e)| e));
            let hint = closest(field, expected.iter().copied())
                .map(|s| format!("did you mean `{s}`?"))
                .or_else(|| {
                    (!expected.is_empty()).then(|| format!("allowed here: {}", expected.join(", ")))
                });
            // serde_path_to_error's path already ends at the unknown field.
            let at = if path.ends_with(field) {
                path.to_owned()
            } else {
                join_key(path, field)
            };
            self.error(&at, At::Key, format!("unknown field `{field}`"), hint);
        } else if let Some(variant) = between(&message, "unknown variant `", "`") {
            let expected = backticked(message.split_once("expected").map_or("", |(_, e)| e));
            let hint = closest(variant, expected.iter().copied())
                .map(|s| format!("did you mean `{s}`?"))
                .or_else(|| Some(format!("one of: {}", expected.join(", "))));
            self.error(path, At::Value, format!("unknown value `{variant}`"), hint);
        } else if let Some(field) = between(&message, "missing field `", "`") {
            let hint = Some(format!("add `{field}:` here"));
            self.error(path, At::Key, format!("missing field `{field}`"), hint);
        } else {
            self.error(path, At::Value, message, None);
        }
    }
}

/// serde_yaml appends " at line L column C" to some messages; positions come from the index.
fn strip_location(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message.get(..i).unwrap_or(message).to_owned(),
        None => message.to_owned(),
    }
}

fn between<'m>(message: &'m str, start: &str, end: &str) -> Option<&'m str> {
    let rest = message.get(message.find(start)? + start.len()..)?;
    rest.get(..rest.find(end)?)
}

fn backticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// The candidate nearest to `word` by edit distance, if it is near enough to be a typo.
pub(super) fn closest<'c>(
    word: &str,
    candidates: impl Iterator<Item = &'c str>,
) -> Option<&'c str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row.first().copied().unwrap_or(0);
        if let Some(first) = row.first_mut() {
            *first = i + 1;
        }
        for (j, cb) in b.iter().enumerate() {
            let cur = row.get(j + 1).copied().unwrap_or(0);
            let left = row.get(j).copied().unwrap_or(0);
            let best = (prev + usize::from(ca != *cb)).min(cur + 1).min(left + 1);
            if let Some(cell) = row.get_mut(j + 1) {
                *cell = best;
            }
            prev = cur;
        }
    }
    row.last().copied().unwrap_or(0)
}

/// Replace `${NAME}` in every string value; a missing variable is an error naming it.
fn interpolate(value: &mut Value, path: &str, cx: &mut Cx<'_>) {
    match value {
        Value::String(s) if s.contains("${") => {
            let mut out = String::with_capacity(s.len());
            let mut rest = s.as_str();
            while let Some(start) = rest.find("${") {
                out.push_str(rest.get(..start).unwrap_or(""));
                let after = rest.get(start + 2..).unwrap_or("");
                let Some(end) = after.find('}') else {
                    cx.error(
                        path,
                        At::Value,
                        "unclosed `${`".to_owned(),
                        Some("write `${NAME}`".to_owned()),
                    );
                    return;
                };
                let name = after.get(..end).unwrap_or("");
                let valid = !name.is_empty()
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !name.starts_with(|c: char| c.is_ascii_digit());
                if !valid {
                    cx.error(
                        path,
                        At::Value,
                        format!("`${{{name}}}` is not a valid variable name"),
                        None,
                    );
                    return;
                }
                match (cx.env)(name) {
                    Some(v) => out.push_str(&v),
                    None => {
                        cx.error(
                            path,
                            At::Value,
                            format!("environment variable `{name}` is not set"),
                            Some(format!("export {name}=… before starting switchyard")),
                        );
                        return;
                    }
                }
                rest = after.get(end + 1..).unwrap_or("");
            }
            out.push_str(rest);
            *s = out;
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate(item, &join_index(path, i), cx);
            }
        }
        Value::Mapping(map) => {
            for (k, v) in map.iter_mut() {
                let key = k.as_str().unwrap_or("?");
                let p = join_key(path, key);
                interpolate(v, &p, cx);
            }
        }
        _ => {}
    }
}

pub(super) fn build(
    file: &str,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Policy, Vec<Diagnostic>> {
    let file: Arc<str> = file.into();
    let mut root: Value = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(err) => {
            let position = err.location().map(|l| super::Position {
                line: l.line(),
                column: l.column(),
            });
            return Err(vec![Diagnostic {
                file,
                position,
                path: String::new(),
                message: format!("invalid YAML: {}", strip_location(&err.to_string())),
                hint: None,
            }]);
        }
    };
    let mut cx = Cx {
        file,
        index: Index::build(text),
        diagnostics: Vec::new(),
        env,
    };
    interpolate(&mut root, "", &mut cx);
    let Value::Mapping(top) = root else {
        cx.error(
            "",
            At::Value,
            "a policy is a mapping with `version`, `providers`, `models` and `routes`".to_owned(),
            None,
        );
        return Err(cx.diagnostics);
    };
    let mut sections: HashMap<&str, &Value> = HashMap::new();
    for (k, v) in &top {
        let key = k.as_str().unwrap_or("?");
        match TOP_LEVEL_KEYS.iter().find(|known| **known == key) {
            Some(known) => {
                sections.insert(known, v);
            }
            None => {
                let hint = closest(key, TOP_LEVEL_KEYS.iter().copied())
                    .map(|s| format!("did you mean `{s}`?"))
                    .or_else(|| Some(format!("allowed here: {}", TOP_LEVEL_KEYS.join(", "))));
                cx.error(key, At::Key, format!("unknown field `{key}`"), hint);
            }
        }
    }
    for required in ["version", "providers", "models", "routes"] {
        if !sections.contains_key(required) {
            cx.error(
                "",
                At::Value,
                format!("missing field `{required}`"),
                Some(format!("add a top-level `{required}:`")),
            );
        }
    }
    if let Some(v) = sections.get("version")
        && let Some(version) = cx.parse::<u32>(v, "version")
        && version != 1
    {
        cx.error(
            "version",
            At::Value,
            format!("unsupported policy version {version}"),
            Some("this switchyard reads `version: 1`".to_owned()),
        );
    }
    let mode = match sections.get("mode") {
        Some(v) => cx.parse::<Mode>(v, "mode").unwrap_or_default(),
        None => Mode::default(),
    };
    let thresholds = match sections.get("difficulty") {
        Some(v) => match cx.parse::<RawThresholds>(v, "difficulty") {
            Some(t) if t.medium.0 <= t.hard.0 => Thresholds {
                medium: t.medium.0,
                hard: t.hard.0,
            },
            Some(_) => {
                cx.error(
                    "difficulty.medium",
                    At::Value,
                    "`medium` is above `hard`".to_owned(),
                    Some("thresholds must satisfy medium <= hard".to_owned()),
                );
                Thresholds::default()
            }
            None => Thresholds::default(),
        },
        None => Thresholds::default(),
    };

    // Names declared but invalid still count as declared, so one mistake is reported once
    // rather than again at every reference.
    let declared_providers = declared(sections.get("providers").copied());
    let declared_models = declared(sections.get("models").copied());
    let providers = providers(sections.get("providers").copied(), &mut cx);
    let provider_names: Vec<Arc<str>> = providers.iter().map(|p| p.name.clone()).collect();
    let models = models(
        sections.get("models").copied(),
        &provider_names,
        &declared_providers,
        &mut cx,
    );
    let model_index: HashMap<Arc<str>, usize> = models
        .iter()
        .enumerate()
        .map(|(i, m)| (m.name.clone(), i))
        .collect();
    let routes = routes(
        sections.get("routes").copied(),
        &models,
        &model_index,
        &declared_models,
        &mut cx,
    );

    let rules = rules(sections.get("rules").copied(), &mut cx);
    let baseline = match sections.get("baseline") {
        Some(v) => cx.parse::<String>(v, "baseline").and_then(|name| {
            let found = model_index.get(name.as_str()).copied();
            if found.is_none() && !declared_models.contains(&name) {
                let hint = closest(&name, model_index.keys().map(|k| &**k))
                    .map(|s| format!("did you mean `{s}`?"));
                cx.error(
                    "baseline",
                    At::Value,
                    format!("unknown model `{name}`"),
                    hint,
                );
            }
            found
        }),
        None => None,
    };

    let classifier_weights = sections
        .get("classifier")
        .and_then(|v| cx.parse::<RawClassifier>(v, "classifier"))
        .map(|c| std::path::PathBuf::from(c.weights));
    let allow_tier_header = sections
        .get("allow_tier_header")
        .and_then(|v| cx.parse::<bool>(v, "allow_tier_header"))
        .unwrap_or(false);
    let budgets = budgets(sections.get("budgets").copied(), &mut cx);
    let keys = keys(sections.get("keys").copied(), &mut cx);
    let display_currency = sections
        .get("display_currency")
        .and_then(|v| cx.parse::<RawDisplayCurrency>(v, "display_currency"))
        .map(|c| super::DisplayCurrency {
            code: c.code.0.into(),
            per_usd: c.per_usd.0,
        });

    if !cx.diagnostics.is_empty() {
        cx.diagnostics
            .sort_by_key(|d| d.position.map(|p| (p.line, p.column)));
        return Err(cx.diagnostics);
    }
    let mut requestable: HashSet<Arc<str>> = model_index.keys().cloned().collect();
    requestable.insert("auto".into());
    for route in &routes {
        requestable.extend(route.when.models.iter().cloned());
    }
    Ok(Policy {
        source: cx.file,
        mode,
        providers,
        models,
        routes,
        rules,
        baseline,
        thresholds,
        classifier_weights,
        allow_tier_header,
        budgets,
        keys,
        display_currency,
        model_index,
        requestable,
    })
}

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

fn providers(section: Option<&Value>, cx: &mut Cx<'_>) -> Vec<ProviderSpec> {
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
fn declared(section: Option<&Value>) -> HashSet<String> {
    match section {
        Some(Value::Mapping(map)) => map
            .keys()
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect(),
        _ => HashSet::new(),
    }
}

fn models(
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

fn routes(
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
        // Which kinds of request this route can take. (A route whose models all failed
        // validation counts as a chat route; its own errors are already reported.)
        let serves = |kind: ModelKind| {
            candidates
                .iter()
                .any(|i| all.get(*i).is_some_and(|m| m.kind == kind))
        };
        let kinds = [
            serves(ModelKind::Chat) || (candidates.is_empty() && !raw.use_.is_empty()),
            serves(ModelKind::Embedding),
        ];
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

fn rules(section: Option<&Value>, cx: &mut Cx<'_>) -> Vec<Rule> {
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

fn budgets(section: Option<&Value>, cx: &mut Cx<'_>) -> Vec<crate::budget::BudgetSpec> {
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

fn keys(section: Option<&Value>, cx: &mut Cx<'_>) -> Vec<VirtualKey> {
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
