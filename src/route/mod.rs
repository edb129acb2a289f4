//! `decide`: which route serves a request and which models to try, in order.
//!
//! Pure: no I/O, no clock, no randomness — same policy and facts, same decision. Routes are
//! tried first to last; the first whose `when` holds and which has a model of the right kind
//! wins. Every step leaves a `Reason`, rendered to text only when a log, header or the dry-run
//! output asks.

use std::fmt;

use http::HeaderMap;

use crate::classify::{Difficulty, Task};
use crate::policy::{Model, ModelKind, Policy, Route, Rule, Tier};

mod explain;
pub use explain::{Candidate, Explanation, explain};

/// What is known about a request when deciding.
pub struct Facts<'r> {
    /// The `model` the client asked for.
    pub requested_model: &'r str,
    pub headers: &'r HeaderMap,
    pub kind: ModelKind,
    pub task: Option<Task>,
    pub difficulty: Option<Difficulty>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason<'p> {
    /// A route was passed over because one of its conditions did not hold.
    RouteSkipped {
        route: &'p str,
        condition: &'static str,
    },
    /// A route matched but has no model serving this kind of request.
    RouteWrongKind {
        route: &'p str,
    },
    RouteMatched {
        route: &'p str,
    },
    /// A rule of the policy set the task or the difficulty.
    RuleApplied {
        rule: &'p str,
        field: &'static str,
        value: &'static str,
    },
    /// The client pinned a tier with `x-switchyard-tier`.
    TierPinned {
        tier: &'static str,
    },
    /// The client asked for a tier pin the policy does not allow.
    TierPinRefused,
    /// A candidate's worst-case cost did not fit a budget.
    OverBudget {
        model: &'p str,
    },
    /// A budget with `on_limit: downgrade` refused; a cheaper model that fits was chosen.
    Downgraded {
        model: &'p str,
    },
    /// A budget is past `downgrade_at`: frontier models are kept for hard requests.
    FrontierKeptForHard,
}

impl fmt::Display for Reason<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::RouteSkipped { route, condition } => {
                write!(f, "route `{route}` skipped: {condition} did not match")
            }
            Reason::RouteWrongKind { route } => {
                write!(f, "route `{route}` skipped: no model of the requested kind")
            }
            Reason::RouteMatched { route } => write!(f, "route `{route}` matched"),
            Reason::RuleApplied { rule, field, value } => {
                write!(f, "rule `{rule}` set {field} = {value}")
            }
            Reason::TierPinned { tier } => write!(f, "client pinned tier `{tier}`"),
            Reason::TierPinRefused => {
                write!(f, "x-switchyard-tier ignored: the policy does not allow it")
            }
            Reason::OverBudget { model } => {
                write!(
                    f,
                    "model `{model}` skipped: its worst-case cost does not fit a budget"
                )
            }
            Reason::Downgraded { model } => {
                write!(f, "downgraded to `{model}`: a budget is at its cap")
            }
            Reason::FrontierKeptForHard => write!(
                f,
                "frontier models kept for hard requests: a budget is past `downgrade_at`"
            ),
        }
    }
}

/// What the policy's `rules` set, and which rule set it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overrides<'p> {
    pub task: Option<(Task, &'p str)>,
    pub difficulty: Option<(Difficulty, &'p str)>,
}

/// What rules look at.
pub struct RuleInput<'r> {
    /// The last user message.
    pub last_user: &'r str,
    pub input_tokens: u64,
    pub headers: &'r HeaderMap,
}

/// Apply the policy's rules in order; for each of task and difficulty the first rule that sets
/// it wins.
pub fn apply_rules<'p>(policy: &'p Policy, input: &RuleInput<'_>) -> Overrides<'p> {
    let mut out = Overrides::default();
    if policy.rules.is_empty() {
        return out;
    }
    let lower = input.last_user.to_lowercase();
    for rule in &policy.rules {
        if out.task.is_some() && out.difficulty.is_some() {
            break;
        }
        if !rule_holds(rule, &lower, input) {
            continue;
        }
        if let (None, Some(task)) = (out.task, rule.task) {
            out.task = Some((task, &rule.name));
        }
        if let (None, Some(difficulty)) = (out.difficulty, rule.difficulty) {
            out.difficulty = Some((difficulty, &rule.name));
        }
    }
    out
}

fn rule_holds(rule: &Rule, lower: &str, input: &RuleInput<'_>) -> bool {
    (rule.keywords.is_empty() || rule.keywords.iter().any(|k| lower.contains(k.as_str())))
        && rule
            .regex
            .as_ref()
            .is_none_or(|re| re.is_match(input.last_user))
        && rule
            .min_input_tokens
            .is_none_or(|n| input.input_tokens >= n)
        && rule
            .max_input_tokens
            .is_none_or(|n| input.input_tokens <= n)
        && rule.headers.iter().all(|(name, value)| {
            input
                .headers
                .get(name)
                .is_some_and(|v| v.as_bytes() == value.as_bytes())
        })
}

#[derive(Debug)]
pub struct Decision<'p> {
    pub route: &'p Route,
    /// Indexes into `policy.models`, in the order to try (later ones are fallbacks).
    pub candidates: Vec<usize>,
    pub reasons: Vec<Reason<'p>>,
}

/// No route serves the request; the reasons say why each was passed over.
#[derive(Debug)]
pub struct NoRoute<'p> {
    pub reasons: Vec<Reason<'p>>,
}

pub fn decide<'p>(policy: &'p Policy, facts: &Facts<'_>) -> Result<Decision<'p>, NoRoute<'p>> {
    let mut reasons = Vec::new();
    for route in &policy.routes {
        if let Some(condition) = failed_condition(route, facts) {
            reasons.push(Reason::RouteSkipped {
                route: &route.name,
                condition,
            });
            continue;
        }
        let candidates: Vec<usize> = route
            .candidates
            .iter()
            .copied()
            .filter(|i| {
                policy
                    .model(*i)
                    .is_some_and(|m: &Model| m.kind == facts.kind)
            })
            .collect();
        if candidates.is_empty() {
            reasons.push(Reason::RouteWrongKind { route: &route.name });
            continue;
        }
        reasons.push(Reason::RouteMatched { route: &route.name });
        return Ok(Decision {
            route,
            candidates,
            reasons,
        });
    }
    Err(NoRoute { reasons })
}

/// Keep only the candidates of `tier`; if the route has none, every model of that tier and
/// kind in policy order.
pub fn pin_tier<'p>(policy: &'p Policy, decision: &mut Decision<'p>, tier: Tier, kind: ModelKind) {
    let of_tier = |i: &usize| {
        policy
            .model(*i)
            .is_some_and(|m| m.tier == tier && m.kind == kind)
    };
    let on_route: Vec<usize> = decision
        .candidates
        .iter()
        .copied()
        .filter(of_tier)
        .collect();
    decision.candidates = if on_route.is_empty() {
        (0..policy.models.len()).filter(of_tier).collect()
    } else {
        on_route
    };
    decision.reasons.push(Reason::TierPinned {
        tier: tier.as_str(),
    });
}

/// The first condition of `route` that `facts` fail, if any.
fn failed_condition(route: &Route, facts: &Facts<'_>) -> Option<&'static str> {
    let when = &route.when;
    if !when.models.is_empty() && !when.models.iter().any(|m| **m == *facts.requested_model) {
        return Some("model");
    }
    let headers_hold = when.headers.iter().all(|(name, value)| {
        facts
            .headers
            .get(name)
            .is_some_and(|v| v.as_bytes() == value.as_bytes())
    });
    if !headers_hold {
        return Some("header");
    }
    if !when.tasks.is_empty() && !facts.task.is_some_and(|t| when.tasks.contains(&t)) {
        return Some("task");
    }
    if !when.difficulties.is_empty()
        && !facts
            .difficulty
            .is_some_and(|d| when.difficulties.contains(&d))
    {
        return Some("difficulty");
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    const POLICY: &str = r#"
version: 1
providers:
  local: { kind: openai, base_url: "http://127.0.0.1:1/v1" }
models:
  small: { provider: local, model: s, tier: open, price: { input: 0.1, output: 0.2 } }
  big:   { provider: local, model: b, tier: frontier, price: { input: 2, output: 8 } }
  embed: { provider: local, model: e, tier: open, kind: embedding, price: { input: 0.01, output: 0 } }
rules:
  - { name: translate, if: { keywords: [translate, "in french"] }, then: { task: translation } }
  - { name: big, if: { min_input_tokens: 1000 }, then: { difficulty: hard } }
  - { name: urgent, if: { header: { x-priority: high }, regex: "(?i)^fix" }, then: { task: code, difficulty: hard } }
routes:
  - { name: pinned, when: { model: gpt-4o }, use: [big] }
  - { name: beta, when: { header: { x-team: beta } }, use: [big, small] }
  - { name: hard, when: { difficulty: hard }, use: [big] }
  - { name: routine, when: { task: [summarization, chat] }, use: [small, big] }
  - { name: embeddings, use: [embed] }
  - { name: default, use: [small] }
"#;

    fn policy() -> Policy {
        Policy::from_yaml("p.yaml", POLICY, &|_| None).unwrap()
    }

    fn decide_names(policy: &Policy, facts: &Facts<'_>) -> (String, Vec<String>) {
        let d = decide(policy, facts).unwrap();
        let names = d
            .candidates
            .iter()
            .map(|i| policy.models[*i].name.to_string())
            .collect();
        (d.route.name.to_string(), names)
    }

    #[test]
    fn first_matching_route_wins_with_its_fallbacks() {
        let p = policy();
        let mut headers = HeaderMap::new();
        let base = Facts {
            requested_model: "auto",
            headers: &headers,
            kind: ModelKind::Chat,
            task: Some(crate::classify::Task::Chat),
            difficulty: Some(Difficulty::Easy),
        };
        assert_eq!(
            decide_names(&p, &base),
            ("routine".into(), vec!["small".into(), "big".into()])
        );
        let hard = Facts {
            difficulty: Some(Difficulty::Hard),
            ..base
        };
        assert_eq!(decide_names(&p, &hard).0, "hard");
        let pinned = Facts {
            requested_model: "gpt-4o",
            ..hard
        };
        assert_eq!(decide_names(&p, &pinned).0, "pinned");
        headers.insert("x-team", "beta".parse().unwrap());
        let beta = Facts {
            requested_model: "auto",
            headers: &headers,
            kind: ModelKind::Chat,
            task: None,
            difficulty: None,
        };
        assert_eq!(decide_names(&p, &beta).0, "beta");
    }

    #[test]
    fn rules_override_in_order_first_setter_wins() {
        let p = policy();
        let mut headers = HeaderMap::new();
        let input = RuleInput {
            last_user: "Please TRANSLATE this",
            input_tokens: 10,
            headers: &headers,
        };
        assert_eq!(
            apply_rules(&p, &input),
            Overrides {
                task: Some((Task::Translation, "translate")),
                difficulty: None
            }
        );
        let input = RuleInput {
            last_user: "Fix my build",
            input_tokens: 5000,
            headers: &headers,
        };
        assert_eq!(
            apply_rules(&p, &input),
            Overrides {
                task: None,
                difficulty: Some((Difficulty::Hard, "big"))
            }
        );
        headers.insert("x-priority", "high".parse().unwrap());
        let input = RuleInput {
            last_user: "Fix my build",
            input_tokens: 5,
            headers: &headers,
        };
        assert_eq!(
            apply_rules(&p, &input),
            Overrides {
                task: Some((Task::Code, "urgent")),
                difficulty: Some((Difficulty::Hard, "urgent"))
            }
        );
        let input = RuleInput {
            last_user: "please fix",
            input_tokens: 5,
            headers: &headers,
        };
        assert_eq!(apply_rules(&p, &input), Overrides::default());
    }

    #[test]
    fn embeddings_skip_chat_routes_and_chat_skips_embedding_routes() {
        let p = policy();
        let headers = HeaderMap::new();
        let facts = Facts {
            requested_model: "auto",
            headers: &headers,
            kind: ModelKind::Embedding,
            task: None,
            difficulty: None,
        };
        let d = decide(&p, &facts).unwrap();
        assert_eq!(&*d.route.name, "embeddings");
        assert!(d.reasons.contains(&Reason::RouteSkipped {
            route: "hard",
            condition: "difficulty"
        }));
        let chat = Facts {
            kind: ModelKind::Chat,
            task: None,
            ..facts
        };
        let d = decide(&p, &chat).unwrap();
        assert_eq!(&*d.route.name, "default");
        assert!(d.reasons.contains(&Reason::RouteWrongKind {
            route: "embeddings"
        }));
    }
}
