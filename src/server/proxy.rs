//! The leaf handler: the request path as straight-line async code.
//!
//! authenticate → read body (capped) → parse → `policy.snapshot()` → `plan` (classify, rules,
//! `route::decide`) → dry run? → shadow mode → reserve the worst case (`spend`) → `attempt`
//! (candidates in order with fallback; stream back through `UsageTap` or read the bounded JSON;
//! charge) → escalation cascade for non-streamed answers. Wire-format differences
//! (OpenAI ⇄ Anthropic) live in `exchange.rs`, the attempt in `attempt.rs`, the decision in
//! `plan.rs`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use super::attempt::{Answer, Call, shadow_target};
use super::error::{ApiError, Dialect, full};
use super::plan::{dry_run, plan};
use super::stack::RequestId;
use super::{AppState, Body, HEADER_DIFFICULTY, HEADER_DRY_RUN, HEADER_ROUTE, HEADER_TASK};
use super::{HEADER_ESCALATED, HEADER_SHADOW_MODEL, auth, spend};
use crate::budget::{self, MicroUsd};
use crate::chat;
use crate::classify::{Difficulty, Task};
use crate::policy::{Mode, ModelKind, Policy, Trigger};
use crate::providers::Operation;
use crate::route::{Decision, Reason};
use crate::telemetry::metrics;

/// Dispatch by method and path; every error becomes a response in the client's shape here.
pub async fn route_request(
    state: AppState,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let id = req
        .extensions()
        .get::<RequestId>()
        .map_or_else(|| Arc::from("-"), |id| id.0.clone());
    let (result, dialect) = match (req.method(), req.uri().path()) {
        (&Method::POST, "/v1/chat/completions") => (
            complete(&state, req, Endpoint::Chat, &id).await,
            Dialect::OpenAi,
        ),
        (&Method::POST, "/v1/messages") => (
            complete(&state, req, Endpoint::Messages, &id).await,
            Dialect::Anthropic,
        ),
        (&Method::POST, "/v1/embeddings") => (
            complete(&state, req, Endpoint::Embeddings, &id).await,
            Dialect::OpenAi,
        ),
        (&Method::GET, "/v1/models") => (Ok(models(&state.policy.snapshot())), Dialect::OpenAi),
        (&Method::GET, "/healthz") => (
            Ok(Response::new(full(Bytes::from_static(b"ok\n")))),
            Dialect::OpenAi,
        ),
        (method, path) => (
            Err(ApiError::NotFound {
                method: method.to_string(),
                path: path.to_owned(),
            }),
            Dialect::OpenAi,
        ),
    };
    Ok(result.unwrap_or_else(|e| e.into_response_for(&id, dialect)))
}

/// The endpoints that cost money.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Messages,
    Embeddings,
}

impl Endpoint {
    fn dialect(self) -> Dialect {
        match self {
            Endpoint::Messages => Dialect::Anthropic,
            Endpoint::Chat | Endpoint::Embeddings => Dialect::OpenAi,
        }
    }
}

async fn complete(
    state: &AppState,
    req: Request<Incoming>,
    endpoint: Endpoint,
    request_id: &str,
) -> Result<Response<Body>, ApiError> {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let policy = state.policy.snapshot();
    let tenant = auth::authenticate(&policy, &parts.headers)?;
    let bytes = read_body(body, state.limits.max_body_bytes).await?;
    let (parse_kind, model_kind, operation) = match endpoint {
        Endpoint::Chat => (chat::Kind::Chat, ModelKind::Chat, Operation::Chat),
        Endpoint::Messages => (chat::Kind::Messages, ModelKind::Chat, Operation::Chat),
        Endpoint::Embeddings => (
            chat::Kind::Embeddings,
            ModelKind::Embedding,
            Operation::Embeddings,
        ),
    };
    let request = chat::parse(&bytes, parse_kind)?;
    if !policy.accepts_model(&request.model) {
        return Err(ApiError::UnknownModel(request.model.into_owned()));
    }
    let mut span = state.traces.start(
        match endpoint {
            Endpoint::Embeddings => "embeddings",
            Endpoint::Chat | Endpoint::Messages => "chat",
        },
        &request.model,
        request_id,
    );
    let classifier = state.classifier.load();
    let dry = parts
        .headers
        .get(HEADER_DRY_RUN)
        .is_some_and(|v| v.as_bytes() == b"1");
    let plan = plan(
        &classifier,
        &policy,
        &request,
        &parts.headers,
        model_kind,
        dry,
    )?;
    if dry {
        return Ok(dry_run(&policy, plan, &request));
    }
    let (class_task, class_difficulty) = (plan.task, plan.difficulty);
    let mut decision = match plan.decision {
        Ok(d) => d,
        Err(none) => {
            let reasons: Vec<String> = none.reasons.iter().map(ToString::to_string).collect();
            tracing::info!(reasons = ?reasons, "no route");
            span.failed("no_route");
            return Err(ApiError::NoRoute);
        }
    };
    span.decided(
        &decision.route.name,
        class_task.map(Task::as_str),
        class_difficulty.map(Difficulty::as_str),
    );

    // Money: reserve the worst case before anything is sent.
    let now = (state.clock)();
    let facts = spend::Facts {
        request_id: request_id.to_owned(),
        tenant: tenant.clone(),
        route: decision.route.name.clone(),
        task: class_task.map(Task::as_str),
        difficulty: class_difficulty.map(Difficulty::as_str),
        difficulty_score: plan.classification.as_ref().map(|c| c.difficulty_score),
        started,
        now,
        shadow: None,
        reason: spend::reason_line(&decision.reasons),
    };
    // Shadow mode: forward exactly as the client asked; remember what the policy would do.
    let shadow = policy.mode == Mode::Shadow;
    let mut facts = facts;
    if shadow && let Some(asked) = shadow_target(&policy, &request.model, model_kind) {
        if let Some(would) = decision.candidates.first().and_then(|i| policy.model(*i)) {
            facts.shadow = Some((would.name.clone(), would.price));
        }
        decision.candidates = vec![asked];
    }
    // Only budgets with `downgrade_at` can keep frontier models for hard requests; shadow mode
    // forwards as asked whatever the budgets say.
    if !shadow && policy.budgets.iter().any(|b| b.downgrade_at.is_some()) {
        let statuses = state.ledger.status(&tenant, now);
        spend::keep_frontier_for_hard(
            &policy,
            &mut decision,
            class_difficulty,
            &statuses,
            model_kind,
        );
    }
    let reservation = match spend::reserve(
        &state.ledger,
        &policy,
        &tenant,
        &mut decision,
        request.input_token_bound(),
        request.max_tokens,
        now,
    )
    .await
    {
        Ok(r) => r,
        Err(budget::Error::Exhausted(exhausted)) => {
            // The refusal leaves its row too; nobody waits for it.
            let mut row = facts.row("", "", "rejected");
            row.reason = spend::reason_line(&decision.reasons);
            drop(state.ledger.record(row));
            metrics::record_rejection(&exhausted.budget);
            span.failed("budget_exceeded");
            return Err(ApiError::BudgetExceeded(exhausted));
        }
        Err(err) => {
            tracing::error!(error = %err, "cannot reserve budget");
            span.failed("ledger_unavailable");
            return Err(ApiError::LedgerUnavailable(err));
        }
    };
    let mut headers = HeaderMap::new();
    headers.insert(HEADER_ROUTE, header_value(&decision.route.name));
    if let Some(task) = class_task {
        headers.insert(HEADER_TASK, HeaderValue::from_static(task.as_str()));
    }
    if let Some(difficulty) = class_difficulty {
        headers.insert(
            HEADER_DIFFICULTY,
            HeaderValue::from_static(difficulty.as_str()),
        );
    }
    if let Some((would, _)) = &facts.shadow {
        headers.insert(HEADER_SHADOW_MODEL, header_value(would));
    }
    facts.reason = spend::reason_line(&decision.reasons);
    if facts.shadow.is_some() {
        facts.reason.push_str("; shadow mode: forwarded as asked");
    }
    let call = Call {
        verbatim: facts.shadow.is_some(),
        state,
        policy: &policy,
        request: &request,
        original: &bytes,
        dialect: endpoint.dialect(),
        operation,
        request_id,
        tenant: &tenant,
    };
    if decision
        .reasons
        .iter()
        .any(|r| matches!(r, Reason::Downgraded { .. } | Reason::FrontierKeptForHard))
    {
        metrics::record_downgrade(&decision.route.name);
    }
    metrics::record_overhead(started.elapsed());
    let first = call
        .attempt(&decision, reservation, facts.clone(), span)
        .await;

    // The escalation cascade: non-streamed answers only, before anything reached the client.
    let Some(escalate) = decision.route.escalate.as_ref().filter(|_| !request.stream) else {
        return first.map(|a| a.into_response(headers));
    };
    let trigger = match &first {
        Err(_) if escalate.on.contains(&Trigger::Error) => Some(Trigger::Error),
        Err(_) => None,
        Ok(answer) => answer.failed_check(&escalate.on, &request, endpoint.dialect()),
    };
    let Some(trigger) = trigger else {
        return first.map(|a| a.into_response(headers));
    };
    let mut second = Decision {
        route: decision.route,
        candidates: vec![escalate.to],
        reasons: Vec::new(),
    };
    let Ok(reservation) = spend::reserve(
        &state.ledger,
        &policy,
        &tenant,
        &mut second,
        request.input_token_bound(),
        request.max_tokens,
        (state.clock)(),
    )
    .await
    else {
        tracing::info!(
            trigger = trigger.as_str(),
            "escalation skipped: over budget"
        );
        return first.map(|a| a.into_response(headers));
    };
    tracing::debug!(trigger = trigger.as_str(), "escalating");
    let first_cost = first.as_ref().map_or(MicroUsd::ZERO, Answer::cost);
    metrics::record_escalation(&decision.route.name, trigger.as_str());
    // The escalation is its own attempt, with its own span.
    let span = state.traces.start("chat", &request.model, request_id);
    let mut escalated = call.attempt(&second, reservation, facts, span).await?;
    escalated.add_cost(first_cost);
    headers.insert(HEADER_ESCALATED, HeaderValue::from_static(trigger.as_str()));
    Ok(escalated.into_response(headers))
}

async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, ApiError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::TooLarge { limit })
        }
        Err(err) => Err(ApiError::ClientBody(err)),
    }
}

pub(super) fn with_headers(
    mut rsp: Response<Body>,
    status: StatusCode,
    headers: HeaderMap,
) -> Response<Body> {
    *rsp.status_mut() = status;
    rsp.headers_mut().extend(headers);
    rsp
}

/// Names from the policy are plain ASCII in practice; anything unencodable becomes `invalid`
/// rather than failing the response.
pub(super) fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

fn models(policy: &Policy) -> Response<Body> {
    let data: Vec<serde_json::Value> = policy
        .listed_models()
        .into_iter()
        .map(|id| serde_json::json!({"id": id, "object": "model", "created": 0, "owned_by": "switchyard"}))
        .collect();
    let body = serde_json::json!({"object": "list", "data": data});
    let mut rsp = Response::new(full(Bytes::from(body.to_string())));
    rsp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    rsp
}
