//! The decision half of the request path: classify → rules → route → tier pin, and what
//! `explain` and `x-switchyard-dry-run` show of it. Pure but for the classifier call.

use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, header};

use super::error::{ApiError, full};
use super::{Body, HEADER_TIER};
use crate::chat;
use crate::classify::{self, Classification, Difficulty, Task};
use crate::policy::{ModelKind, Policy, Tier};
use crate::providers::estimate_tokens;
use crate::route::{self, Decision, Facts, NoRoute, Reason, RuleInput};
use crate::telemetry::metrics;

/// Classification, overrides and the routing decision for one request.
pub(super) struct Plan<'p> {
    pub(super) classification: Option<Classification>,
    pub(super) task: Option<Task>,
    pub(super) difficulty: Option<Difficulty>,
    pub(super) decision: Result<Decision<'p>, NoRoute<'p>>,
}

/// classify → rules → decide → tier pin. Pure but for the classifier call. `explained`: the
/// plan will be shown (dry run, `switchyard explain`), so the classification names its signals.
pub(super) fn plan<'p>(
    classifier: &classify::Model,
    policy: &'p Policy,
    request: &chat::Request<'_>,
    headers: &HeaderMap,
    kind: ModelKind,
    explained: bool,
) -> Result<Plan<'p>, ApiError> {
    let classification = (kind == ModelKind::Chat).then(|| {
        let started = Instant::now();
        let input = classifier_input(request);
        let c = if explained {
            classifier.classify(&input, &policy.thresholds)
        } else {
            classifier.classify_unexplained(&input, &policy.thresholds)
        };
        metrics::record_classify(started.elapsed());
        c
    });
    let last_user = request.last_user_text();
    let overrides = route::apply_rules(
        policy,
        &RuleInput {
            last_user: &last_user,
            input_tokens: estimate_tokens(request.input_chars),
            headers,
        },
    );
    let task = overrides
        .task
        .map(|(t, _)| t)
        .or(classification.as_ref().map(|c| c.task));
    let difficulty = overrides
        .difficulty
        .map(|(d, _)| d)
        .or(classification.as_ref().map(|c| c.difficulty));
    let pin = match headers.get(HEADER_TIER).map(|v| v.as_bytes()) {
        None => None,
        Some(b"open") => Some(Tier::Open),
        Some(b"frontier") => Some(Tier::Frontier),
        Some(_) => {
            return Err(ApiError::BadHeader {
                name: "x-switchyard-tier",
                expected: "`open` or `frontier`",
            });
        }
    };
    let facts = Facts {
        requested_model: &request.model,
        headers,
        kind,
        task,
        difficulty,
    };
    let mut decision = route::decide(policy, &facts);
    if let Ok(d) = &mut decision {
        if let Some((task, rule)) = overrides.task {
            d.reasons.insert(
                0,
                Reason::RuleApplied {
                    rule,
                    field: "task",
                    value: task.as_str(),
                },
            );
        }
        if let Some((difficulty, rule)) = overrides.difficulty {
            d.reasons.insert(
                0,
                Reason::RuleApplied {
                    rule,
                    field: "difficulty",
                    value: difficulty.as_str(),
                },
            );
        }
        match pin {
            Some(tier) if policy.allow_tier_header => route::pin_tier(policy, d, tier, kind),
            Some(_) => d.reasons.push(Reason::TierPinRefused),
            None => {}
        }
    }
    Ok(Plan {
        classification,
        task,
        difficulty,
        decision,
    })
}

/// The classifier's view of a chat request.
pub(super) fn classifier_input<'r>(request: &'r chat::Request<'_>) -> classify::Input<'r> {
    classify::Input {
        turns: request
            .messages
            .iter()
            .map(|m| classify::Turn {
                role: classify::Role::from_name(&m.role),
                text: m.text(),
            })
            .collect(),
        has_tools: request.has_tools,
        response_format: match request.response_format.as_deref() {
            Some("json_object") => Some(classify::ResponseFormat::JsonObject),
            Some("json_schema") => Some(classify::ResponseFormat::JsonSchema),
            Some(_) => Some(classify::ResponseFormat::Text),
            None => None,
        },
        max_tokens: request
            .max_tokens
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
    }
}

/// What `switchyard explain` prints for a chat request body: the same plan the proxy makes,
/// explained. Calls nothing.
pub fn explain(
    classifier: &classify::Model,
    policy: &Policy,
    body: &[u8],
    headers: &HeaderMap,
) -> Result<route::Explanation, ApiError> {
    let request = chat::parse(body, chat::Kind::Chat)?;
    if !policy.accepts_model(&request.model) {
        return Err(ApiError::UnknownModel(request.model.into_owned()));
    }
    let plan = plan(classifier, policy, &request, headers, ModelKind::Chat, true)?;
    Ok(explanation(policy, plan, &request))
}

pub(super) fn explanation(
    policy: &Policy,
    plan: Plan<'_>,
    request: &chat::Request<'_>,
) -> route::Explanation {
    let decision = match &plan.decision {
        Ok(d) => Ok(d),
        Err(none) => Err(none.reasons.as_slice()),
    };
    route::explain(
        policy,
        plan.classification,
        plan.task,
        plan.difficulty,
        decision,
        request.input_token_bound(),
        request.max_tokens,
    )
}

/// `x-switchyard-dry-run: 1`: the decision, its reasons and candidate costs; no provider call.
pub(super) fn dry_run(
    policy: &Policy,
    plan: Plan<'_>,
    request: &chat::Request<'_>,
) -> Response<Body> {
    let explanation = explanation(policy, plan, request);
    let body = serde_json::to_vec(&explanation).unwrap_or_default();
    let mut rsp = Response::new(full(Bytes::from(body)));
    rsp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    rsp
}
