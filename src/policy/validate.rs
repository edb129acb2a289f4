//! From YAML text to a `Policy`, collecting every problem with its position.
//!
//! Steps: syntax (serde_yaml; the only step that stops early), `${VAR}` interpolation on string
//! values, each section entry deserialized on its own into the `schema` types (so one bad entry
//! does not hide the next), then cross-reference checks. Paths found on the way
//! (`routes[2].use[0]`) are turned into line:column by `position::Index`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_yaml::Value;

use super::position::{Index, join_index, join_key};
use super::schema::{Mode, RawClassifier, RawDisplayCurrency, RawThresholds, TOP_LEVEL_KEYS};
use super::sections::{budgets, declared, keys, models, providers, routes, rules};
use super::{Diagnostic, Policy, Thresholds};

pub(super) struct Cx<'a> {
    file: Arc<str>,
    index: Index,
    diagnostics: Vec<Diagnostic>,
    env: &'a dyn Fn(&str) -> Option<String>,
}

/// Where an error points: the key (unknown or missing fields) or the value (bad values).
#[derive(Clone, Copy)]
pub(super) enum At {
    Key,
    Value,
}

impl Cx<'_> {
    pub(super) fn error(&mut self, path: &str, at: At, message: String, hint: Option<String>) {
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
    pub(super) fn parse<T: DeserializeOwned>(&mut self, value: &Value, path: &str) -> Option<T> {
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
